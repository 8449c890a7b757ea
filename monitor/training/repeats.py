"""Learn, per feature, how long runs of identical values are in normal data (flatline rule).

A sensor stuck on one value repeats it exactly; a noisy continuous measurement almost never
does. Quantised signals (an ECG in steps of 5 uV, a rounded numeric) and sparse ones (mostly
zeros) repeat values all the time, so a fixed "5 equal values" rule floods them with
'flatline' alerts. Training measures the runs of each feature and writes the rule in the
model card (`monitor.model.card.FlatlineRule`); the daemon raises 'flatline' only for a run
clearly longer than normal (docs/detection.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitor.core.vitals import Registry
from monitor.model.card import FlatlineRule
from monitor.training.data import FloatArray, Segment

#: The run of identical values that this share of the training samples does not exceed is
#: the feature's normal run.
NORMAL_QUANTILE = 0.999

#: The rule of cards without a learned one (and the least any learned rule asks for).
DEFAULT_FLATLINE_SAMPLES = 5


def run_lengths(series: FloatArray) -> FloatArray:
    """For each sample, the length of the run of identical consecutive values it is in.

    NaN (a missing value) never belongs to a run: it ends one and has run length 0.

    Args:
        series: One feature's values, oldest first, shape ``(T,)``.

    Returns:
        Shape ``(T,)``, float64.
    """
    n = len(series)
    if n == 0:
        return np.zeros(0)
    finite = np.isfinite(series)
    same = np.zeros(n, dtype=bool)
    same[1:] = (series[1:] == series[:-1]) & finite[1:] & finite[:-1]
    starts = np.flatnonzero(~same)
    lengths = np.diff(np.append(starts, n))
    out = np.repeat(lengths, lengths).astype(np.float64)
    out[~finite] = 0.0
    return out


def _resolution(values: FloatArray) -> float | None:
    distinct = np.unique(values[np.isfinite(values)])
    if len(distinct) < 2:
        return None
    # Rounded: float steps between decimal values carry representation noise (0.0049999..).
    return float(f"{np.diff(distinct).min():.12g}")


def flatline_rules(
    segments: Sequence[Segment], features: Sequence[str], signals: Registry
) -> dict[str, FlatlineRule]:
    """Measure each feature's repeats over the training segments and derive its rule.

    Args:
        segments: The training split (runs never cross a segment boundary).
        features: Names of the value columns.
        signals: The registry; a signal that declares `flatline_samples` keeps it.

    Returns:
        Feature name -> rule; empty when there is no training sample.
    """
    if not segments or not sum(len(s.values) for s in segments):
        return {}
    rules: dict[str, FlatlineRule] = {}
    for i, name in enumerate(features):
        # A vital held between its own samples (`Segment.observed`) repeats by holding:
        # its runs are counted over the values it was sent with, as serving judges them.
        columns = [
            s.values[:, i] if s.observed is None else s.values[s.observed[:, i], i]
            for s in segments
        ]
        runs = np.concatenate([run_lengths(c) for c in columns])
        runs = runs[runs > 0]
        if not len(runs):
            continue
        repeats = sum(int(np.sum(c[1:] == c[:-1])) for c in columns)
        share = repeats / len(runs)
        normal = int(np.quantile(runs, NORMAL_QUANTILE, method="higher"))
        declared = signals[name].flatline_samples if name in signals else None
        # A sparse signal (mostly one value, in long runs) has a long normal run, so its
        # rule asks for a run longer than any it showed: in effect no flatline alert.
        samples = declared or max(DEFAULT_FLATLINE_SAMPLES, 2 * normal)
        rules[name] = FlatlineRule(
            normal_run=normal,
            longest_run=int(runs.max()),
            repeat_share=round(share, 6),
            resolution=_resolution(np.concatenate(columns)),
            samples=samples,
        )
    return rules
