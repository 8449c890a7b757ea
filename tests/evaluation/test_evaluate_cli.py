"""`monitor evaluate` prints and writes the baselines beside the product, on the same samples."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.evaluation.baselines import read_samples
from monitor.evaluation.report import ONSET_COLUMNS
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


def test_onsets_file_lists_the_onsets_the_report_counts(recording: tuple[Path, Path]) -> None:
    """`--onsets`: one CSV row per counted onset of each detector; per detector the rows
    add up to the report's onsets and false alerts, and each row's time is a sample's."""
    rec, labels = recording
    onsets = rec.parent / "onsets.csv"
    output, report = _evaluate(rec, labels, "--tolerance", "5", "--onsets", str(onsets))
    assert f"onsets: {onsets}" in output
    with onsets.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows, "the mixed scenario raises alerts"
    assert list(rows[0]) == list(ONSET_COLUMNS)
    events = {"product": report["events"], **report["baselines"]}  # type: ignore[dict-item]
    assert {r["detector"] for r in rows} == set(events)
    sample_times = {
        float(t)
        for s in read_samples(
            rec, json.loads((default_model_path() / "card.json").read_text())["features"]
        ).values()
        for t in s.t
    }
    for name, row in events.items():
        mine = [r for r in rows if r["detector"] == name]
        assert len(mine) == row["onsets"], name
        assert sum(r["detects"] == "0" for r in mine) == row["false_alerts"], name
        times = [float(r["t"]) for r in mine]
        assert times == sorted(times), name
        assert set(times) <= sample_times, name
    assert {r["rule"] for r in rows if r["detector"] == "rolling_z"} == {"rolling_z"}


def test_no_baselines_leaves_them_out(recording: tuple[Path, Path]) -> None:
    rec, labels = recording
    output, report = _evaluate(rec, labels, "--no-baselines")
    assert "baselines" not in report
    assert "rolling_z" not in output
    assert "events" in report
