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
  gaps of the stream up to `KEEP_HEARD_S`, or of any length when the stream stopped in a
  silence) and hears no beat in `asystole_s`
  (`detector.asystole_s`, 4 s) of received signal is silent; when every such waveform of
  the patient still being received is silent, the patient has no heartbeat: `asystole` is
  flagged on the first of them, at every sample until a beat is heard. A beat is heard
  when its peak slope is at least `HEARD` of the median of the last heard ones, and the
  detection level never falls below half that (a level relearned over a flat line would
  take its noise for beats, one every `REFRACTORY_S`, and miss the heartbeat's return
  between them). One lead silent while a pulse wave or another lead beats is not
  asystole (the 2015 Challenge's false asystole alarms: an ECG lead's amplitude fell, the
  pleth went on beating).

* **Shape** (`BeatShape`, for a beat waveform whose rhythm is irregular, as in atrial
  fibrillation, where timing says nothing: the card's `ectopy` "shape"). Each beat's
  waveform, aligned and scaled to fit, is compared with the median of the recent
  normal-shaped beats; a beat far from it (a ventricular beat's wide complex) is
  misshapen, and the detector's `beat_shape` rule raises 0.15 s after its start. With
  several beat waveforms a second one must agree, as for prematurity.

State is a small object per patient and feature, in lists indexed by a slot of the shared
patient table (`SlotMap`), marked held by slot generation as the other components are; it
runs in Python per row, only for models with a beat feature (no cost for any other).
The same detector finds the beats of the training rows (`beat_intervals`).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from monitor.core.slots import Placement, Rows, SlotMap
from monitor.core.state import StateArrays, check_array
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
    "SHAPE_AMP",
    "SHAPE_MEMORY",
    "SHAPE_NOISE",
    "SHAPE_POST_S",
    "SHAPE_PRE_S",
    "SHAPE_RECENT",
    "SHAPE_SHIFT_S",
    "SLOPE_S",
    "WARMUP_S",
    "BeatRhythm",
    "BeatShape",
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
#: signal received, not the silence); after a longer one the stream is heard afresh,
#: unless it stopped in a silence of the heart (no beat for `RELEARN_S`).
KEEP_HEARD_S = 30.0
#: A beat's shape is the waveform from this long before its start to `SHAPE_POST_S` after,
#: aligned on the template within `SHAPE_SHIFT_S` either way: it is judged
#: `SHAPE_POST_S + SHAPE_SHIFT_S` after the beat's start (a wide ventricular complex shows
#: in the whole of it, not in its first `CONFIRM_S`).
SHAPE_PRE_S = 0.06
SHAPE_POST_S = 0.12
SHAPE_SHIFT_S = 0.03
#: The shape is compared at an amplitude within this factor of the template's either way
#: (breathing and posture swing a lead's amplitude by a quarter).
SHAPE_AMP = 1.33
#: Normal-shaped beats in the template (their sample-wise median).
SHAPE_MEMORY = 8
#: A beat is misshapen only if its distance is also this many times the lower quartile of
#: the last `SHAPE_RECENT` beats' distances (in noise every beat is far from the template).
SHAPE_NOISE = 4.0
SHAPE_RECENT = 16


@dataclass(frozen=True, slots=True)
class Beats:
    """What a batch's rows showed of the rhythm (each ``(B, F)``; None: nothing anywhere).

    Attributes:
        premature: Premature beats confirmed at each row.
        asystole: The patient has had no heartbeat for `asystole_s` at this row (flagged
            on one beat waveform per patient).
        misshapen: Beats whose shape differs from the patient's recent beats, judged at
            each row (`BeatShape`).
    """

    premature: BoolArray | None
    asystole: BoolArray | None
    misshapen: BoolArray | None = None


class BeatShape:
    """The shapes of one stream's beats against a template of its recent normal ones.

    A beat's shape is its waveform from `SHAPE_PRE_S` before its start to `SHAPE_POST_S`
    after, less its offset and linear trend (baseline wander). It is compared with the
    template, the sample-wise median of the last `SHAPE_MEMORY` normal-shaped beats, at
    the alignment within `SHAPE_SHIFT_S` and the amplitude within `SHAPE_AMP` that fit
    best; its distance is the norm of the difference over the template's. A beat is
    misshapen when its distance passes `level` and `SHAPE_NOISE` times the lower quartile
    of the recent beats' distances. A new shape that lasts `SHAPE_MEMORY` beats in a row
    (a lead moved, the axis turned) becomes the template.

    Args:
        period_s: The stream's sample period.
        level: The distance above which a beat is misshapen (0.5: half the template's norm).
    """

    __slots__ = (
        "_after",
        "_buf",
        "_hist",
        "_n",
        "_new",
        "_proj",
        "_recent",
        "_template",
        "_tnorm2",
        "_wait",
        "level",
        "seen",
    )

    def __init__(self, period_s: float, level: float) -> None:
        pre = max(1, round(SHAPE_PRE_S / period_s))
        post = max(1, round(SHAPE_POST_S / period_s))
        shift = max(1, round(SHAPE_SHIFT_S / period_s))
        n = pre + post + 1
        self._n = n
        self._after = post + shift  # samples after a beat's start until it is judged
        self._buf: deque[float] = deque(maxlen=n + 2 * shift)
        self._wait = -1  # samples to come before the pending beat is judged (-1: none)
        self._proj = _detrend(n)
        self._hist: list[FloatArray] = []
        self._new: list[FloatArray] = []
        self._recent: list[float] = []
        self._template: FloatArray | None = None
        self._tnorm2 = 0.0
        self.level = level
        #: Where each judged beat's distance is appended (the training rows' measure,
        #: `beat_intervals`); None: nowhere.
        self.seen: list[float] | None = None

    def clear(self, template: bool) -> None:
        """A silence of the stream: no window spans it (nor the template, if `template`)."""
        self._buf.clear()
        self._wait = -1
        if template:
            self._hist, self._new, self._recent = [], [], []
            self._template = None

    def start(self) -> None:
        """A beat started at the sample just taken."""
        self._wait = self._after - 1

    def push(self, x: float) -> bool:
        """Take one sample; True when it completes a misshapen beat's window."""
        self._buf.append(x)
        if self._wait <= 0:
            if self._wait < 0:
                return False
            self._wait = -1
            return self._judge()
        self._wait -= 1
        return False

    def _judge(self) -> bool:
        buf = self._buf
        if len(buf) < (buf.maxlen or 0):
            return False  # the stream began within the window
        w = np.fromiter(buf, dtype=np.float64, count=len(buf))
        windows = sliding_window_view(w, self._n) @ self._proj
        template = self._template
        odd = False
        if template is None:
            take = windows[len(windows) // 2]
        else:
            amp = np.clip(windows @ template / self._tnorm2, 1.0 / SHAPE_AMP, SHAPE_AMP)
            err = np.linalg.norm(windows - amp[:, None] * template, axis=1) / amp
            k = int(np.argmin(err))
            take = windows[k]
            dist = float(err[k]) / math.sqrt(self._tnorm2)
            recent = self._recent
            noise = (
                SHAPE_NOISE * sorted(recent)[(len(recent) - 1) // 4]
                if len(recent) >= SHAPE_MEMORY
                else 0.0
            )
            odd = dist > max(self.level, noise)
            if self.seen is not None:
                self.seen.append(dist)
            recent.append(dist)
            if len(recent) > SHAPE_RECENT:
                del recent[0]
        if odd:
            self._new.append(take)
            if len(self._new) >= SHAPE_MEMORY:  # a new shape that lasts: the template now
                self._hist, self._new = self._new, []
                self._refresh()
        else:
            self._new = []
            self._hist.append(take)
            if len(self._hist) > SHAPE_MEMORY:
                del self._hist[0]
            self._refresh()
        return odd

    def _refresh(self) -> None:
        if len(self._hist) < MIN_PEAKS:
            return
        template: FloatArray = np.median(np.stack(self._hist), axis=0)
        norm2 = float(template @ template)
        self._template, self._tnorm2 = (template, norm2) if norm2 > 0.0 else (None, 0.0)


class BeatTracker:
    """The beats of one stream of one feature, sample by sample.

    Args:
        period_s: The stream's sample period (sets the slope's span in samples).
        shape: Judge each beat's shape at this level (`BeatShape`); None: not judged.
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
        "odd",
        "odd_t",
        "quiet_from",
        "shape",
    )

    def __init__(self, period_s: float, shape: float | None = None) -> None:
        self._lag = max(1, round(SLOPE_S / period_s)) if period_s > 0 else 1
        #: Each beat's shape against the recent ones (None: not judged).
        self.shape = None if shape is None else BeatShape(period_s, shape)
        #: The sample just taken completed a misshapen beat.
        self.odd = False
        #: When this feature last found a misshapen beat (-inf: never).
        self.odd_t = -math.inf
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

    def saved(self) -> tuple[list[float], list[float], list[float]]:
        """What a restart keeps (`BeatRhythm.export_state`): the recent peak slopes, the
        heard beats' peak slopes, and ``[warm-up slope, floor, heard beats, quiet_from,
        last sample's time]``."""
        scalars = [self._warm, self._floor, float(self.heard_n), self.quiet_from, self._last_t]
        return list(self._peaks), list(self._heard), scalars

    def load(self, peaks: list[float], heard: list[float], scalars: list[float]) -> None:
        """Take what `saved` gave (a fresh tracker): the detection level, the heard beats
        and the silence so far carry over; intervals start afresh, as after any gap."""
        warm, floor, heard_n, quiet_from, last_t = scalars
        self._peaks, self._heard = peaks[-PEAKS:], heard[-PEAKS:]
        self._warm, self._floor, self.heard_n = warm, floor, int(heard_n)
        self.quiet_from = quiet_from
        self.reset(last_t)

    def counts(self, t: float) -> bool:
        """Whether this waveform has a say on asystole at time `t`: it had a rhythm (more
        than `MEMORY` beats heard) and is still received (a sample within `GAP_S`)."""
        return self.heard_n > MEMORY and t - self._last_t <= GAP_S

    def step(self, t: float, x: float) -> float | None:
        """Take one sample; return the interval before a beat confirmed at it (NaN for the
        first beat after a start), None when no beat is confirmed here."""
        shape = self.shape
        if t - self._last_t > GAP_S:
            long = t - self._last_t > KEEP_HEARD_S
            # A stream that stopped in a silence (no beat heard for `RELEARN_S`) keeps the
            # beats heard before it over a gap of any length: a heart that had stopped when
            # the signal was lost, or the daemon restarted, is silent after it until a beat
            # is heard (its asystole alarm must not clear for want of a rhythm).
            if long and self._last_t - self.quiet_from <= RELEARN_S:
                self._heard.clear()
                self._floor = 0.0
                self.quiet_from = -math.inf
                self.heard_n = 0
            else:
                self.quiet_from += t - self._last_t
            if shape is not None:
                shape.clear(long)
            self.reset(t)
        self._last_t = t
        if shape is not None:
            self.odd = shape.push(x)
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
            if shape is not None:
                shape.start()
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


def beat_intervals(
    values: FloatArray, period_s: float, shapes: list[float] | None = None
) -> FloatArray:
    """The intervals between the beats `BeatTracker` finds in one gap-free series (the
    training rows' check of a beat waveform, `monitor.training.rhythm`); with `shapes`,
    each beat's shape distance (`BeatShape`) is appended to it."""
    # Level 1: a beat's distance is measured against the beats before it that were within
    # the template's norm of it (the serving level is a setting; this measure is the card's).
    tracker = BeatTracker(period_s, None if shapes is None else 1.0)
    if tracker.shape is not None:
        tracker.shape.seen = shapes
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
    """Premature and misshapen beats, and asystole, of each patient's beat-waveform
    features, over the patient table.

    Args:
        columns: The model's feature columns that are beat waveforms.
        premature: Per column: a beat this much earlier than the median interval is
            premature (0.2: 20 %); None: not judged on that column.
        period_s: The model's sample period.
        n_features: Values per row.
        patients: The patient table (shared with the scale and the detector).
        asystole_s: No heartbeat heard on any received beat waveform for this long is
            asystole; None: not flagged.
        shape: Per column: a beat whose shape is this far from the recent ones' is
            misshapen (`BeatShape`, 0.5); None: not judged on that column. None: on none.
    """

    def __init__(
        self,
        columns: Sequence[int],
        premature: Sequence[float | None],
        period_s: float,
        n_features: int,
        patients: SlotMap,
        asystole_s: float | None = None,
        shape: Sequence[float | None] | None = None,
    ) -> None:
        if len(columns) != len(premature) or not columns:
            raise ValueError("need one premature share per column, at least one column")
        shape = [None] * len(columns) if shape is None else list(shape)
        if len(shape) != len(columns) or not all(v is None or v > 0.0 for v in shape):
            raise ValueError("need one positive shape level (or None) per column")
        if not all(p is None or 0.0 < p < 1.0 for p in premature):
            raise ValueError("premature shares must lie in (0, 1)")
        if asystole_s is not None and not asystole_s > 0.0:
            raise ValueError("asystole_s must be positive")
        self.columns = list(columns)
        self.premature = list(premature)
        self.asystole_s = asystole_s
        self.shape = shape
        self.period_s = period_s
        self.n_features = n_features
        self.patients = patients
        self._rows = Rows(patients)
        self._trackers: list[list[BeatTracker] | None] = []

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Every followed patient's beat state, by model feature (NaN where a feature is no
        followed beat waveform): ``peaks`` and ``heard`` ``(n, F, PEAKS)`` (the recent and
        the heard beats' peak slopes, NaN-padded), ``scalars`` ``(n, F, 5)``
        (`BeatTracker.saved`). A restart keeps what asystole needs: a patient silent
        before it stays silent after it (a restart up to `KEEP_HEARD_S` is a silence of
        the stream, not of the heart). The shape templates are not kept (3 beats make one
        again)."""
        pairs = [(pid, slot) for pid, slot in self._rows.items() if self._trackers[slot]]
        n, f = len(pairs), self.n_features
        peaks = np.full((n, f, PEAKS), np.nan)
        heard = np.full((n, f, PEAKS), np.nan)
        scalars = np.full((n, f, 5), np.nan)
        for i, (_, slot) in enumerate(pairs):
            mine = self._trackers[slot]
            assert mine is not None
            for col, tracker in zip(self.columns, mine, strict=True):
                p, h, sc = tracker.saved()
                peaks[i, col, : len(p)] = p
                heard[i, col, : len(h)] = h
                scalars[i, col] = sc
        return [pid for pid, _ in pairs], {"peaks": peaks, "heard": heard, "scalars": scalars}

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Hold the patients of an `export_state` (none of them followed yet); a feature
        this rhythm follows that the file does not starts afresh.

        Raises:
            ValueError: A patient is followed already or listed twice, or an array has the
                wrong shape or impossible values; nothing is changed.
        """
        n, f = len(patient_ids), self.n_features
        peaks = check_array(arrays, "peaks", (n, f, PEAKS))
        heard = check_array(arrays, "heard", (n, f, PEAKS))
        scalars = check_array(arrays, "scalars", (n, f, 5))
        if len(set(patient_ids)) != n or any(
            self._rows.slot_of(p) is not None for p in patient_ids
        ):
            raise ValueError("import_state needs patients not followed yet, each once")
        sc = scalars[:, self.columns]
        kept = ~np.isnan(sc[..., 0])
        if np.any(sc[kept][:, :3] < 0.0) or np.any(np.isnan(sc[kept])):
            raise ValueError("beat state out of range")
        if np.any(peaks[:, self.columns] < 0.0) or np.any(heard[:, self.columns] < 0.0):
            raise ValueError("beat state out of range")
        slots = self.patients.assign(patient_ids).slots
        cap = self._rows.grow()
        if cap is not None:
            self._trackers += [None] * (cap - len(self._trackers))
        for i, slot in enumerate(slots.tolist()):
            mine = self._fresh()
            for j, (col, tracker) in enumerate(zip(self.columns, mine, strict=True)):
                if kept[i, j]:
                    p, h = peaks[i, col], heard[i, col]
                    tracker.load(
                        p[~np.isnan(p)].tolist(), h[~np.isnan(h)].tolist(), sc[i, j].tolist()
                    )
            self._trackers[slot] = mine
        self._rows.hold(slots)

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
                self._trackers[slot] = self._fresh()
            self._rows.hold(fresh)
        found: list[tuple[int, int]] = []
        silent: list[tuple[int, int]] = []
        odd: list[tuple[int, int]] = []
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
                if tracker.odd and (alone or _agreed(mine, tracker, ti, "odd_t")):
                    odd.append((row, self.columns[j]))
                if rr is None or not tracker.judge(rr, self.premature[j]):
                    continue
                if alone or _agreed(mine, tracker, ti, "early_t"):
                    found.append((row, self.columns[j]))
        if not found and not silent and not odd:
            return None
        n = len(slots)
        return Beats(self._mask(found, n), self._mask(silent, n), self._mask(odd, n))

    def _fresh(self) -> list[BeatTracker]:
        """A new patient's trackers, one per column."""
        return [BeatTracker(self.period_s, level) for level in self.shape]

    def _mask(self, cells: list[tuple[int, int]], n: int) -> BoolArray | None:
        """``(n, F)`` True at the (row, column) cells; None for no cell."""
        if not cells:
            return None
        out = np.zeros((n, self.n_features), dtype=np.bool_)
        rows, cols = zip(*cells, strict=True)
        out[list(rows), list(cols)] = True
        return out


@functools.cache
def _detrend(n: int) -> FloatArray:
    """The ``(n, n)`` projection that removes a window's offset and linear trend (one
    product per window), shared by every stream of one window length."""
    x = np.arange(n, dtype=np.float64)
    q, _ = np.linalg.qr(np.stack([np.ones(n), x - x.mean()], axis=1))
    out: FloatArray = np.eye(n) - q @ q.T
    out.setflags(write=False)
    return out


def _agreed(trackers: Sequence[BeatTracker], tracker: BeatTracker, t: float, seen: str) -> bool:
    """With several beat waveforms, a beat flagged on `tracker` at `t` (premature: `seen`
    "early_t"; misshapen: "odd_t") counts where another waveform flagged one within
    `AGREE_S`, once: noise on one lead is not a beat. Marks the flag's time."""
    if any(t - getattr(o, seen) <= AGREE_S for o in trackers if o is not tracker):
        for o in trackers:
            setattr(o, seen, -math.inf)
        return True
    setattr(tracker, seen, t)
    return False


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
