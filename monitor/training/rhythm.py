"""Which features are beat waveforms: the card's `rhythm` (`monitor.model.card.RhythmSpec`).

Serving judges the beats of a beat waveform (`monitor.core.rhythm`): an ECG lead, an
arterial pressure, a pleth. Training finds them in the training rows with the same beat
detector, so no flag names them: a feature sampled at most `MAX_PERIOD_S` apart (50 Hz
or faster), whose training rows hold at least `MIN_BEATS` beats, with a median interval
between `MIN_INTERVAL_S` and `MAX_INTERVAL_S` (30 to 200 per minute), and either

* at least `MIN_REGULAR` of the intervals regular (`regular_share`: within 25 % of the
  median, or one of an ectopic pair, a premature beat and its pause): its ectopic beats
  are told by their timing (`ectopy` "timing", the `premature` rule); or
* an irregular rhythm (atrial fibrillation) whose beats repeat one shape: the median
  distance of the beats' shapes from the template of the beats before them
  (`monitor.core.rhythm.BeatShape`) at most `MAX_SHAPE`: on an electrical signal (an ECG
  lead: its unit in the registry is one of `ELECTRICAL_UNITS`) its ectopic beats are told
  by their shape (`ectopy` "shape", the `beat_shape` rule); on a pulse wave (a pleth, an
  arterial pressure), whose pulses change size from beat to beat in atrial fibrillation
  and whose shape no bedside monitor classifies, none is (`ectopy` "none"). Either way
  its beats' silence is asystole.

Measured on the bench recordings (docs/detection.md, "Rhythm"): the ECG leads, the arterial
pressure and the pleths pass on timing (0.98 to 1.00 regular); MIT-BIH 200's lead (atrial
fibrillation, 0.87 regular) on shape (median distance 0.21); the respiration channels do
not (their median intervals, 0.26 s and 2.6 s, are out of range); minute numerics and beat
series are too slow to be waveforms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitor.core.rhythm import beat_intervals
from monitor.core.vitals import BUILTIN, Registry
from monitor.model.card import RhythmSpec
from monitor.training.data import Segment

__all__ = ["ELECTRICAL_UNITS", "MAX_PERIOD_S", "regular_share", "rhythm_specs"]

#: A beat waveform is sampled at least this often (50 Hz).
MAX_PERIOD_S = 0.02
MIN_BEATS = 20
MIN_INTERVAL_S = 0.3
MAX_INTERVAL_S = 2.0
#: Share of intervals regular (`regular_share`).
MIN_REGULAR = 0.9
#: An interval within this share of the median is regular; so is an ectopic pair whose
#: sum is within it of two medians.
REGULAR_BAND = 0.25
#: An interval shorter than the median by this share starts an ectopic pair.
EARLY = 0.2
#: Units of an electrical signal (an ECG lead), compared in lower case: only there is an
#: irregular rhythm's ectopy told by the shape of its beats.
ELECTRICAL_UNITS = frozenset({"v", "mv", "uv", "\u00b5v", "\u03bcv"})
#: An irregular rhythm is a beat waveform when its beats' median shape distance is at most
#: this (MIT-BIH leads: 0.07 to 0.21; a paced lead of changing shapes 0.92; a lead whose
#: T waves pass for beats 2.08).
MAX_SHAPE = 0.3


def regular_share(rr: npt.NDArray[np.float64], mid: float) -> float:
    """The share of intervals `rr` within 25 % of `mid` (the median), or part of an ectopic
    pair: an interval over 20 % short whose sum with the next is within 25 % of two
    medians (a premature beat and its compensatory pause, as in bigeminy)."""
    ok = np.abs(rr / mid - 1.0) <= REGULAR_BAND
    early = rr[:-1] < (1.0 - EARLY) * mid
    pair = early & (np.abs((rr[:-1] + rr[1:]) / (2.0 * mid) - 1.0) <= REGULAR_BAND)
    ok[:-1] |= pair
    ok[1:] |= pair
    return float(np.mean(ok))


def rhythm_specs(
    segments: Sequence[Segment],
    features: Sequence[str],
    sample_period_s: float,
    signals: Registry = BUILTIN,
) -> dict[str, RhythmSpec]:
    """The features of the training segments that are beat waveforms.

    Args:
        segments: The training split (no interval spans two segments).
        features: Names of the value columns.
        sample_period_s: Seconds between samples.
        signals: Where the features' units are (an electrical one's irregular rhythm is
            judged by shape).

    Returns:
        Feature name -> what its beats were; empty for slow data.
    """
    if sample_period_s > MAX_PERIOD_S or not segments:
        return {}
    out: dict[str, RhythmSpec] = {}
    for i, name in enumerate(features):
        shapes: list[float] = []
        rr = np.concatenate(
            [beat_intervals(s.values[:, i], sample_period_s, shapes) for s in segments]
        )
        if rr.size < MIN_BEATS or not shapes:
            continue
        mid = float(np.median(rr))
        regular = regular_share(rr, mid)
        shape = float(np.median(shapes))
        if not MIN_INTERVAL_S <= mid <= MAX_INTERVAL_S:
            continue
        if regular >= MIN_REGULAR or shape <= MAX_SHAPE:
            electrical = name in signals and signals[name].unit.lower() in ELECTRICAL_UNITS
            out[name] = RhythmSpec(
                beats=int(rr.size),
                interval_s=round(mid, 6),
                regular_share=round(regular, 4),
                shape_distance=round(shape, 4),
                ectopy="timing" if regular >= MIN_REGULAR else "shape" if electrical else "none",
            )
    return out
