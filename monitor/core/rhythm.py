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
  again from a new warm-up. Before that, a beat overdue by `SEARCHBACK` median intervals
  is searched for at half the level (Pan and Tompkins' search-back): a run of smaller
  beats is not lost for 3 s.
* **Asystole.** A beat waveform that had a rhythm (more than `MEMORY` beats heard, over
  gaps of the stream up to `KEEP_HEARD_S`) and hears no beat in `asystole_s`
  (`detector.asystole_s`, 4 s) of received signal is silent; when every such waveform of
  the patient still being received is silent, the patient has no heartbeat: `asystole` is
  flagged on the first of them, at every sample until a beat is heard. A beat is heard
  when its peak slope is at least `HEARD` of the median of the last heard ones, and the
  detection level never falls below half that (a level relearned over a flat line would
  take its noise for beats, one every `REFRACTORY_S`, and miss the heartbeat's return
  between them). One lead silent while a pulse wave or another lead beats is not
  asystole (the 2015 Challenge's false asystole alarms: an ECG lead's amplitude fell, the
  pleth went on beating).

State is a small object per patient and feature, in lists indexed by a slot of the shared
patient table (`SlotMap`), marked held by slot generation as the other components are; it
runs in Python per row, only for models with a beat feature (no cost for any other).
The same detector finds the beats of the training rows (`beat_intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

import numpy as np

from monitor.core.slots import Placement, Rows, SlotMap
from monitor.core.types import BoolArray, FloatArray

__all__ = [
    "AGREE_S",
    "CONFIRM_S",
    "FRACTION",
    "GAP_S",
    "HEARD",
    "KEEP_HEARD_S",
    "MEMORY",
    "REFRACTORY_S",
    "RELEARN_S",
    "SEARCHBACK",
    "SLOPE_S",
    "WARMUP_S",
    "BeatRhythm",
    "BeatTracker",
    "Beats",
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
#: A beat overdue by this many median intervals is searched for at half the level.
SEARCHBACK = 1.66
#: A beat is heard (for asystole) when its peak slope is at least this share of the median
#: peak slope of the last heard beats.
HEARD = 0.25
#: A silence of the stream up to this long keeps the heard beats (asystole then counts the
#: signal received, not the silence); after a longer one the stream is heard afresh.
KEEP_HEARD_S = 30.0


@dataclass(frozen=True, slots=True)
class Beats:
    """What a batch's rows showed of the rhythm (each ``(B, F)``; None: nothing anywhere).

    Attributes:
        premature: Premature beats confirmed at each row.
        asystole: The patient has had no heartbeat for `asystole_s` at this row (flagged
            on one beat waveform per patient).
    """

    premature: BoolArray | None
    asystole: BoolArray | None


class BeatTracker:
    """The beats of one stream of one feature, sample by sample.

    Args:
        period_s: The stream's sample period (sets the slope's span in samples).
    """

    __slots__ = (
        "_beat_t",
        "_due",
        "_floor",
        "_heard",
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
        "heard_n",
        "intervals",
        "quiet_from",
    )

    def __init__(self, period_s: float) -> None:
        self._lag = max(1, round(SLOPE_S / period_s)) if period_s > 0 else 1
        self._peaks: list[float] = []
        self._warm = 0.0
        #: When this feature last confirmed a premature beat (-inf: never).
        self.early_t = -math.inf
        self._heard: list[float] = []
        self._floor = 0.0  # the level never goes below this (from the heard beats)
        #: Heard beats (over gaps up to `KEEP_HEARD_S`).
        self.heard_n = 0
        #: The last heard beat's start plus the stream's own silences since: no beat heard
        #: in `t - quiet_from` seconds of received signal (-inf before any).
        self.quiet_from = -math.inf
        self.reset(-math.inf)

    def reset(self, t: float) -> None:
        """Start afresh at time `t` (a gap, or no beat for `RELEARN_S`): no interval spans
        it; peak slopes and the heard beats are kept."""
        self._recent: list[float] = []
        self._start = t
        self._last_t = t
        self._beat_t = -math.inf
        self._inside = False
        self._peak = 0.0
        self._rr = math.nan
        self._due = math.inf  # a beat later than this is searched for at half the level
        #: The last `MEMORY` intervals between beats, oldest first.
        self.intervals: list[float] = []

    def counts(self, t: float) -> bool:
        """Whether this waveform has a say on asystole at time `t`: it had a rhythm (more
        than `MEMORY` beats heard) and is still received (a sample within `GAP_S`)."""
        return self.heard_n > MEMORY and t - self._last_t <= GAP_S

    def step(self, t: float, x: float) -> float | None:
        """Take one sample; return the interval before a beat confirmed at it (NaN for the
        first beat after a start), None when no beat is confirmed here."""
        if t - self._last_t > GAP_S:
            if t - self._last_t > KEEP_HEARD_S:
                self._heard.clear()
                self._floor = 0.0
                self.quiet_from = -math.inf
                self.heard_n = 0
            else:
                self.quiet_from += t - self._last_t
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
            peak = self._peak
            self._peaks.append(peak)
            if len(self._peaks) > PEAKS:
                del self._peaks[0]
            heard = self._heard
            if len(heard) < MIN_PEAKS or peak >= HEARD * median(heard):
                heard.append(peak)
                if len(heard) > PEAKS:
                    del heard[0]
                self.quiet_from = self._beat_t
                self.heard_n += 1
                if len(heard) >= MIN_PEAKS:
                    self._floor = FRACTION * HEARD * median(heard)
            if len(self.intervals) >= MIN_PEAKS:
                self._due = self._beat_t + SEARCHBACK * median(self.intervals)
            return self._rr
        peaks = self._peaks
        if t - max(self._beat_t, self._start) > RELEARN_S:
            peaks.clear()
            self._warm = 0.0
            self.reset(t)
        if len(peaks) >= MIN_PEAKS:
            level = FRACTION * median(peaks)
            if t > self._due:
                level *= 0.5
        elif t - self._start < WARMUP_S:
            self._warm = max(self._warm, slope)
            if not self._floor:
                return None
            level = 0.0  # a relearn's warm-up: the floor finds the heard beats' kind
        else:
            level = FRACTION * self._warm
        # Never below the floor: a level relearned over a flat line would take its noise
        # for beats, one every REFRACTORY_S, and miss the heartbeat's return between them.
        level = max(level, self._floor)
        if slope > level and t - self._beat_t >= REFRACTORY_S:
            self._rr = t - self._beat_t if self._beat_t > -math.inf else math.nan
            self._beat_t = t
            self._inside = True
            self._peak = slope
        return None

    def judge(self, rr: float, premature: float | None) -> bool:
        """Whether a confirmed beat with interval `rr` is premature against the recent
        intervals (their median, and the interval just before it); then remember it.
        `premature` None: never (the interval is remembered all the same)."""
        if math.isnan(rr):
            return False
        past = self.intervals
        early = (
            premature is not None
            and len(past) >= MEMORY
            and rr < (1.0 - premature) * min(median(past), past[-1])
        )
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
            tracker.judge(rr, None)  # keeps the intervals the search-back reads, as serving
            out.append(rr)
    return np.array(out, dtype=np.float64)


class BeatRhythm:
    """Premature beats and asystole of each patient's beat-waveform features, over the
    patient table.

    Args:
        columns: The model's feature columns that are beat waveforms.
        premature: Per column: a beat this much earlier than the median interval is
            premature (0.2: 20 %); None: not judged on that column.
        period_s: The model's sample period.
        n_features: Values per row.
        patients: The patient table (shared with the scale and the detector).
        asystole_s: No heartbeat heard on any received beat waveform for this long is
            asystole; None: not flagged.
    """

    def __init__(
        self,
        columns: Sequence[int],
        premature: Sequence[float | None],
        period_s: float,
        n_features: int,
        patients: SlotMap,
        asystole_s: float | None = None,
    ) -> None:
        if len(columns) != len(premature) or not columns:
            raise ValueError("need one premature share per column, at least one column")
        if not all(p is None or 0.0 < p < 1.0 for p in premature):
            raise ValueError("premature shares must lie in (0, 1)")
        if asystole_s is not None and not asystole_s > 0.0:
            raise ValueError("asystole_s must be positive")
        self.columns = list(columns)
        self.premature = list(premature)
        self.asystole_s = asystole_s
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

    def find(self, placed: Placement, actual: FloatArray, t: Sequence[float]) -> Beats | None:
        """Take a batch's rows in order; return the premature beats confirmed at each row
        and the rows where the patient is in asystole (None: neither in the batch).

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
        silent: list[tuple[int, int]] = []
        values = actual[:, self.columns].tolist()
        trackers = self._trackers
        alone = len(self.columns) == 1
        limit = self.asystole_s
        for row, (slot, ti, xs) in enumerate(zip(slots.tolist(), t, values, strict=True)):
            mine = trackers[slot]
            assert mine is not None  # held: reset above
            if limit is not None:
                # The usual row: the first waveform, with a rhythm and received, heard a
                # beat within the limit, and vetoes asystole at once.
                lead = mine[0]
                if (
                    not (ti - lead.quiet_from <= limit and lead.counts(ti))
                    and (first := _asystole(mine, ti, limit)) is not None
                ):
                    silent.append((row, self.columns[first]))
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
        if not found and not silent:
            return None
        return Beats(self._mask(found, len(slots)), self._mask(silent, len(slots)))

    def _mask(self, cells: list[tuple[int, int]], n: int) -> BoolArray | None:
        """``(n, F)`` True at the (row, column) cells; None for no cell."""
        if not cells:
            return None
        out = np.zeros((n, self.n_features), dtype=np.bool_)
        rows, cols = zip(*cells, strict=True)
        out[list(rows), list(cols)] = True
        return out


def _asystole(trackers: Sequence[BeatTracker], t: float, limit: float) -> int | None:
    """The index of the first of a patient's beat waveforms to flag asystole on at time
    `t`, or None: every waveform still received (its last sample within `GAP_S`) that has
    had a rhythm (more than `MEMORY` beats heard, over gaps up to `KEEP_HEARD_S`) has heard
    none in `limit` seconds of received signal, and there is one."""
    first = None
    for j, tracker in enumerate(trackers):
        if not tracker.counts(t):
            continue
        if t - tracker.quiet_from <= limit:
            return None
        if first is None:
            first = j
    return first
