"""Offline replay runs the daemon's own pipeline: the same recording gives the same alerts
live (through a real Mosquitto and `monitor run`) and offline; `monitor evaluate` scores it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.model.store import default_model_path
from monitor.replay.recording import read_recording
from tests.support.daemon import Daemon, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seeded mixed-scenario recording (8 patients, 900 s) and its labels."""
    folder = tmp_path_factory.mktemp("rec")
    rec, labels = folder / "mixed.jsonl.gz", folder / "labels.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--recording",
            str(rec),
            "--labels",
            str(labels),
            "--patients",
            "8",
            "--duration",
            "900",
            "--scenario",
            "mixed",
            "--seed",
            "21",
            "--warmup",
            "90",
            "--gap",
            "20",
            "60",
            "--start-time",
            str(START),
        ],
    )
    assert result.exit_code == 0, result.output
    return rec, labels


def _comparable(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Alerts decided by sample data (not by the wall clock, as 'signal lost' is)."""
    return sorted(
        (e["patient_id"], e["vital"], e["kind"], e["reason"], e["state"], e["t"])
        for e in events
        if e["kind"] == "physiological" or e["reason"] == "flatline"
    )


@pytest.mark.mqtt
def test_live_and_offline_alerts_are_identical(
    recording: tuple[Path, Path], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Patient, vital, state and sample time of every alert agree, live and offline."""
    rec, _ = recording
    offline_out = tmp_path / "offline.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(rec),
            "--offline",
            "--model",
            str(default_model_path()),
            "--alerts",
            str(offline_out),
        ],
    )
    assert result.exit_code == 0, result.output
    offline = [json.loads(line) for line in offline_out.read_text().splitlines()]

    # The recording's sample times are in 2023: the live daemon must accept old samples.
    env = {"MONITOR_INGEST__MAX_AGE_S": "1e10", "MONITOR_INGEST__MAX_FUTURE_SKEW_S": "1e10"}
    daemon = Daemon(mosquitto.url, None, env=env)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    listener = Listener(mosquitto.port)
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "replay",
                str(rec),
                "--broker",
                mosquitto.url,
                "--max-speed",
                "--original-times",  # the alerts' sample times are compared with offline's
                "--qos",
                "1",
            ],
            check=True,
            timeout=120,
            capture_output=True,
        )
        records = sum(1 for _ in read_recording(rec))
        daemon.wait_for("monitor_messages_total", records, timeout=60)
        deadline = time.monotonic() + 10
        while len(_comparable(listener.events())) < len(_comparable(offline)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        metrics = daemon.metrics()
    finally:
        listener.close()
        assert daemon.stop() == 0
    assert total(metrics, "monitor_messages_total", outcome="scored") > 0
    assert len(_comparable(offline)) >= 5
    assert _comparable(listener.events()) == _comparable(offline)


def test_evaluate_scores_the_recording_against_its_labels(
    recording: tuple[Path, Path], tmp_path: Path
) -> None:
    """`monitor evaluate` writes the JSON report with the documented keys and PNG plots."""
    rec, labels = recording
    report, plots = tmp_path / "report.json", tmp_path / "plots"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--recording",
            str(rec),
            "--labels",
            str(labels),
            "--model",
            str(default_model_path()),
            "--report",
            str(report),
            "--plots",
            str(plots),
            "--plot-patients",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    for key in (
        "precision",
        "recall",
        "f1",
        "median_delay_samples",
        "p95_delay_samples",
        "false_alarms_per_patient_hour",
        "per_kind",
        "per_vital",
    ):
        assert key in data
    n_labels = len(labels.read_text().splitlines())
    assert sum(v["labels"] for v in data["per_kind"].values()) == n_labels
    assert 0.0 < data["recall"] <= 1.0
    assert data["precision"] > 0.5
    assert len(list(plots.glob("*.png"))) == 2
