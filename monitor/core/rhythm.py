"""Beat rhythm: premature beats on a beat waveform, which a next-sample model cannot see.

A model that predicts an ECG (or arterial pressure, or pleth) waveform one sample ahead
sees the shape of each beat, not its timing: a premature beat of normal shape (an atrial
premature beat) leaves residuals like any normal beat's, whose onset is never predicted to
the sample either (docs/detection.md, "Rhythm"). Bedside monitors judge rhythm on the
intervals between beats; so does this module, for the features a model card marks as beat
waveforms (`monitor.model.card.RhythmSpec`, found by `monitor train` on the training rows):

* **Beats.** A streaming slope detector per patient and feature: the slope is the change
  over `SLOPE_S` (12 ms, the steep part of a QRS complex or a pressure upstroke); a beat
  starts where the slope passes `FRACTION` of the median peak slope of the last beats (of
  the largest slope in the first `WARMUP_S` seconds, before any beat), at least
  `REFRACTORY_S` after the last beat's start. It is confirmed `CONFIRM_S` after its start
  (past its peak), and its peak slope is then known.
* **Prematurity.** A confirmed beat whose interval from the beat before it is shorter than
  ``(1 - premature)`` times both the median of the last `MEMORY` intervals and the interval
  just before it is premature: the detector's `premature` rule raises at the confirming
  sample (`monitor.core.rules`). A beat early against the median alone, but not against
  its neighbour, is a rhythm that sped up over several beats (a sinus arrhythmia), not an
  ectopic beat.
  ``premature`` is a setting (`detector.premature`, default 0.2: 20 % early).
* **Several beat waveforms** (two ECG leads, a lead and a pressure): a premature beat
  raises only when a second one also confirms a premature beat within `AGREE_S` (0.15 s),
  once, at the later of the two: noise on one lead makes beats there alone (multi-lead
  noise rejection, as bedside arrhythmia analysis does). One beat waveform raises alone.
* **Gaps.** A silence longer than `GAP_S` starts the patient's rhythm afresh: no interval
  spans a gap. No beat for `RELEARN_S` (3 s) does too, and the detection level is learned
  again from a new warm-up.

State is a small object per patient and feature, in lists indexed by a slot of the shared
patient table (`SlotMap`), marked held by slot generation as the other components are; it
runs in Python per row, only for models with a beat feature (no cost for any other).
The same detector finds the beats of the training rows (`beat_intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median

import numpy as np

from monitor.core.slots import Placement, Rows, SlotMap
from monitor.core.types import BoolArray, FloatArray

__all__ = [
    "AGREE_S",
    "CONFIRM_S",
    "FRACTION",
    "GAP_S",
    "MEMORY",
    "REFRACTORY_S",
    "RELEARN_S",
    "SLOPE_S",
    "WARMUP_S",
    "BeatRhythm",
    "BeatTracker",
    "beat_intervals",
]

#: The slope is the change over this long (the steep part of a QRS or an upstroke).
SLOPE_S = 0.012
#: Before the first beats, the largest slope of this first stretch sets the level.
WARMUP_S = 2.0
#: A beat starts where the slope passes this share of the recent beats' median peak slope.
FRACTION = 0.5
#: Beats recalled for the peak slope's median (the first `MIN_PEAKS` of them: the warm-up).
PEAKS = 8
MIN_PEAKS = 3
#: No beat starts within this of the last one's start (a T wave; 240 beats per minute).
REFRACTORY_S = 0.25
#: A beat is confirmed, its peak slope known, this long after its start.
CONFIRM_S = 0.06
#: Intervals in the median a new one is judged against (none is judged before that many).
MEMORY = 8
#: A silence longer than this starts the rhythm afresh.
GAP_S = 0.25
#: With several beat waveforms, another must confirm a premature beat within this.
AGREE_S = 0.15
#: No beat for this long (above the 2 s median interval, 30 a minute, that a beat waveform
#: may have, `monitor.training.rhythm`): the detection level is learned afresh. A large
#: artefact in the warm-up, or a lead whose amplitude fell, would otherwise hold it above
#: every beat for ever.
RELEARN_S = 3.0


class BeatTracker:
    """The beats of one stream of one feature, sample by sample.

    Args:
        period_s: The stream's sample period (sets the slope's span in samples).
    """

    __slots__ = (
        "_beat_t",
        "_inside",
        "_lag",
        "_last_t",
        "_peak",
        "_peaks",
        "_recent",
        "_rr",
        "_start",
        "_warm",
        "early_t",
        "intervals",
    )

    def __init__(self, period_s: float) -> None:
        self._lag = max(1, round(SLOPE_S / period_s)) if period_s > 0 else 1
        self._peaks: list[float] = []
        self._warm = 0.0
        #: When this feature last confirmed a premature beat (-inf: never).
        self.early_t = -math.inf
        self.reset(-math.inf)

    def reset(self, t: float) -> None:
        """Start afresh at time `t` (a gap): no interval spans it; peak slopes are kept."""
        self._recent: list[float] = []
        self._start = t
        self._last_t = t
        self._beat_t = -math.inf
        self._inside = False
        self._peak = 0.0
        self._rr = math.nan
        #: The last `MEMORY` intervals between beats, oldest first.
        self.intervals: list[float] = []

    def step(self, t: float, x: float) -> float | None:
        """Take one sample; return the interval before a beat confirmed at it (NaN for the
        first beat after a start), None when no beat is confirmed here."""
        if t - self._last_t > GAP_S:
            self.reset(t)
        self._last_t = t
        recent = self._recent
        recent.append(x)
        if len(recent) <= self._lag:
            return None
        slope = abs(x - recent.pop(0))
        if self._inside:
            if slope > self._peak:
                self._peak = slope
            if t - self._beat_t < CONFIRM_S:
                return None
            self._inside = False
            self._peaks.append(self._peak)
            if len(self._peaks) > PEAKS:
                del self._peaks[0]
            return self._rr
        peaks = self._peaks
        if t - max(self._beat_t, self._start) > RELEARN_S:
            peaks.clear()
            self._warm = 0.0
            self.reset(t)
        if len(peaks) >= MIN_PEAKS:
            level = FRACTION * median(peaks)
        elif t - self._start < WARMUP_S:
            self._warm = max(self._warm, slope)
            return None
        else:
            level = FRACTION * self._warm
        if slope > level and t - self._beat_t >= REFRACTORY_S:
            self._rr = t - self._beat_t if self._beat_t > -math.inf else math.nan
            self._beat_t = t
            self._inside = True
            self._peak = slope
        return None

    def judge(self, rr: float, premature: float) -> bool:
        """Whether a confirmed beat with interval `rr` is premature against the recent
        intervals (their median, and the interval just before it); then remember it."""
        if math.isnan(rr):
            return False
        past = self.intervals
        early = len(past) >= MEMORY and rr < (1.0 - premature) * min(median(past), past[-1])
        past.append(rr)
        if len(past) > MEMORY:
            del past[0]
        return early


def beat_intervals(values: FloatArray, period_s: float) -> FloatArray:
    """The intervals between the beats `BeatTracker` finds in one gap-free series (the
    training rows' check of a beat waveform, `monitor.training.rhythm`)."""
    tracker = BeatTracker(period_s)
    out = []
    for i, x in enumerate(np.asarray(values, dtype=np.float64).tolist()):
        if math.isnan(x):
            continue
        rr = tracker.step(i * period_s, x)
        if rr is not None and not math.isnan(rr):
            out.append(rr)
    return np.array(out, dtype=np.float64)


class BeatRhythm:
    """Premature beats of each patient's beat-waveform features, over the patient table.

    Args:
        columns: The model's feature columns that are beat waveforms.
        premature: Per column: a beat this much earlier than the median interval is
            premature (0.2: 20 %).
        period_s: The model's sample period.
        n_features: Values per row.
        patients: The patient table (shared with the scale and the detector).
    """

    def __init__(
        self,
        columns: Sequence[int],
        premature: Sequence[float],
        period_s: float,
        n_features: int,
        patients: SlotMap,
    ) -> None:
        if len(columns) != len(premature) or not columns:
            raise ValueError("need one premature share per column, at least one column")
        if not all(0.0 < p < 1.0 for p in premature):
            raise ValueError("premature shares must lie in (0, 1)")
        self.columns = list(columns)
        self.premature = list(premature)
        self.period_s = period_s
        self.n_features = n_features
        self.patients = patients
        self._rows = Rows(patients)
        self._trackers: list[list[BeatTracker] | None] = []

    def intervals(self, patient_id: str) -> list[list[float]] | None:
        """The patient's recent intervals between beats, per column (oldest first), or
        None before its first sample."""
        slot = self._rows.slot_of(patient_id)
        mine = None if slot is None else self._trackers[slot]
        return None if mine is None else [list(tracker.intervals) for tracker in mine]

    def find(self, placed: Placement, actual: FloatArray, t: Sequence[float]) -> BoolArray | None:
        """Take a batch's rows in order; return ``(B, F)`` premature beats confirmed at
        each row (None: none in the batch).

        Args:
            placed: The batch placed in the patient table.
            actual: Measured values ``(B, F)`` (NaN: not in the sample, skipped).
            t: Sample time of each row.
        """
        slots = placed.slots
        cap = self._rows.grow()
        if cap is not None:
            self._trackers += [None] * (cap - len(self._trackers))
        stale = self._rows.stale(slots)
        if stale is not None:
            fresh = np.unique(slots[stale])
            for slot in fresh.tolist():
                self._trackers[slot] = [BeatTracker(self.period_s) for _ in self.columns]
            self._rows.hold(fresh)
        found: list[tuple[int, int]] = []
        values = actual[:, self.columns].tolist()
        trackers = self._trackers
        alone = len(self.columns) == 1
        for row, (slot, ti, xs) in enumerate(zip(slots.tolist(), t, values, strict=True)):
            mine = trackers[slot]
            assert mine is not None  # held: reset above
            for j, (tracker, x) in enumerate(zip(mine, xs, strict=True)):
                if x != x:  # NaN: not in this sample
                    continue
                rr = tracker.step(ti, x)
                if rr is None or not tracker.judge(rr, self.premature[j]):
                    continue
                # With several beat waveforms, a premature beat counts where a second one
                # saw it too (within AGREE_S), once: noise on one lead is not a beat.
                seen = [o.early_t for o in mine if o is not tracker]
                tracker.early_t = ti
                if alone or any(ti - e <= AGREE_S for e in seen):
                    found.append((row, self.columns[j]))
                    for o in mine:
                        o.early_t = -math.inf
        if not found:
            return None
        out = np.zeros((len(slots), self.n_features), dtype=np.bool_)
        rows, cols = zip(*found, strict=True)
        out[list(rows), list(cols)] = True
        return out
