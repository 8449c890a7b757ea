"""The publishers' time policy end to end: a real Mosquitto, a default `monitor run`.

Accelerated simulation, live replay of an import and offline replay of a recording made at
10x are all scored with the daemon's default ingest limits (docs/time.md, "Publishers").
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.model.card import ModelCard
from monitor.model.store import CARD_FILE, default_model_path
from tests.support.daemon import Daemon, settle, total
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

MONITOR = [sys.executable, "-m", "monitor.cli"]
#: The shipped model's window: each patient's first WINDOW samples only warm up.
WINDOW = ModelCard.from_json((default_model_path() / CARD_FILE).read_text()).window


def _run(*args: str) -> str:
    done = subprocess.run([*MONITOR, *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_accelerated_simulation_is_scored_by_a_default_daemon(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """`simulate --scenario mixed --speed 60`: no clock_skew, every full window scored."""
    daemon = Daemon(mosquitto.url)
    daemon.start(tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        err = _run(
            "simulate", "--broker", mosquitto.url, "--qos", "1", "--patients", "4",
            "--scenario", "mixed", "--speed", "60", "--duration", str(WINDOW + 120),
        )  # fmt: skip
        samples = json.loads(err.strip().splitlines()[-1])["samples"]
        metrics = settle(daemon, samples)
    finally:
        assert daemon.stop() == 0
    assert total(metrics, "monitor_invalid_messages_total", reason="clock_skew") == 0
    assert total(metrics, "monitor_technical_alerts_total", reason="clock_skew") == 0
    assert total(metrics, "monitor_messages_total", outcome="scored") >= 4 * 60


def _import(tmp_path: Path, rows: int) -> Path:
    """A bedside monitor's CSV export from 2023, imported to a recording."""
    rng = random.Random(1)
    lines = ["Timestamp,HR,SpO2,RESP"]
    for i in range(rows):
        hr = 80 + 3 * math.sin(i / 30) + rng.gauss(0, 1)
        stamp = f"2023-05-01 10:{i // 60:02d}:{i % 60:02d}"
        lines.append(f"{stamp},{hr:.1f},{97 + rng.gauss(0, 0.3):.1f},{16 + rng.gauss(0, 0.5):.1f}")
    csv = tmp_path / "export.csv"
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bed1.jsonl"
    _run("import", str(csv), "--out", str(out), "--patient-id", "bed-1")
    return out


def test_live_replay_of_an_import_is_scored_by_a_default_daemon(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Samples stamped in 2023 are re-stamped at send time: scored, none too old."""
    rows = WINDOW + 60
    recording = _import(tmp_path, rows)
    daemon = Daemon(mosquitto.url)
    daemon.start(tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        _run("replay", str(recording), "--broker", mosquitto.url, "--speed", "100", "--quiet")
        metrics = settle(daemon, rows)
    finally:
        assert daemon.stop() == 0
    assert total(metrics, "monitor_invalid_messages_total", reason="clock_skew") == 0
    assert total(metrics, "monitor_messages_total", outcome="scored") == rows - WINDOW


def test_offline_replay_of_a_live_recording_made_at_10x_is_scored(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Simulated at 10x, recorded live, replayed offline: scored, no clock_skew."""
    recording = tmp_path / "live.jsonl"
    recorder = subprocess.Popen(
        [*MONITOR, "record", "--out", str(recording), "--broker", mosquitto.url],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3.0)  # the recorder imports and subscribes before the simulator starts
        per_patient = WINDOW + 80
        _run(
            "simulate", "--broker", mosquitto.url, "--qos", "1", "--patients", "3",
            "--rate", "10", "--speed", "10", "--duration", str(per_patient / 10),
        )  # fmt: skip
        time.sleep(1.0)
    finally:
        recorder.terminate()
        _, err = recorder.communicate(timeout=30)
    assert f"recorded {3 * per_patient} messages" in err, err
    alerts = tmp_path / "alerts.jsonl"
    out = _run("replay", str(recording), "--offline", "--alerts", str(alerts))
    assert "clock_skew" not in out, out
    assert f"{3 * (per_patient - WINDOW)} samples scored" in out, out
