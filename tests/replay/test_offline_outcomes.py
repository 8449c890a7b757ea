"""Offline runs say what became of every sample: outcome counts by reason, a warning when
most was not scored, and `--config` for the pipeline's settings (`replay --offline`,
`evaluate`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry

from monitor.cli import main
from monitor.core.types import REJECT_REASONS
from monitor.engine.pipeline import OUTCOMES
from monitor.model.store import default_model_path
from monitor.replay.outcomes import (
    format_gains,
    format_outcomes,
    outcome_counts,
    unscored_warning,
)
from monitor.replay.recording import Record, RecordingWriter, read_recording
from monitor.service.metrics import Metrics

START = 1_700_000_000.0
VITALS = {
    "heart_rate": 72.0,
    "spo2": 97.0,
    "resp_rate": 15.0,
    "bp_sys": 120.0,
    "bp_dia": 80.0,
    "temperature": 36.8,
}


def _payload(pid: str, t: float, seq: int, vitals: dict[str, float]) -> bytes:
    return json.dumps({"v": 1, "patient_id": pid, "t": t, "seq": seq, "vitals": vitals}).encode()


def _write(path: Path, records: list[Record]) -> Path:
    with RecordingWriter(path, source="test") as writer:
        for record in records:
            writer.write(record)
    return path


def _replay(recording: Path, tmp_path: Path, *extra: str) -> Result:
    args = ["replay", str(recording), "--offline", "--model", str(default_model_path())]
    return CliRunner().invoke(main, [*args, "--alerts", str(tmp_path / "alerts.jsonl"), *extra])


def _printed_counts(text: str) -> dict[str, int]:
    """The outcome line's counts, parsed back."""
    line = next(x for x in text.splitlines() if x.startswith("outcomes of "))
    return {
        name: int(n.replace(",", ""))
        for name, n in re.findall(r"([a-z_]+) ([\d,]+) \(", line.split(": ", 1)[1])
    }


def test_outcome_names_and_reject_reasons_are_distinct() -> None:
    """One flat mapping holds outcomes and invalid reasons: no name may mean both."""
    assert not set(REJECT_REASONS) & set(OUTCOMES)


def test_counts_split_invalid_by_reason_and_put_scored_first() -> None:
    """`invalid` becomes its reasons; zero counts go; scored first, then largest first."""
    metrics = Metrics.create(CollectorRegistry())
    metrics.messages.labels("scored").inc(5)
    metrics.messages.labels("warming_up").inc(2)
    metrics.messages.labels("late").inc(0)
    metrics.messages.labels("invalid").inc(9)
    metrics.invalid.labels("missing_vital").inc(6)
    metrics.invalid.labels("clock_skew").inc(3)
    counts = outcome_counts(metrics.messages, metrics.invalid)
    assert list(counts.items()) == [
        ("scored", 5),
        ("missing_vital", 6),
        ("clock_skew", 3),
        ("warming_up", 2),
    ]
    warning = unscored_warning(counts)
    assert warning is not None
    assert "11 of 16 samples" in warning
    assert "missing_vital 6 (37.5 %), clock_skew 3 (18.8 %), warming_up 2 (12.5 %)" in warning
    assert unscored_warning({"scored": 80, "warming_up": 20}) is None  # 20 %: no warning
    assert unscored_warning({"scored": 79, "warming_up": 21}) is not None
    assert unscored_warning({}) == "WARNING: no samples were received: nothing was scored"
    assert format_outcomes({}) == "outcomes: no samples received"


@pytest.mark.parametrize(
    ("reason", "make"),
    [
        (  # a device sending only a vital the model does not use (none of its six)
            "missing_vital",
            lambda i, now: _payload("p1", now, i, {"seed_signal": 0.5}),
        ),
        # Ahead by more than any clock offset the daemon learns (docs/time.md).
        ("clock_skew", lambda i, now: _payload("p1", now + 7200.0, i, VITALS)),
    ],
)
def test_a_run_that_scores_nothing_names_the_reason_and_warns(
    tmp_path: Path, reason: str, make: Callable[[int, float], bytes]
) -> None:
    """Every message refused: the counts name the reason, and a WARNING line says that all
    of them went unscored, naming it."""
    n = 300
    records = [Record("vitals/p1", make(i, START + i), START + i) for i in range(n)]
    result = _replay(_write(tmp_path / "r.jsonl.gz", records), tmp_path)
    assert result.exit_code == 0, result.output
    assert _printed_counts(result.stderr) == {reason: n}
    warnings = [x for x in result.stderr.splitlines() if x.startswith("WARNING")]
    assert warnings == [
        f"WARNING: {n} of {n} samples received (100.0 %) were not scored; "
        f"top reasons: {reason} {n} (100.0 %)"
    ]
    assert "0 samples scored" in result.stderr


