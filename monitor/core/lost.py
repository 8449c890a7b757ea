"""Lost vitals: the 'vital_lost' technical alert for a vital that stops arriving while the
patient's other vitals go on.

With an observed mask (the shipped model) a vital missing from a sample is carried forward
and counts as a calm sample: a pulse oximeter's probe that falls off while the heart rate
goes on arriving would leave that vital unwatched, with no alert, for as long as the
patient's other vitals keep the patient fresh ('signal_lost' is for a patient whose samples
all stop). So each vital a patient has sent at least twice is watched for silence in the
patient's own samples: at a sample that lacks it, a vital unseen for longer than `intervals`
times the longer of its last two intervals between observations (its own rate: a cuff
pressure every 15 minutes, a saturation every second), and longer than the staleness limit,
raises `vital_lost` (once it has also been missing from `MISSED_ROWS` of the patient's
samples in a row); its next observation clears it. An interval over the limit (the vital
was lost, or the whole patient was silent) is not taken as the vital's rate unless the next
one is over it too (a slower schedule). A vital seen once, or never, is not judged (a
patient on a wearable never sends a blood pressure). Measured in sample time, per
patient, each patient's rows in order (one pass per batch, or rounds of distinct patients
when a value in it comes back from a silence over its limit), so a batch's size cannot
change the outcome (docs/detection.md, "Lost vitals").

A vital back from being lost is predicted from a window whose rows since its last value
hold that value carried forward: the first value back spans the silence, and the model
needs fresh values before it predicts the vital well again. So `find` also gives the first
value back the divisor of its z that starts its settling (`monitor.core.settle`): the
square root of its silence in its own intervals (at most `max_widen`), the same rule as for
a sample after the patient's own silence (docs/detection.md, "A vital back from being
lost").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.alerts import AlertEvent
from monitor.core.settle import GAP_MAX_WIDEN, first_divisor
from monitor.core.slots import Grouped, IntpArray, Placement, Rows, SlotMap, last_observed
from monitor.core.state import StateArrays, check_array
from monitor.core.technical import TechnicalAlarms
from monitor.core.types import BoolArray, FloatArray

__all__ = ["MISSED_ROWS", "LostVitals"]

#: The state's rows, and a new patient's value of each (NaN: not yet). (A snapshot from
#: before `monitor.core.settle` also has ``widen`` and ``settled`` here: not read.)
_NAMES = ("seen", "last", "before", "lapsed", "missed")
_FRESH = np.array([np.nan, np.nan, np.nan, 0.0, 0.0])[:, None, None]

#: A vital is lost only when missing from at least this many of the patient's samples in a
#: row: a device that sends its vitals in separate messages, back after an outage, is not
#: lost in the one sample before the vital's own.
MISSED_ROWS = 3


class LostVitals:
    """When each patient last sent each vital, and how often it sends it.

    Args:
        features: Vital names in model order.
        intervals: A vital is lost when unseen for more than this many of its own recent
            intervals (`window.vital_lost_intervals`).
        min_silence_s: ...and for more than this (the staleness limit, `stale_after_s`).
        max_widen: The largest z divisor of a value back from being lost (`GAP_MAX_WIDEN`).
        patients: The patient table (shared with the other scoring components); its own
            when None.
    """

    def __init__(
        self,
        features: Sequence[str],
        *,
        intervals: float,
        min_silence_s: float,
        max_widen: float = GAP_MAX_WIDEN,
        patients: SlotMap | None = None,
    ) -> None:
        if intervals <= 1.0 or min_silence_s < 0.0 or max_widen < 1.0:
            raise ValueError("need intervals > 1, min_silence_s >= 0 and max_widen >= 1")
        self.features = tuple(features)
        self.intervals = intervals
        self.min_silence_s = min_silence_s
        self.max_widen = max_widen
        self.patients = SlotMap() if patients is None else patients
        self._rows = Rows(self.patients)
        f = len(self.features)
        # Per slot and vital, stacked (one gather and one scatter per round): the sample
        # time of its last observation, the interval that ended there and the one before
        # it (NaN: not yet), 1.0 where its last interval was over the limit and not
        # learned, and the patient's samples since its last observation.
        self._state: FloatArray = np.zeros((len(_FRESH), 0, f))

    def find(
        self, placed: Placement, actual: FloatArray, t: Sequence[float]
    ) -> tuple[BoolArray, FloatArray]:
        """Per row and vital, ``(B, F)`` each: the vital is missing from the row and lost;
        and the z divisor that starts its settling (above 1 only at the first value of a
        vital back from being lost, `monitor.core.settle`). Then take the rows'
        observations (rows in order, a patient's rows one round each).

        Args:
            placed: The batch placed in `patients`.
            actual: The rows' samples, NaN where a vital is missing.
            t: Each row's sample time.
        """
        slots, parts = placed.slots, placed.parts
        self._grow()
        state = self._state
        stale = self._rows.stale(slots)
        if stale is not None:
            fresh = np.unique(slots[stale])
            state[:, fresh] = _FRESH
            self._rows.hold(fresh)
        observed = ~np.isnan(actual)
        times = np.asarray(t, dtype=np.float64)
        if len(parts) > 1:
            grouped = self._grouped(slots, observed, times)
            if grouped is not None:
                return grouped
        lost: BoolArray = np.zeros(actual.shape, dtype=bool)
        first: FloatArray = np.ones(actual.shape)
        for part in parts:
            idx = part if len(parts) > 1 else slice(None)
            lost[idx], first[idx] = self._step(slots[idx], observed[idx], times[idx])
        return lost, first

    def _limit(self, last: FloatArray, before: FloatArray) -> FloatArray:
        """The silence over which a vital is lost, from its last two intervals (NaN: not
        judged, when neither is known)."""
        limit = np.fmax(last, before)  # the known one of the two when only one is
        limit *= self.intervals
        np.maximum(limit, self.min_silence_s, out=limit)
        return limit

    def _step(
        self, s: IntpArray, obs: BoolArray, times: FloatArray
    ) -> tuple[BoolArray, FloatArray]:
        """One round of rows of distinct patients: which of their missing vitals are lost,
        and the z divisor of their first values back; then take their observations."""
        state = self._state
        mine = state[:, s]  # one gather; updated in place, written back once
        seen, last, before, lapsed, missed = mine
        now = times[:, None]
        since = now - seen  # NaN: never seen
        missed += 1.0
        with np.errstate(invalid="ignore"):
            over = since > self._limit(last, before)
        lost: BoolArray = ~obs & over & (missed >= MISSED_ROWS)
        # A value of a vital that was lost at the patient's sample before (not one back
        # from a silence of the whole patient: its window holds no carried rows).
        back = obs & over & (missed > MISSED_ROWS)
        divisor: FloatArray = np.ones(obs.shape)
        if np.count_nonzero(back):
            # Over the limit, the silence is over `intervals` (> 1) of the shorter interval
            # too: the divisor is above 1 (capped; an interval of 0 gives the cap).
            with np.errstate(divide="ignore"):
                first = first_divisor(since / np.fmin(last, before), self.max_widen)
            np.copyto(divisor, first, where=back)
        # An interval over the limit is the vital's rate only when the next one is too (a
        # slower schedule); once, it was an outage of the vital or the patient.
        learn = obs & (~over | (lapsed > 0.0))
        np.copyto(before, last, where=learn)
        np.copyto(last, since, where=learn)
        np.copyto(lapsed, over & (lapsed == 0.0), where=obs)
        np.copyto(missed, 0.0, where=obs)
        np.copyto(seen, now, where=obs)
        state[:, s] = mine
        return lost, divisor

    def _grouped(
        self, slots: IntpArray, observed: BoolArray, times: FloatArray
    ) -> tuple[BoolArray, FloatArray] | None:
        """`find` for a batch holding patients several times, in one pass instead of a
        round per row of a patient; None (nothing changed) when it cannot decide it.

        Each vital's state after its k-th value in the batch follows from its values alone
        when every one of them is learned (its interval under the limit, or over it right
        after one that was): the last interval is the time since the value before, the one
        before it that value's own. So the batch is solved as if so, by forward fills over
        each patient's rows, and checked: a value over the limit that would not be learned
        (an outage of the vital or the patient, rare) leaves the batch to the rounds.
        """
        order, gs, start, rows = Grouped.of(slots)
        position = np.arange(slots.shape[0])
        obs = observed[order]
        now = times[order][:, None]
        seed = self._state[:, gs]  # each row's patient's state before the batch
        seen0, last0, before0, lapsed0, missed0 = seed
        # The row of the vital's last value at or before each row, in its patient's rows.
        at = last_observed(obs)
        at = np.where(at >= start, at, -1)
        prior = np.full_like(at, -1)  # ... strictly before it
        prior[1:] = at[:-1]
        prior = np.where(prior >= start, prior, -1)
        has = prior >= 0
        f = obs.shape[1]
        take = np.maximum(prior, 0)
        flat = take * f + np.arange(f)  # into a flattened (n, F) array
        sorted_t = now[:, 0]
        # Before each row: the time of the vital's last value, and its last two intervals.
        # A value's own interval is its `since`.
        seen = np.where(has, sorted_t[take], seen0)
        since = now - seen
        own = np.where(obs, since, np.nan)
        last = np.where(has, np.take(own, flat), last0)
        # The interval before a value is the `last` it saw (what the rounds learn).
        before = np.where(has, np.take(last, flat), before0)
        missed = np.where(has, position[:, None] - prior, missed0 + position[:, None] - start + 1)
        with np.errstate(invalid="ignore"):
            over = since > self._limit(last, before)
        # After a value in the batch the vital's lapse is cleared (learned, or the second
        # interval over the limit in a row); a first one over it that is not learned (an
        # outage of the vital or of the patient, rare) is left to the rounds.
        if np.count_nonzero(obs & over & ~has & (lapsed0 == 0.0)) or np.count_nonzero(
            obs & over & has
        ):
            return None
        lost_sorted = ~obs & over & (missed >= MISSED_ROWS)
        # Each patient's state after its last row.
        end = at[rows]
        got = end >= 0
        pick = np.maximum(end, 0) * f + np.arange(f)
        self._state[:, gs[rows]] = np.stack(
            [
                np.where(got, sorted_t[np.maximum(end, 0)], seen0[rows]),
                np.where(got, np.take(own, pick), last0[rows]),
                np.where(got, np.take(last, pick), before0[rows]),
                np.where(got, 0.0, lapsed0[rows]),
                np.where(got, rows[:, None] - end, missed[rows]),
            ]
        )
        lost: BoolArray = np.empty_like(lost_sorted)
        lost[order] = lost_sorted
        # No value in the batch is back from being lost (that is over the limit).
        return lost, np.ones(lost.shape)

    def events(
        self,
        alarms: TechnicalAlarms,
        patient_ids: Sequence[str],
        t: Sequence[float],
        actual: FloatArray,
        lost: BoolArray,
    ) -> list[AlertEvent]:
        """Open 'vital_lost' for each lost vital and close it at the vital's next value
        (`TechnicalAlarms.per_vital`)."""
        return alarms.per_vital("vital_lost", self.features, patient_ids, t, lost, actual)

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every watched patient's state, ``(n, F)`` float64 each: ``seen`` (sample
        time of each vital's last observation), ``last`` and ``before`` (its last two
        learned intervals; NaN where not yet), ``lapsed`` (1: its last interval was over the
        limit, not learned) and ``missed`` (the patient's samples since its last value)."""
        pairs = self._rows.items()
        slots = np.array([slot for _, slot in pairs], dtype=np.intp)
        return [pid for pid, _ in pairs], {
            name: self._state[i, slots] for i, name in enumerate(_NAMES)
        }

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Take the state of an `export_state` for patients the shared table holds (the
        window store's restore placed them).

        Raises:
            ValueError: A patient holds no slot or is listed twice, an array has the wrong
                shape, or an interval is negative; nothing is changed then.
        """
        n, f = len(patient_ids), len(self.features)
        seen, last, before, lapsed, missed = (check_array(arrays, k, (n, f)) for k in _NAMES)
        slots = [self.patients.get(pid) for pid in patient_ids]
        if len(set(patient_ids)) != n or None in slots:
            raise ValueError("lost-vital state for patients the table does not hold")
        with np.errstate(invalid="ignore"):
            bad = bool(np.any(last < 0.0) or np.any(before < 0.0) or np.any(np.isinf(seen)))
            bad = bad or not np.all(np.isin(lapsed, (0.0, 1.0))) or not np.all(missed >= 0.0)
        if bad:
            raise ValueError("lost-vital state out of range")
        at = np.array(slots, dtype=np.intp)
        self._grow()
        self._state[:, at] = np.stack([seen, last, before, lapsed, missed])
        self._rows.hold(at)

    def _grow(self) -> None:
        cap = self._rows.grow()
        if cap is not None:
            old = self._state
            self._state = np.empty((len(_NAMES), cap, old.shape[2]))
            self._state[:] = _FRESH
            self._state[:, : old.shape[1]] = old
