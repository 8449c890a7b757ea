"""Settling: the scale of a vital widens after a silence, then settles over its next values.

After a silence the model predicts from a window that does not hold the silence: after the
whole patient's (a device's recalibration, a dropout within the gap limit) its window's
rows before the silence sit next to the rows after it as if no time had passed, and after
a vital's own loss (a probe off while the heart rate goes on) its rows hold the vital's
last value carried forward. The first value back spans the silence (its z divisor is the
square root of the silence in the stream's own intervals, at most `GAP_MAX_WIDEN`:
`first_divisor`), and the next ones are predicted from a window still mostly from before
it. So the divisor falls in a straight line from the first one's to 1 over the vital's next
values (docs/detection.md, "After a gap" and "A vital back from being lost").

One component for both causes, each with its own length (`GAP_SETTLE_VALUES` after the
whole patient's silence, `SETTLE_VALUES` after a vital's loss): `Scorer.score` gives each
row and vital the divisor of a value that starts a settling (the larger of the two) and its
length, and `Settling.divide` returns every row's divisor, per patient and vital in row
order, in one vectorised pass whatever the batch holds (a patient many times: offline
replay), so the batch size cannot change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.slots import Grouped, Placement, Rows, SlotMap, last_observed
from monitor.core.state import StateArrays, check_array
from monitor.core.types import BoolArray, FloatArray

__all__ = [
    "GAP_MAX_WIDEN",
    "GAP_SETTLE_VALUES",
    "SETTLE_VALUES",
    "Settling",
    "first_divisor",
    "starts",
]

#: The largest z divisor of a value back after a silence (the square root of 25 of the
#: stream's own intervals; docs/detection.md, "After a gap").
GAP_MAX_WIDEN = 5.0

#: A vital back from being lost settles over this many of its values after the first one
#: back: its z divisor falls from the first one's to 1 (measured with the shipped model on the
#: simulator's `probe-off` scenario, seed 5: the residuals of a vital back from 30 s to 5
#: min of silence are over 3 of their scale 2 to 10 times as often as steady ones for its
#: first 20 values, and as often from about 30; docs/detection.md).
SETTLE_VALUES = 30

#: A value back after a silence of the whole patient (within the gap limit) settles over
#: this many of the vital's values: its window holds no carried rows, only the step over
#: the silence (measured with the shipped model on the simulator's `sensor-dropout`
#: scenario, seed 5: the residuals after 10 to 30 s of silence are over 3 of their scale 3
#: to 8 times as often as steady ones for the first 5 values, and as often from 10;
#: docs/detection.md, "After a gap").
GAP_SETTLE_VALUES = 10

_NAMES = ("widen", "settled", "length")
#: A settled vital's state (its length is never read while it is settled).
_FRESH = np.array([1.0, 0.0, float(SETTLE_VALUES)])[:, None, None]


def first_divisor(silence: FloatArray, cap: float = GAP_MAX_WIDEN) -> FloatArray:
    """The z divisor of the first value after a silence of `silence` of the stream's own
    intervals: its square root (the spread of a random walk over that many steps), at most
    `cap` (an infinite silence gives the cap)."""
    return np.minimum(np.sqrt(silence), cap)


def starts(
    gap: FloatArray | None, back: FloatArray | None
) -> tuple[FloatArray | None, FloatArray | float]:
    """The divisor each value starts a settling with, and the settling's length.

    Args:
        gap: ``(B, 1)``: the divisor of each row after the patient's silence (1: none),
            settling over `GAP_SETTLE_VALUES`; None: no row is.
        back: ``(B, F)``: the divisor of each value of a vital back from being lost (1:
            none), settling over `SETTLE_VALUES` whatever the row's gap; None: not watched.

    Returns:
        ``(first, length)`` for `Settling.divide`: the larger divisor of the two.
    """
    if back is None or not np.count_nonzero(gone := back > 1.0):
        return gap, float(GAP_SETTLE_VALUES)
    if gap is None:
        return back, float(SETTLE_VALUES)
    length = np.where(gone, float(SETTLE_VALUES), float(GAP_SETTLE_VALUES))
    return np.maximum(gap, back), length


class Settling:
    """Per patient and vital: the divisor of the first value back after a silence (1.0:
    settled) and how many values the vital has sent since.

    Args:
        features: How many vitals a row holds.
        max_widen: The largest divisor a settling may start from (a snapshot's above it is
            refused).
        patients: The patient table (shared with the other scoring components); its own
            when None.
    """

    def __init__(
        self, features: int, *, max_widen: float = GAP_MAX_WIDEN, patients: SlotMap | None = None
    ) -> None:
        if features < 1 or max_widen < 1.0:
            raise ValueError("need features >= 1 and max_widen >= 1")
        self.features = features
        self.max_widen = max_widen
        self.patients = SlotMap() if patients is None else patients
        self._rows = Rows(self.patients)
        # Per slot and vital, stacked: the divisor of the first value back (1.0: settled),
        # the vital's values since, and how many it settles over.
        self._state: FloatArray = np.zeros((len(_NAMES), 0, features))

    def divide(
        self,
        placed: Placement,
        observed: BoolArray,
        first: FloatArray | None,
        length: FloatArray | float = SETTLE_VALUES,
    ) -> FloatArray | None:
        """Each row's z divisor per vital, ``(B, F)``, and take the rows; None when every
        one is 1 (nothing settles).

        Args:
            placed: The batch placed in `patients`.
            observed: ``(B, F)``: the vital is in the row (only its values count, and only
                they start a settling).
            first: ``(B, F)`` or ``(B, 1)`` (every vital of the row): the divisor of a value
                that starts a settling (above 1), 1 elsewhere; None: none starts one.
            length: How many values after it each settling started here takes (shaped as
                `first`, or one for all).
        """
        slots = placed.slots
        self._grow()
        stale = self._rows.stale(slots)
        if stale is not None:
            fresh = np.unique(slots[stale])
            self._state[:, fresh] = _FRESH
            self._rows.hold(fresh)
        widen0 = self._state[0, slots]
        begin: BoolArray | None = None
        if first is not None:
            begin = (first > 1.0) & observed
            if not np.count_nonzero(begin):
                begin = None
        if begin is None and not np.count_nonzero(widen0 > 1.0):
            return None
        # The batch as each patient's rows in order, one patient after another.
        order, gs, start, rows = Grouped.of(slots)
        obs = observed[order]
        w0, s0, l0 = widen0[order], self._state[1, gs], self._state[2, gs]
        # The vital's values up to each row, and before each patient's first row.
        total = np.cumsum(obs, axis=0, dtype=np.float64)
        base = np.where(start > 0, total[np.maximum(start - 1, 0)[:, 0]], 0.0)
        widen, settled, over = w0, s0 + np.where(w0 > 1.0, total - base, 0.0), l0
        if begin is not None and first is not None:
            # The row of the vital's last start at or before each row, in its patient's rows:
            # from there the vital settles from that start's divisor, counting its values.
            at = last_observed(begin[order])
            has = at >= start
            f = obs.shape[1]
            pick = np.maximum(at, 0) * f + np.arange(f)
            shape = observed.shape
            widen = np.where(has, np.take(np.broadcast_to(first, shape)[order], pick), w0)
            settled = np.where(has, total - np.take(total, pick), settled)
            lengths = np.broadcast_to(np.asarray(length, dtype=np.float64), shape)[order]
            over = np.where(has, np.take(lengths, pick), l0)
        divisor_sorted = np.where(obs & (widen > 1.0), _settle(widen, settled, over), 1.0)
        # Each patient's state after its last row: settled once its length is counted.
        going = (widen[rows] > 1.0) & (settled[rows] < over[rows])
        self._state[:, gs[rows]] = np.where(
            going, np.stack([widen[rows], settled[rows], over[rows]]), _FRESH
        )
        divisor: FloatArray = np.empty_like(divisor_sorted)
        divisor[order] = divisor_sorted
        return divisor

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every held patient's state, ``(n, F)`` float64 each: ``widen`` (the z
        divisor of the first value of a vital back after a silence, 1.0 once settled) and
        ``settled`` (its values since) and ``length`` (how many it settles over)."""
        pairs = self._rows.items()
        slots = np.array([slot for _, slot in pairs], dtype=np.intp)
        return [pid for pid, _ in pairs], {
            name: self._state[i, slots] for i, name in enumerate(_NAMES)
        }

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Take the state of an `export_state` for patients the shared table holds.

        Raises:
            ValueError: A patient holds no slot or is listed twice, an array has the wrong
                shape, or a value is out of range; nothing is changed then.
        """
        n, f = len(patient_ids), self.features
        widen, settled, length = (check_array(arrays, k, (n, f)) for k in _NAMES)
        slots = [self.patients.get(pid) for pid in patient_ids]
        if len(set(patient_ids)) != n or None in slots:
            raise ValueError("settling state for patients the table does not hold")
        with np.errstate(invalid="ignore"):
            good = np.all((widen >= 1.0) & (widen <= self.max_widen) & (length >= 1.0))
            good = good and np.all((settled >= 0.0) & (settled < length))
        if not good:
            raise ValueError("settling state out of range")
        at = np.array(slots, dtype=np.intp)
        self._grow()
        self._state[:, at] = np.stack([widen, settled, length])
        self._rows.hold(at)

    def _grow(self) -> None:
        cap = self._rows.grow()
        if cap is not None:
            old = self._state
            self._state = np.empty((len(_NAMES), cap, self.features))
            self._state[:] = _FRESH
            self._state[:, : old.shape[1]] = old


def _settle(widen: FloatArray, settled: FloatArray, length: FloatArray) -> FloatArray:
    """The z divisor of a settling vital's value `settled` values after its first one back,
    whose divisor was `widen`: a straight line down to 1 at `length` values."""
    return 1.0 + (widen - 1.0) * np.clip(1.0 - settled / length, 0.0, 1.0)