def test_a_normal_run_counts_every_sample_read(tmp_path: Path) -> None:
    """A simulated recording with duplicates, a refused payload and a gap: the printed counts
    add up to the samples read, most were scored, and no warning is printed."""
    sim = tmp_path / "sim.jsonl.gz"
    args = ["simulate", "--recording", str(sim), "--patients", "3", "--duration", "800"]
    done = CliRunner().invoke(main, [*args, "--seed", "2", "--start-time", str(START)])
    assert done.exit_code == 0, done.output
    records: list[Record] = []
    duplicates = broken = 0
    for i, record in enumerate(read_recording(sim)):
        if 1200 <= i < 1260:  # 20 s of silence for everyone: signal lost
            continue
        records.append(record)
        if i % 50 == 0:
            records.append(record)  # a duplicate
            duplicates += 1
        if i % 400 == 1:
            records.append(Record(record.topic, b"{not json", record.received_at))
            broken += 1
    result = _replay(_write(tmp_path / "r.jsonl.gz", records), tmp_path)
    assert result.exit_code == 0, result.output
    counts = _printed_counts(result.stderr)
    assert sum(counts.values()) == len(records)
    assert (counts["duplicate"], counts["bad_json"]) == (duplicates, broken) == (46, 5)
    assert counts["scored"] > 0.8 * len(records)
    assert f"{counts['scored']} samples scored" in result.stderr
    assert "WARNING" not in result.stderr


def test_config_file_sets_the_offline_pipeline(tmp_path: Path) -> None:
    """`--config` reaches the offline pipeline: a payload limit below every message's size
    refuses them all as too_large; a bad settings file is one error line, exit code 2."""
    records = [
        Record("vitals/p1", _payload("p1", START + i, i, VITALS), START + i) for i in range(200)
    ]
    rec = _write(tmp_path / "r.jsonl", records)
    config = tmp_path / "monitor.toml"
    config.write_text("[ingest]\nmax_payload_bytes = 64\n")
    result = _replay(rec, tmp_path, "--config", str(config))
    assert result.exit_code == 0, result.output
    assert _printed_counts(result.stderr) == {"too_large": 200}
    config.write_text("[window]\nmax_gap_s = -1\n")
    result = _replay(rec, tmp_path, "--config", str(config))
    assert result.exit_code == 2
    assert "window.max_gap_s" in result.stderr
    assert "Traceback" not in result.output


def test_evaluate_reports_the_outcomes_in_text_and_json(tmp_path: Path) -> None:
    """`evaluate` prints the same counts it writes to the JSON report, takes --config, and
    warns when most samples were not scored (here: a gap limit of 0.5 s resets every
    window at 1 Hz, so every sample is warming up)."""
    sim, labels = tmp_path / "sim.jsonl.gz", tmp_path / "labels.jsonl"
    args = ["simulate", "--recording", str(sim), "--labels", str(labels), "--patients", "2"]
    args += ["--duration", "400", "--scenario", "mixed", "--warmup", "150", "--seed", "4"]
    done = CliRunner().invoke(main, [*args, "--start-time", str(START)])
    assert done.exit_code == 0, done.output
    report = tmp_path / "report.json"
    base = ["evaluate", "--recording", str(sim), "--labels", str(labels)]
    base += ["--model", str(default_model_path()), "--report", str(report)]
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 0, result.output
    counts = _printed_counts(result.stdout)
    assert json.loads(report.read_text())["outcomes"] == counts
    assert sum(counts.values()) == 800
    assert counts["scored"] == json.loads(report.read_text())["samples_scored"] > 0
    config = tmp_path / "monitor.toml"
    config.write_text("[window]\nmax_gap_s = 0.5\n")
    result = CliRunner().invoke(main, [*base, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["outcomes"] == {"warming_up": 800}
    assert "WARNING: 800 of 800 samples received (100.0 %) were not scored" in result.stderr


def test_the_gains_line_names_the_beat_waveforms_when_there_are_any() -> None:
    """`replay --offline` and `evaluate` print the gains, and for a model with beat
    waveforms a second line naming them with how their ectopic beats are told."""
    assert format_gains({"heart_rate": 1.0}) == "alarm gains: heart_rate x1.00"
    assert format_gains({"ecg_mv": 5.27}, {"ecg_mv": "20% early"}) == (
        "alarm gains: ecg_mv x5.27\nectopic beats raise on: ecg_mv (20% early)"
    )
    assert format_gains({"ecg_mv": 1.0, "ecg_v": 1.0}, {"ecg_v": "shape over 0.50"}) == (
        "alarm gains: ecg_mv x1.00 ecg_v x1.00\nectopic beats raise on: ecg_v (shape over 0.50)"
    )
