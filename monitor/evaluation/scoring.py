"""Event-level scoring of alerts against ground-truth labels (pure; see docs/evaluation.md).

A label is detected when a raised alert on the same patient starts within
``[start_t - tolerance_before, end_t + tolerance]`` (`tolerance_before` 0 unless asked for:
annotations marked by hand can lag the event they mark): a physiological alert on the
label's vital (any vital when the label names none), or, for dropouts, a technical alert
whose reason is ``signal_lost`` (for a probe off, ``vital_lost`` on the label's vital;
`monitor.replay.labels.TECHNICAL_KINDS`). A raised
alert is a true positive when it matches some label under the same rule, else a false alarm.

`Evaluation.events_json` also gives the event counting of docs/evaluation.md ("Events"): an
event is detected by its first matching onset, further onsets in its window add nothing, and a
physiological onset outside every window is a false alert; technical alerts are counted on
their own and are false alerts of no physiological label.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


@dataclass(frozen=True, slots=True)
class Onset:
    """One onset a detector is charged with, and whether it detects a label.

    Attributes:
        alert: The raised alert (physiological, or technical where it detects a label).
        detects: True when it matches a label (a hit, first or not); False for a false alert.
    """

    alert: Alert
    detects: bool


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
        magnitude_split: Labels of at least this many sigma go in the ">=" bucket.
        tolerance_seconds: The tolerance in seconds, overriding samples x period (irregular
            series such as one sample per heart beat have no sample period).
        tolerance_before_s: An alert may start this many seconds before a label's start
            (an operator's mark made after the event began); its delay counts as 0.
    """

    tolerance_samples: int = 3
    sample_period_s: float = 1.0
    magnitude_split: float = 4.0
    tolerance_seconds: float | None = None
    tolerance_before_s: float = 0.0

    @property
    def tolerance_s(self) -> float:
        """The tolerance in seconds: `tolerance_seconds` when set, else samples x period."""
        if self.tolerance_seconds is not None:
            return self.tolerance_seconds
        return self.tolerance_samples * self.sample_period_s


@dataclass(slots=True)
class GroupScore:
    """Recall for one slice of labels; the alerts that detected them; per vital, precision.

    Attributes:
        labels: Labels in the slice.
        detected: Those that some raised alert detected.
        delays_s: Delay of each detection, seconds.
        delays_samples: Delay of each detection, samples (where seqs are known).
        hit_ids: The raised alerts (by `id`) that detected a label of the slice.
        alerts: Raised alerts in the slice, or None where an alert cannot belong to it: only
            a vital is named by both a label and an alert; an alert has no anomaly kind or
            magnitude, so per kind and per magnitude only `hits` is known.
        matched_alerts: Of `alerts`, those that detected some label.
    """

    labels: int = 0
    detected: int = 0
    delays_s: list[float] = field(default_factory=list)
    delays_samples: list[float] = field(default_factory=list)
    hit_ids: set[int] = field(default_factory=set, repr=False)
    alerts: int | None = None
    matched_alerts: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the slice's counts and rates as a JSON-ready dict."""
        alerts = self.alerts
        return {
            "labels": self.labels,
            "detected": self.detected,
            "recall": ratio(self.detected, self.labels),
            "median_delay_samples": median(self.delays_samples),
            "median_delay_seconds": median(self.delays_s),
            "hits": len(self.hit_ids),
            "alerts": alerts,
            "false_alarms": None if alerts is None else alerts - self.matched_alerts,
            "precision": None if alerts is None else ratio(self.matched_alerts, alerts),
        }


