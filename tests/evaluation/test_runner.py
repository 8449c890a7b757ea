"""Scoring an offline replay's result object (the shape `run_offline` returns)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from monitor.evaluation.runner import score_result
from monitor.replay.labels import Label


def test_score_result_uses_alert_dicts_series_spans_and_run_figures() -> None:
    """Alert dicts are scored, patient-hours come from series spans, RMSE from the arrays."""
    t = np.arange(0.0, 1801.0)  # 1801 samples: half an hour per patient
    actual = np.column_stack([np.zeros(len(t)), np.ones(len(t))])
    predicted = actual + 0.5
    result = SimpleNamespace(
        alerts=[
            {
                "kind": "physiological",
                "patient_id": "p1",
                "vital": "a",
                "state": "raised",
                "t": 100.0,
                "seq": 100,
            },
            {
                "kind": "physiological",
                "patient_id": "p2",
                "vital": "b",
                "state": "raised",
                "t": 5.0,
                "seq": 5,
            },
        ],
        predictions={
            "p1": (t, actual, predicted),
            "p2": SimpleNamespace(t=t, actual=actual, predicted=predicted),
        },
        features=["a", "b"],
        samples_scored=3602,
        elapsed_s=2.0,
    )
    labels = [Label("p1", "a", "spike", 99.0, 99.0, 99, 99, 9.0)]
    scored = score_result(result, labels, noise_floor={"a": 0.25})
    j = scored.evaluation.to_json()
    assert (j["recall"], j["precision"], j["median_delay_samples"]) == (1.0, 0.5, 1.0)
    assert j["patient_hours"] == 1.0
    assert j["false_alarms_per_patient_hour"] == 1.0
    assert j["rmse"]["a"]["model"] == pytest.approx(0.5)
    assert j["rmse"]["a"]["persistence"] == 0.0
    assert j["rmse"]["a"]["n"] == 2 * 1800
    assert scored.extra == {"samples_scored": 3602, "elapsed_s": 2.0, "samples_per_second": 1801.0}
