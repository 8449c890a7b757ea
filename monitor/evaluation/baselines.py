"""Simple detectors scored beside the product on the same samples (docs/evaluation.md).

* ``rolling_z``: the z-score of each sample against the mean and standard deviation of the
  `BaselineRule.window` samples before it.
* ``persistence``: the same rule on the first difference, the residual of predicting each
  sample by the previous one ("next = last").

Either alerts when ``|z| > threshold`` on `hits` of the last `of` samples and emits only
onsets (the first sample of each run of such samples). Both read the recording the product
replayed, through the same codec and the model's features, so they see the accepted samples
in order; duplicates and late samples (a sequence number not above the patient's last) are
dropped as the window store drops them. Everything is numpy over whole series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.core.codec import DEFAULT_LIMITS, CodecLimits, Decoded, decode
from monitor.evaluation.scoring import Alert
from monitor.replay.recording import read_blocks

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Rows of past-value windows held at once by `rolling_z` (rows x window float64s).
_CHUNK_ROWS = 1 << 15


@dataclass(frozen=True, slots=True)
class BaselineRule:
    """The alert rule shared by the baselines.

    Attributes:
        window: Past samples the mean and standard deviation are taken over.
        threshold: A sample is out when its |z| is above this.
        hits: Out samples needed among the last `of` to alert.
        of: Samples the rule looks at (the current one and those before it).
    """

    window: int = 100
    threshold: float = 4.0
    hits: int = 2
    of: int = 3

    def __post_init__(self) -> None:
        if self.window < 2 or not 1 <= self.hits <= self.of:
            raise ValueError(f"need window >= 2 and 1 <= hits <= of, got {self}")


@dataclass(frozen=True, slots=True)
class PatientSamples:
    """One patient's accepted samples, in arrival order.

    Attributes:
        t: Sample times, unix seconds, shape (n,).
        seq: Sequence numbers, shape (n,).
        values: Values in feature order, shape (n, F).
    """

    t: FloatArray
    seq: IntArray
    values: FloatArray


def rolling_z(x: FloatArray, window: int) -> FloatArray:
    """The z-score of each sample against the `window` samples before it.

    Population standard deviation (ddof 0). Where the window is constant, z is 0 for an
    equal sample and +-inf for any other. The first `window` samples have no past window:
    NaN.

    Args:
        x: The series, shape (n,).
        window: Past samples per score.

    Returns:
        z, shape (n,).
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.full(len(x), np.nan)
    if len(x) <= window:
        return z
    # Windows x[i - window : i] for i = window .. n-1: a strided view, reduced a chunk of rows
    # at a time (exact sums per window, no cumulative-sum cancellation on long series).
    past = np.lib.stride_tricks.sliding_window_view(x, window)[:-1]
    for start in range(0, len(past), _CHUNK_ROWS):
        rows = past[start : start + _CHUNK_ROWS]
        mean = rows.mean(axis=1)
        std = rows.std(axis=1)
        dev = x[window + start : window + start + len(rows)] - mean
        flat = np.where(dev == 0, 0.0, np.copysign(np.inf, dev))
        chunk = np.where(std > 0, dev / np.where(std > 0, std, 1.0), flat)
        z[window + start : window + start + len(rows)] = chunk
    return z


def rule_onsets(z: FloatArray, rule: BaselineRule) -> IntArray:
    """Indices where the rule's alarm starts: |z| > threshold on `hits` of the last `of`.

    Args:
        z: Scores; NaN never counts as out.
        rule: The rule.

    Returns:
        Ascending indices into `z` of the first sample of each alarm run.
    """
    with np.errstate(invalid="ignore"):
        out = (np.abs(z) > rule.threshold).astype(np.int64)
    counts = np.convolve(out, np.ones(rule.of, dtype=np.int64))[: len(out)]
    alarm = counts >= rule.hits
    starts = alarm & ~np.concatenate(([False], alarm[:-1]))
    return np.flatnonzero(starts).astype(np.int64)


def zscore_onsets(x: FloatArray, rule: BaselineRule) -> IntArray:
    """Onset indices of the rolling z-score of the signal itself."""
    return rule_onsets(rolling_z(x, rule.window), rule)


