"""`monitor simulate --quick`: the first anomaly within a minute of the daemon's warm-up."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
from monitor.model.card import ModelCard
from monitor.model.store import CARD_FILE, default_model_path
from simulators.labels import AnomalyLabel, read_labels
from simulators.scenarios import QUICK_WINDOW_SAMPLES

CARD = ModelCard.from_json((default_model_path() / CARD_FILE).read_text())


def _labels(tmp_path: Path, *args: str) -> list[AnomalyLabel]:
    rec, labels = tmp_path / "r.jsonl", tmp_path / "l.jsonl"
    argv = ["simulate", "--recording", str(rec), "--labels", str(labels), "--start-time", "0"]
    result = CliRunner().invoke(main, [*argv, *args])
    assert result.exit_code == 0, result.output
    return read_labels(labels)


def _firsts(labels: list[AnomalyLabel]) -> dict[str, float]:
    first: dict[str, float] = {}
    for lab in labels:
        first[lab.patient_id] = min(first.get(lab.patient_id, lab.start_t), lab.start_t)
    return first


def test_quick_waits_for_the_shipped_window_then_starts_each_patient_within_a_minute(
    tmp_path: Path,
) -> None:
    """At real time (1 Hz) every patient's first event starts 10 to 60 s after sample 120."""
    assert (QUICK_WINDOW_SAMPLES, CARD.sample_period_s) == (CARD.window, 1.0)
    window_s = CARD.window * CARD.sample_period_s
    labels = _labels(tmp_path, "--quick", "--patients", "10", "--duration", str(window_s + 61))
    firsts = _firsts(labels)
    assert len(firsts) == 10  # the mixed scenario: every patient has events
    assert all(window_s + 10 <= t <= window_s + 60 for t in firsts.values()), firsts


def test_quick_scales_the_warm_up_with_the_rate(tmp_path: Path) -> None:
    """At 2 samples/s the window fills in 60 s; the events follow 10 to 60 s later."""
    labels = _labels(tmp_path, "--quick", "--rate", "2", "--patients", "4", "--duration", "121")
    firsts = _firsts(labels)
    assert len(firsts) == 4
    assert all(60 + 10 <= t <= 60 + 60 for t in firsts.values()), firsts


def test_explicit_timing_wins_over_quick(tmp_path: Path) -> None:
    """--quick --warmup 200: no event before 200 s; --quick keeps a given --scenario."""
    late = _firsts(_labels(tmp_path, "--quick", "--warmup", "200", "--duration", "300"))
    assert late
    assert min(late.values()) >= 210
    assert _labels(tmp_path, "--quick", "--scenario", "stable", "--duration", "300") == []