@dataclass(slots=True)
class Evaluation:
    """The result of `evaluate`; `to_json()` gives the report's JSON.

    Besides the label and alert counts: `onsets` (raised physiological alerts plus technical
    ones that detect a label), `false_onsets` (physiological onsets matching no label),
    `technical_alerts` (raised technical alerts) and `max_onsets_stream_hour` (the most
    physiological onsets on one patient's vital in one hour); `onset_list` holds the counted
    onsets themselves in time order, each with whether it detects a label.
    """

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
    onsets: int = 0
    false_onsets: int = 0
    technical_alerts: int = 0
    max_onsets_stream_hour: int = 0
    false_onsets_by_rule: dict[str, int] = field(default_factory=dict)
    onset_list: list[Onset] = field(default_factory=list)

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

    @property
    def event_precision(self) -> float | None:
        """Detected events / (detected events + false alerts): extra onsets in a window count
        for nothing (None when there is neither)."""
        return ratio(self.detected, self.detected + self.false_onsets)

    @property
    def event_f1(self) -> float | None:
        """Harmonic mean of `event_precision` and recall (None when either is undefined)."""
        p, r = self.event_precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def events_json(self) -> dict[str, Any]:
        """Return the event counting figures (docs/evaluation.md, "Events") as a dict."""
        hours = self.patient_hours
        per_hour = ratio(self.false_onsets, hours) if hours > 0 else None
        return {
            "events": self.labels,
            "detected": self.detected,
            "precision": self.event_precision,
            "recall": self.recall,
            "f1": self.event_f1,
            "median_delay_seconds": median(self.delays_s),
            "p95_delay_seconds": p95(self.delays_s),
            "onsets": self.onsets,
            "false_alerts": self.false_onsets,
            "false_alerts_per_hour": per_hour,
            "false_alerts_per_patient_day": None if per_hour is None else 24.0 * per_hour,
            "max_onsets_stream_hour": self.max_onsets_stream_hour,
            "false_alerts_by_rule": dict(sorted(self.false_onsets_by_rule.items())),
            "scored_hours": hours,
            "technical_alerts": self.technical_alerts,
            "technical_alerts_per_hour": (
                ratio(self.technical_alerts, hours) if hours > 0 else None
            ),
        }

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
            "events": self.events_json(),
        }


def matches(label: Label, alert: Alert, config: ScoringConfig) -> bool:
    """Tell whether a raised alert detects a label (same rule for recall and precision)."""
    if alert.state != "raised" or alert.patient_id != label.patient_id:
        return False
    if not label.start_t - config.tolerance_before_s <= alert.t <= label.end_t + config.tolerance_s:
        return False
    if label.technical:
        # A dropout (whole patient) by `signal_lost`; a probe off by `vital_lost` on its vital.
        return (
            alert.kind == "technical"
            and alert.reason == label.technical_reason
            and (label.vital is None or alert.vital == label.vital)
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


def max_onsets_in_span(alerts: Iterable[Alert], span_s: float = 3600.0) -> int:
    """The largest number of raised physiological alerts on one stream in any `span_s` window.

    A stream is one (patient, vital); the windows are ``[t, t + span_s)`` starting at each
    onset, which is where the maximum over all windows is reached.
    """
    streams: dict[tuple[str, str | None], list[float]] = defaultdict(list)
    for a in alerts:
        if a.state == "raised" and a.kind == "physiological":
            streams[(a.patient_id, a.vital)].append(a.t)
    best = 0
    for times in streams.values():
        t = np.sort(np.asarray(times, dtype=np.float64))
        counts = np.searchsorted(t, t + span_s, side="left") - np.arange(len(t))
        best = max(best, int(counts.max()))
    return best


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
    per_vital: dict[str, GroupScore] = defaultdict(lambda: GroupScore(alerts=0))
    per_magnitude: dict[str, GroupScore] = defaultdict(GroupScore)
    delays_s: list[float] = []
    delays_samples: list[float] = []
    missed: list[Label] = []
    for label in labels:
        items = by_patient.get(label.patient_id, [])
        opens = label.start_t - config.tolerance_before_s
        lo = bisect.bisect_left(times.get(label.patient_id, []), opens)
        hits = [a for a in items[lo:] if matches(label, a, config)]
        groups = (
            per_kind[label.kind],
            per_vital[label.vital or PATIENT_WIDE],
            per_magnitude[magnitude_bucket(label, config.magnitude_split)],
        )
        for g in groups:
            g.labels += 1
            g.hit_ids.update(id(a) for a in hits)
        matched.update(id(a) for a in hits)
        if not hits:
            missed.append(label)
            continue
        first = hits[0]
        delay_s = max(0.0, first.t - label.start_t)
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
        group.alerts = (group.alerts or 0) + 1
        group.matched_alerts += id(alert) in matched
    physiological = [a for a in raised if a.kind == "physiological"]
    technical = [a for a in raised if a.kind != "physiological"]
    false_physiological = [a for a in physiological if id(a) not in matched]
    by_rule = Counter(a.reason or "-" for a in false_physiological)
    # A technical alert is an onset of the scored detector only where it detects a label
    # (dropout, probe off, flatline); otherwise it is reported on its own line, not as a
    # false alert.
    counted = [
        Onset(a, id(a) in matched) for a in raised if a.kind == "physiological" or id(a) in matched
    ]
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
        onsets=len(counted),
        false_onsets=len(false_physiological),
        technical_alerts=len(technical),
        max_onsets_stream_hour=max_onsets_in_span(physiological),
        false_onsets_by_rule=dict(by_rule),
        onset_list=counted,
    )
