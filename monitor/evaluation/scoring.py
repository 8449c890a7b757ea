"""Event-level scoring of alerts against ground-truth labels (pure; see docs/evaluation.md).

A label is detected when a raised alert on the same patient starts within
``[start_t, end_t + tolerance]``: a physiological alert on the label's vital (any vital when the
label names none), or, for dropouts, a technical alert whose reason is ``signal_lost``. A raised
alert is a true positive when it matches some label under the same rule, else a false alarm.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.evaluation.rmse import VitalRmse
from monitor.evaluation.stats import median, p95, ratio
from monitor.replay.labels import Label

PATIENT_WIDE = "*"


@dataclass(frozen=True, slots=True)
class Alert:
    """The fields of an alert event that scoring needs (see monitor/core/alerts.py).

    Attributes:
        patient_id: The patient.
        vital: The vital, or None for a patient-wide technical alert.
        t: Sample time of the sample that triggered it, unix seconds.
        seq: Sequence number of that sample, when known.
        kind: "physiological" or "technical".
        state: "raised" or "cleared".
        reason: Why (technical alerts: e.g. "signal_lost").
    """

    patient_id: str
    vital: str | None
    t: float
    seq: int | None = None
    kind: str = "physiological"
    state: str = "raised"
    reason: str | None = None


def alert_from_dict(obj: Mapping[str, Any]) -> Alert:
    """Build an `Alert` from an AlertEvent JSON object (extra keys are ignored)."""
    seq = obj.get("seq")
    return Alert(
        patient_id=str(obj["patient_id"]),
        vital=None if obj.get("vital") is None else str(obj["vital"]),
        t=float(obj["t"]),
        seq=None if seq is None else int(seq),
        kind=str(obj.get("kind", "physiological")),
        state=str(obj.get("state", "raised")),
        reason=None if obj.get("reason") is None else str(obj["reason"]),
    )


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """How alerts are matched to labels.

    Attributes:
        tolerance_samples: An alert may start this many samples after a label's end.
        sample_period_s: Seconds per sample, to turn the tolerance into seconds.
        technical_reasons: Technical alert reasons that detect dropout labels.
        magnitude_split: Labels of at least this many sigma go in the ">=" bucket.
    """

    tolerance_samples: int = 3
    sample_period_s: float = 1.0
    technical_reasons: frozenset[str] = frozenset({"signal_lost"})
    magnitude_split: float = 4.0

    @property
    def tolerance_s(self) -> float:
        """The tolerance in seconds."""
        return self.tolerance_samples * self.sample_period_s


@dataclass(slots=True)
class GroupScore:
    """Recall (and, per vital, precision) for one slice of labels and alerts."""

    labels: int = 0
    detected: int = 0
    delays_s: list[float] = field(default_factory=list)
    delays_samples: list[float] = field(default_factory=list)
    alerts: int = 0
    matched_alerts: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the slice's counts and rates as a JSON-ready dict."""
        return {
            "labels": self.labels,
            "detected": self.detected,
            "recall": ratio(self.detected, self.labels),
            "median_delay_samples": median(self.delays_samples),
            "median_delay_seconds": median(self.delays_s),
            "alerts": self.alerts,
            "false_alarms": self.alerts - self.matched_alerts,
            "precision": ratio(self.matched_alerts, self.alerts),
        }