def persistence_onsets(x: FloatArray, rule: BaselineRule) -> IntArray:
    """Onset indices of the rule on the first difference (the "next = last" residual).

    The difference ending at sample i belongs to sample i, so indices are into `x`.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(0, dtype=np.int64)
    return rule_onsets(rolling_z(np.diff(x), rule.window), rule) + 1


#: Baseline name -> onset function, in report order.
BASELINES: dict[str, Callable[[FloatArray, BaselineRule], IntArray]] = {
    "rolling_z": zscore_onsets,
    "persistence": persistence_onsets,
}


def _patient_of(topic: str) -> str | None:
    _, sep, last = topic.rpartition("/")
    return last if sep else None


def read_samples(
    recording: Path, features: Sequence[str], limits: CodecLimits = DEFAULT_LIMITS
) -> dict[str, PatientSamples]:
    """Read a recording's accepted samples per patient, as the daemon's codec accepts them.

    Args:
        recording: A recording (JSON Lines, optionally gzip).
        features: The model's features, in order (a message lacking one is refused, unless
            `limits.partial`: its value is then NaN).
        limits: The codec's bounds (the daemon's ``ingest`` settings).

    Returns:
        Patient -> samples in arrival order, duplicates and late samples dropped.

    Raises:
        DataError: A line other than the last does not parse as a record.
    """
    names = tuple(features)
    pids: list[str] = []
    times: list[float] = []
    seqs: list[int] = []
    rows: list[FloatArray] = []
    for block in read_blocks(recording):
        columns = decode(
            block.payloads,
            [_patient_of(topic) for topic in block.topics],
            block.received_at,
            features=names,
            limits=limits,
            validated=block.validated if block.longest <= limits.max_bytes else None,
        )
        if not columns.rest:  # the common block: every payload a plain accepted sample
            pids += columns.patient_ids
            times += columns.t
            seqs += columns.seq
            rows.append(columns.values)
            continue
        for result in columns.results():
            if isinstance(result, Decoded):
                for sample in result.samples:
                    pids.append(result.patient_id)
                    times.append(sample.t)
                    seqs.append(sample.seq)
                    rows.append(sample.values.reshape(1, len(names)))
    values = np.concatenate(rows) if rows else np.zeros((0, len(names)))
    return _split(pids, np.asarray(times, np.float64), np.asarray(seqs, np.int64), values)


def _split(
    pids: list[str], t: FloatArray, seq: IntArray, values: FloatArray
) -> dict[str, PatientSamples]:
    """Group samples by patient (stable) and drop those the window store would drop."""
    out: dict[str, PatientSamples] = {}
    if not pids:
        return out
    names, codes = np.unique(np.asarray(pids, dtype=object), return_inverse=True)
    for code, pid in enumerate(names):
        idx = np.flatnonzero(codes == code)
        s = seq[idx]
        # Accepted seqs strictly increase, so the last accepted one is the running maximum.
        before = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(s)[:-1]))
        keep = idx[s > before]
        out[str(pid)] = PatientSamples(t[keep], seq[keep], values[keep])
    return out


def baseline_alerts(
    samples: Mapping[str, PatientSamples],
    features: Sequence[str],
    name: str,
    rule: BaselineRule | None = None,
) -> list[Alert]:
    """Run one baseline on every (patient, vital) and return its onsets as raised alerts.

    Args:
        samples: Patient -> accepted samples (`read_samples`).
        features: Column names of the samples' values.
        name: A key of `BASELINES`.
        rule: The alert rule; defaults to `BaselineRule()`.

    Returns:
        Raised physiological alerts (reason: the baseline's name), sorted by time.
    """
    rule = rule or BaselineRule()
    onsets = BASELINES[name]
    alerts: list[Alert] = []
    for pid, s in samples.items():
        for j, vital in enumerate(features):
            # A vital missing from some samples (a partial vital set, NaN) is scored on its
            # own observed samples, as the product scores only the vitals a sample carries.
            column = s.values[:, j]
            observed = np.flatnonzero(~np.isnan(column))
            if observed.size == 0:
                continue
            for k in onsets(column[observed], rule).tolist():
                i = int(observed[k])
                alerts.append(Alert(pid, vital, float(s.t[i]), int(s.seq[i]), reason=name))
    alerts.sort(key=lambda a: (a.t, a.patient_id))
    return alerts


def scored_hours(samples: Iterable[PatientSamples], warmup: int) -> float:
    """Hours spanned by the samples a detector scores, summed over patients.

    Args:
        samples: Each patient's samples.
        warmup: Leading samples that only fill the detector's window.

    Returns:
        Sum of (last - first scored sample time) / 3600.
    """
    return sum(float(s.t[-1] - s.t[warmup]) for s in samples if len(s.t) > warmup) / 3600.0
