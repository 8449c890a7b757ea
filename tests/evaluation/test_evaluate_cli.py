"""`monitor evaluate` prints and writes the baselines beside the product, on the same samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.evaluation.baselines import read_samples
from monitor.model.store import default_model_path

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seeded mixed-scenario recording (3 patients, 600 s) and its labels."""
    folder = tmp_path_factory.mktemp("rec")
    rec, labels = folder / "mixed.jsonl.gz", folder / "labels.jsonl"
    args = ["simulate", "--recording", str(rec), "--labels", str(labels), "--patients", "3"]
    args += ["--duration", "600", "--scenario", "mixed", "--seed", "4", "--warmup", "120"]
    args += ["--gap", "30", "90", "--start-time", str(START)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return rec, labels


def _evaluate(rec: Path, labels: Path, *extra: str) -> tuple[str, dict[str, object]]:
    report = rec.parent / "report.json"
    args = ["evaluate", "--recording", str(rec), "--labels", str(labels)]
    args += ["--model", str(default_model_path()), "--report", str(report), *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output, json.loads(report.read_text())


def test_report_has_the_event_figures_of_the_product_and_both_baselines(
    recording: tuple[Path, Path],
) -> None:
    rec, labels = recording
    output, report = _evaluate(rec, labels, "--tolerance", "5")
    n_labels = len(labels.read_text().splitlines())
    rows = {name: report["baselines"][name] for name in ("rolling_z", "persistence")}  # type: ignore[index]
    rows["product"] = report["events"]
    for name, row in rows.items():
        assert row["events"] == n_labels, name
        assert 0 <= row["detected"] <= n_labels
        assert row["false_alerts"] <= row["onsets"]
        assert row["scored_hours"] > 0
        assert f"\n{name} " in output
    assert "technical alerts (product" in output
    # The baselines read the samples the product scored: the same patients, and spans that
    # differ only by the warm-up windows (the model's 120 samples, the baselines' 100).
    samples = read_samples(
        rec, json.loads((default_model_path() / "card.json").read_text())["features"]
    )
    assert len(samples) == 3
    product_h, z_h = rows["product"]["scored_hours"], rows["rolling_z"]["scored_hours"]
    assert abs(product_h - z_h) < 3 * 120 / 3600


def test_no_baselines_leaves_them_out(recording: tuple[Path, Path]) -> None:
    rec, labels = recording
    output, report = _evaluate(rec, labels, "--no-baselines")
    assert "baselines" not in report
    assert "rolling_z" not in output
    assert "events" in report
