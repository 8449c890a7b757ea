"""Score an offline replay's result: alerts against labels, predictions against actuals.

`monitor.replay.offline.run_offline` returns an object with ``alerts`` (AlertEvent dicts or
objects), ``predictions`` (patient -> (t, actual (n, F), predicted (n, F)), as a tuple or an
object with those attributes), ``features``, ``samples_scored`` and ``elapsed_s``. This module
turns it into an `Evaluation` and the per-patient series the plots need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.core.codec import DEFAULT_LIMITS, CodecLimits
from monitor.evaluation.baselines import (
    BASELINES,
    BaselineRule,
    baseline_alerts,
    read_samples,
    scored_hours,
)
from monitor.evaluation.report import PatientSeries
from monitor.evaluation.rmse import prediction_rmse
from monitor.evaluation.scoring import Alert, Evaluation, ScoringConfig, alert_from_dict, evaluate
from monitor.replay.labels import Label


@dataclass(frozen=True, slots=True)
class Scored:
    """An evaluation with what it was computed from, for reports and plots."""

    evaluation: Evaluation
    alerts: list[Alert]
    series: dict[str, PatientSeries]
    features: list[str]
    extra: dict[str, Any]


def to_alert(obj: Any) -> Alert:
    """Turn an AlertEvent (dict, dataclass or pydantic model) into a scoring `Alert`."""
    if isinstance(obj, Alert):
        return obj
    if isinstance(obj, Mapping):
        return alert_from_dict(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return alert_from_dict(asdict(obj))
    if hasattr(obj, "model_dump"):
        return alert_from_dict(obj.model_dump())
    raise TypeError(f"not an alert event: {obj!r}")


def to_series(obj: Any) -> PatientSeries:
    """Turn (t, actual, predicted), or an object with those attributes, into `PatientSeries`."""
    if isinstance(obj, tuple | list):
        t, actual, predicted = obj
    else:
        t, actual, predicted = obj.t, obj.actual, obj.predicted
    a = np.asarray(actual, dtype=np.float64)
    return PatientSeries(
        np.asarray(t, dtype=np.float64),
        a.reshape(len(a), -1),
        np.asarray(predicted, dtype=np.float64).reshape(len(a), -1),
    )


def patient_hours(series: Mapping[str, PatientSeries]) -> float:
    """Sum over patients of the observed span (last minus first sample time), in hours."""
    return sum(float(s.t[-1] - s.t[0]) for s in series.values() if len(s.t)) / 3600.0


def score_result(
    result: Any,
    labels: Sequence[Label],
    *,
    config: ScoringConfig | None = None,
    noise_floor: Mapping[str, float] | None = None,
    observed_hours: float | None = None,
) -> Scored:
    """Score an offline result.

    Args:
        result: The `OfflineResult` (see the module docstring).
        labels: Ground-truth windows.
        config: Matching rules.
        noise_floor: Vital -> noise sigma, where known, for the RMSE table.
        observed_hours: Patient-hours observed; by default the prediction series' spans.

    Returns:
        The evaluation, the alerts and series it used, and run figures for the report.
    """
    alerts = [to_alert(a) for a in result.alerts]
    raw = getattr(result, "predictions", None) or {}
    series = {str(p): to_series(s) for p, s in raw.items()}
    features = [str(f) for f in result.features]
    rmse = prediction_rmse(
        ((s.actual, s.predicted) for s in series.values()), features, noise_floor
    )
    hours = patient_hours(series) if observed_hours is None else observed_hours
    evaluation = evaluate(alerts, labels, patient_hours=hours, config=config, rmse=rmse)
    elapsed = float(result.elapsed_s)
    # The replay's own rate: samples scored per second of its wall time (reading the file,
    # decoding, windows, model, detector); warm-up samples take time but are not counted.
    extra = {
        "samples_scored": int(result.samples_scored),
        "elapsed_s": elapsed,
        "samples_per_second": result.samples_scored / elapsed if elapsed > 0 else None,
    }
    return Scored(evaluation, alerts, series, features, extra)


def score_baselines(
    recording: Path,
    features: Sequence[str],
    labels: Sequence[Label],
    *,
    config: ScoringConfig | None = None,
    rule: BaselineRule | None = None,
    limits: CodecLimits = DEFAULT_LIMITS,
) -> dict[str, Evaluation]:
    """Run every baseline on the recording's accepted samples and score it like the product.

    Args:
        recording: The recording the product replayed.
        features: The model's features (the same samples the codec accepts for it).
        labels: Ground-truth windows.
        config: Matching rules (the product's).
        rule: The baselines' alert rule.
        limits: The codec's bounds.

    Returns:
        Baseline name -> its evaluation; its hours are the span of the samples it scores
        (after its own warm-up window).
    """
    rule = rule or BaselineRule()
    samples = read_samples(recording, features, limits)
    out: dict[str, Evaluation] = {}
    for name in BASELINES:
        alerts = baseline_alerts(samples, features, name, rule)
        # The persistence residual needs one sample more than the z-score: its first
        # difference ends at the second sample.
        warmup = rule.window + (name == "persistence")
        hours = scored_hours(samples.values(), warmup)
        out[name] = evaluate(alerts, labels, patient_hours=hours, config=config)
    return out
