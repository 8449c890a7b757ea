"""Reports of an evaluation: a terminal table, a JSON file, and PNG plots of a few patients."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.evaluation.scoring import Alert, Evaluation, GroupScore
from monitor.replay.labels import Label


@dataclass(frozen=True, slots=True)
class PatientSeries:
    """One patient's actual and predicted values over time.

    Attributes:
        t: Sample times, shape (n,).
        actual: Actual values, shape (n, F).
        predicted: Predictions for the same samples, shape (n, F); NaN where none.
    """

    t: npt.NDArray[np.float64]
    actual: npt.NDArray[np.float64]
    predicted: npt.NDArray[np.float64]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rows(title: str, groups: Mapping[str, GroupScore]) -> list[str]:
    """One slice's table: `hits` are the alerts that detected its labels; `alerts` and
    `prec` only where an alert belongs to a slice (per vital; "-" per kind and magnitude)."""
    lines = [
        f"{title:<16} {'labels':>7} {'found':>6} {'recall':>7} {'delay(n)':>9} {'hits':>6} "
        f"{'alerts':>7} {'prec':>6}"
    ]
    for name, g in sorted(groups.items()):
        j = g.to_json()
        alerts = "-" if j["alerts"] is None else str(j["alerts"])
        lines.append(
            f"  {name:<14} {g.labels:>7} {g.detected:>6} {_fmt(j['recall']):>7} "
            f"{_fmt(j['median_delay_samples'], 1):>9} {j['hits']:>6} {alerts:>7} "
            f"{_fmt(j['precision']):>6}"
        )
    return lines


def format_table(evaluation: Evaluation) -> str:
    """Return a plain-text summary of an evaluation for the terminal."""
    j = evaluation.to_json()
    lines = [
        f"precision {_fmt(j['precision'])}  recall {_fmt(j['recall'])}  f1 {_fmt(j['f1'])}",
        f"labels {evaluation.labels}  detected {evaluation.detected}  "
        f"alerts {evaluation.alerts}  false alarms {evaluation.false_alarms}",
        f"delay samples median {_fmt(j['median_delay_samples'], 1)} "
        f"p95 {_fmt(j['p95_delay_samples'], 1)}  seconds median "
        f"{_fmt(j['median_delay_seconds'], 2)} p95 {_fmt(j['p95_delay_seconds'], 2)}",
        f"false alarms per patient-hour {_fmt(j['false_alarms_per_patient_hour'], 4)} "
        f"over {evaluation.patient_hours:.2f} patient-hours",
        "",
        *_rows("per kind", evaluation.per_kind),
        *_rows("per vital", evaluation.per_vital),
        *_rows("per magnitude", evaluation.per_magnitude),
    ]
    if evaluation.rmse:
        lines += ["", f"{'rmse':<16} {'n':>8} {'model':>9} {'persist':>9} {'noise':>9}"]
        for name, r in evaluation.rmse.items():
            lines.append(
                f"  {name:<14} {r.n:>8} {_fmt(r.model):>9} {_fmt(r.persistence):>9} "
                f"{_fmt(r.noise_floor):>9}"
            )
    return "\n".join(lines)


def format_comparison(product: Evaluation, baselines: Mapping[str, Evaluation]) -> str:
    """Return the event-counting table of the product and each baseline, same samples.

    One row per detector: events, detected, precision, recall, F1, median and p95 delay from
    the event's start (s), false alerts per hour and per patient-day, the most onsets on one
    stream in one hour, and the scored span; then the product's technical alerts.
    """
    head = (
        f"{'detector':<12} {'events':>6} {'found':>6} {'prec':>6} {'recall':>6} {'f1':>6} "
        f"{'dly50 s':>8} {'dly95 s':>8} {'FA/h':>8} {'FA/pday':>8} {'max/h':>6} {'hours':>8}"
    )
    lines = ["events (onsets; extra onsets in an event add nothing)", head]
    for name, e in {"product": product, **baselines}.items():
        j = e.events_json()
        lines.append(
            f"{name:<12} {j['events']:>6} {j['detected']:>6} {_fmt(j['precision']):>6} "
            f"{_fmt(j['recall']):>6} {_fmt(j['f1']):>6} "
            f"{_fmt(j['median_delay_seconds'], 2):>8} {_fmt(j['p95_delay_seconds'], 2):>8} "
            f"{_fmt(j['false_alerts_per_hour'], 2):>8} "
            f"{_fmt(j['false_alerts_per_patient_day'], 1):>8} "
            f"{j['max_onsets_stream_hour']:>6} {j['scored_hours']:>8.3f}"
        )
    j = product.events_json()
    lines.append(
        f"technical alerts (product, not scored unless a label is a dropout or probe off): "
        f"{j['technical_alerts']} ({_fmt(j['technical_alerts_per_hour'], 2)}/h)"
    )
    return "\n".join(lines)


def write_json(evaluation: Evaluation, path: Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write the evaluation's JSON report, with `extra` keys (run figures) added at the top."""
    report = {**evaluation.to_json(), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


ONSET_COLUMNS = ("detector", "patient_id", "vital", "t", "seq", "kind", "rule", "detects")


def write_onsets(path: Path, detectors: Mapping[str, Evaluation]) -> None:
    """Write every detector's counted onsets as CSV, one row each (`ONSET_COLUMNS`).

    The rows are what the report's `onsets` and `false_alerts` count: `detects` is 1 where the
    onset matches a label, 0 for a false alert; `rule` is the rule or baseline that raised it,
    `vital` is empty for a patient-wide alert, `seq` where known. Detectors in the given order,
    each in time order.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(ONSET_COLUMNS)
        for name, evaluation in detectors.items():
            for onset in evaluation.onset_list:
                a = onset.alert
                w.writerow(
                    [
                        name,
                        a.patient_id,
                        a.vital or "",
                        repr(a.t),
                        "" if a.seq is None else a.seq,
                        a.kind,
                        a.reason or "",
                        int(onset.detects),
                    ]
                )


Span = tuple[str, str | None, float, float]


def alert_spans(alerts: Sequence[Alert], end_t: float) -> list[Span]:
    """Pair raised and cleared (or expired) events into (patient, vital, start, end) spans.

    An alert still raised at the end runs to `end_t`.
    """
    open_: dict[tuple[str, str | None], float] = {}
    spans: list[Span] = []
    for a in sorted(alerts, key=lambda a: a.t):
        key = (a.patient_id, a.vital)
        if a.state == "raised" and key not in open_:
            open_[key] = a.t
        elif a.state in ("cleared", "expired") and key in open_:
            spans.append((*key, open_.pop(key), a.t))
    spans += [(*key, start, end_t) for key, start in open_.items()]
    return spans


def pick_patients(labels: Sequence[Label], patients: Sequence[str], count: int) -> list[str]:
    """Choose up to `count` patients to plot: the most-labelled first, then by id."""
    per = Counter(label.patient_id for label in labels)
    return sorted(patients, key=lambda p: (-per[p], p))[:count]


def plot_patients(
    out_dir: Path,
    series: Mapping[str, PatientSeries],
    features: Sequence[str],
    alerts: Sequence[Alert],
    labels: Sequence[Label],
    count: int = 4,
) -> list[Path]:
    """Write one PNG per chosen patient: actual vs predicted, labels and alert spans shaded.

    Returns:
        The files written.
    """
    from matplotlib.figure import Figure  # only the plotting path pays for matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for pid in pick_patients(labels, list(series), count):
        s = series[pid]
        end_t = float(s.t[-1]) if len(s.t) else 0.0
        spans = [x for x in alert_spans(alerts, end_t) if x[0] == pid]
        fig = Figure(figsize=(12, 2.0 * len(features) + 0.5))
        axes = fig.subplots(len(features), 1, sharex=True, squeeze=False)[:, 0]
        for j, (ax, name) in enumerate(zip(axes, features, strict=True)):
            ax.plot(s.t, s.actual[:, j], lw=0.8, color="black", label="actual")
            ax.plot(s.t, s.predicted[:, j], lw=0.8, color="tab:blue", label="predicted")
            for lab in labels:
                if lab.patient_id == pid and lab.vital in (None, name):
                    ax.axvspan(lab.start_t, lab.end_t, color="tab:red", alpha=0.2, lw=0)
            for _p, vital, start, stop in spans:
                if vital in (None, name):
                    ax.axvspan(start, max(stop, start + 0.5), color="tab:orange", alpha=0.3, lw=0)
            ax.set_ylabel(name)
        axes[0].set_title(f"{pid}: actual (black), predicted (blue), label (red), alert (orange)")
        axes[-1].set_xlabel("t (unix s)")
        path = out_dir / f"{pid}.png"
        fig.savefig(path, dpi=80)
        written.append(path)
    return written