@dataclass(slots=True)
class Evaluation:
    """The result of `evaluate`; `to_json()` gives the report's JSON."""

    labels: int
    detected: int
    alerts: int
    matched_alerts: int
    patient_hours: float
    delays_s: list[float]
    delays_samples: list[float]
    per_kind: dict[str, GroupScore]
    per_vital: dict[str, GroupScore]
    per_magnitude: dict[str, GroupScore]
    rmse: dict[str, VitalRmse] = field(default_factory=dict)
    missed: list[Label] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """Matched raised alerts / raised alerts (None without alerts)."""
        return ratio(self.matched_alerts, self.alerts)

    @property
    def recall(self) -> float | None:
        """Detected labels / labels (None without labels)."""
        return ratio(self.detected, self.labels)

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall (None when either is undefined)."""
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def false_alarms(self) -> int:
        """Raised alerts that match no label."""
        return self.alerts - self.matched_alerts

    @property
    def false_alarms_per_patient_hour(self) -> float | None:
        """False alarms / observed patient-hours (None when nothing was observed)."""
        return None if self.patient_hours <= 0 else self.false_alarms / self.patient_hours

    def to_json(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict (top-level keys as in docs/evaluation.md)."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "median_delay_samples": median(self.delays_samples),
            "p95_delay_samples": p95(self.delays_samples),
            "median_delay_seconds": median(self.delays_s),
            "p95_delay_seconds": p95(self.delays_s),
            "false_alarms_per_patient_hour": self.false_alarms_per_patient_hour,
            "labels": self.labels,
            "detected": self.detected,
            "alerts": self.alerts,
            "false_alarms": self.false_alarms,
            "patient_hours": self.patient_hours,
            "per_kind": {k: g.to_json() for k, g in sorted(self.per_kind.items())},
            "per_vital": {k: g.to_json() for k, g in sorted(self.per_vital.items())},
            "per_magnitude": {k: g.to_json() for k, g in sorted(self.per_magnitude.items())},
            "rmse": {k: r.to_json() for k, r in self.rmse.items()},
        }


def matches(label: Label, alert: Alert, config: ScoringConfig) -> bool:
    """Tell whether a raised alert detects a label (same rule for recall and precision)."""
    if alert.state != "raised" or alert.patient_id != label.patient_id:
        return False
    if not label.start_t <= alert.t <= label.end_t + config.tolerance_s:
        return False
    if label.technical:
        return (
            alert.kind == "technical"
            and alert.reason in config.technical_reasons
            and (label.vital is None or alert.vital in (None, label.vital))
        )
    if alert.kind == "technical":
        # A stuck sensor is a technical fault: its own alert detects a flatline label.
        return (
            label.kind == "flatline" and alert.reason == "flatline" and alert.vital == label.vital
        )
    return label.vital is None or alert.vital == label.vital


def magnitude_bucket(label: Label, split: float) -> str:
    """Return ">=S", "<S" or "unknown" for a label's magnitude against the split S."""
    if label.magnitude_sigma is None:
        return "unknown"
    return f">={split:g}" if label.magnitude_sigma >= split else f"<{split:g}"


def evaluate(
    alerts: Iterable[Alert],
    labels: Sequence[Label],
    *,
    patient_hours: float,
    config: ScoringConfig | None = None,
    rmse: Mapping[str, VitalRmse] | None = None,
) -> Evaluation:
    """Score raised alerts against labels.

    Args:
        alerts: Alert events; cleared events are ignored.
        labels: Ground-truth windows.
        patient_hours: Hours observed, summed over patients (the false-alarm rate's denominator).
        config: Matching rules; defaults to `ScoringConfig()`.
        rmse: Prediction RMSE per vital, copied into the result.

    Returns:
        Counts, delays and breakdowns per kind, vital and magnitude bucket.
    """
    config = config or ScoringConfig()
    raised = sorted((a for a in alerts if a.state == "raised"), key=lambda a: (a.t, a.patient_id))
    by_patient: dict[str, list[Alert]] = defaultdict(list)
    for alert in raised:
        by_patient[alert.patient_id].append(alert)
    times = {p: [a.t for a in items] for p, items in by_patient.items()}

    matched: set[int] = set()
    per_kind: dict[str, GroupScore] = defaultdict(GroupScore)
    per_vital: dict[str, GroupScore] = defaultdict(GroupScore)
    per_magnitude: dict[str, GroupScore] = defaultdict(GroupScore)
    delays_s: list[float] = []
    delays_samples: list[float] = []
    missed: list[Label] = []
    for label in labels:
        items = by_patient.get(label.patient_id, [])
        lo = bisect.bisect_left(times.get(label.patient_id, []), label.start_t)
        hits = [a for a in items[lo:] if matches(label, a, config)]
        groups = (
            per_kind[label.kind],
            per_vital[label.vital or PATIENT_WIDE],
            per_magnitude[magnitude_bucket(label, config.magnitude_split)],
        )
        for g in groups:
            g.labels += 1
        matched.update(id(a) for a in hits)
        if not hits:
            missed.append(label)
            continue
        first = hits[0]
        delay_s = first.t - label.start_t
        delay_n = (
            None if first.seq is None or label.start_seq is None else first.seq - label.start_seq
        )
        delays_s.append(delay_s)
        if delay_n is not None:
            delays_samples.append(float(delay_n))
        for g in groups:
            g.detected += 1
            g.delays_s.append(delay_s)
            if delay_n is not None:
                g.delays_samples.append(float(delay_n))

    for alert in raised:
        group = per_vital[alert.vital or PATIENT_WIDE]
        group.alerts += 1
        group.matched_alerts += id(alert) in matched
    return Evaluation(
        labels=len(labels),
        detected=len(labels) - len(missed),
        alerts=len(raised),
        matched_alerts=len(matched),
        patient_hours=patient_hours,
        delays_s=delays_s,
        delays_samples=delays_samples,
        per_kind=dict(per_kind),
        per_vital=dict(per_vital),
        per_magnitude=dict(per_magnitude),
        rmse=dict(rmse or {}),
        missed=missed,
    )
