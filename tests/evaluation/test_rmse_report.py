"""Prediction RMSE against persistence, and the table, JSON and PNG reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluation.report import (
    PatientSeries,
    alert_spans,
    format_table,
    plot_patients,
    write_json,
)
from monitor.evaluation.rmse import prediction_rmse
from monitor.evaluation.scoring import Alert, evaluate
from monitor.replay.labels import Label


def test_rmse_of_model_and_persistence_on_known_series() -> None:
    """Rows 1.. are scored; NaN predictions are skipped for both; sums pool across patients."""
    actual = np.array([[0.0, 10.0], [1.0, 10.0], [3.0, 10.0], [6.0, 10.0]])
    predicted = np.array([[np.nan, np.nan], [1.0, 11.0], [2.0, np.nan], [6.0, 12.0]])
    other = (np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0]]))
    out = prediction_rmse([(actual, predicted), other], ["a", "b"], noise_floor={"a": 0.5})
    # a: model errors 0, 1, 0, 2 -> sqrt(5/4); persistence 1, 2, 3, 2 -> sqrt(18/4)
    assert out["a"].n == 4
    assert out["a"].model == pytest.approx(np.sqrt(5 / 4))
    assert out["a"].persistence == pytest.approx(np.sqrt(18 / 4))
    assert out["a"].noise_floor == 0.5
    # b: rows with predictions: errors 1, 2, 0 -> sqrt(5/3); persistence 0, 0, 0
    assert (out["b"].n, out["b"].persistence, out["b"].skill) == (3, 0.0, None)
    assert out["b"].model == pytest.approx(np.sqrt(5 / 3))
    assert out["a"].to_json()["skill_vs_persistence"] == pytest.approx(1 - np.sqrt(5 / 18))


def test_persistence_of_a_slower_vital_is_its_own_previous_sample() -> None:
    """A vital in every other sample (a pressure at half the ECG's rate): each of its
    samples is compared with its previous one, not with the sample before, which lacks
    it; so every one of them after the first is scored."""
    nan = np.nan
    actual = np.array([[0.0, 10.0], [1.0, nan], [2.0, 13.0], [3.0, nan], [4.0, 19.0]])
    predicted = np.array([[nan, nan], [1.0, nan], [2.0, 12.0], [3.0, nan], [4.0, 20.0]])
    out = prediction_rmse([(actual, predicted)], ["ecg", "abp"])
    assert out["abp"].n == 2
    assert out["abp"].persistence == pytest.approx(np.sqrt((3.0**2 + 6.0**2) / 2))
    assert out["abp"].model == pytest.approx(1.0)
    assert out["ecg"].n == 4


def test_alert_spans_pair_raised_with_cleared_and_run_open_ones_to_the_end() -> None:
    """Raised/cleared pairs give spans per patient and vital; an unclosed one ends at end_t."""
    alerts = [
        Alert("p1", "spo2", 5.0),
        Alert("p1", "spo2", 9.0, state="cleared"),
        Alert("p1", "heart_rate", 7.0),
        Alert("p2", "spo2", 6.0),
    ]
    assert sorted(alert_spans(alerts, 20.0)) == [
        ("p1", "heart_rate", 7.0, 20.0),
        ("p1", "spo2", 5.0, 9.0),
        ("p2", "spo2", 6.0, 20.0),
    ]


def test_reports_table_json_and_plots(tmp_path: Path) -> None:
    """The table names the figures, the JSON has the documented keys, a PNG per chosen patient."""
    labels = [Label("p1", "a", "spike", 3.0, 3.0, 3, 3, 8.0)]
    alerts = [Alert("p1", "a", 3.0, 3), Alert("p2", "b", 1.0, 1)]
    result = evaluate(alerts, labels, patient_hours=2.0)
    table = format_table(result)
    assert "precision 0.500  recall 1.000  f1 0.667" in table
    assert "false alarms per patient-hour 0.5000" in table
    write_json(result, tmp_path / "r.json", extra={"samples_scored": 12})
    report = json.loads((tmp_path / "r.json").read_text())
    for key in (
        "precision",
        "recall",
        "f1",
        "median_delay_samples",
        "p95_delay_samples",
        "false_alarms_per_patient_hour",
        "per_kind",
        "per_vital",
        "samples_scored",
    ):
        assert key in report
    assert report["per_kind"]["spike"]["detected"] == 1
    t = np.arange(1.0, 7.0)
    series = {p: PatientSeries(t, np.ones((6, 2)), np.ones((6, 2))) for p in ("p1", "p2", "p3")}
    files = plot_patients(tmp_path / "plots", series, ["a", "b"], alerts, labels, count=2)
    assert [f.name for f in files] == ["p1.png", "p2.png"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
