"""Stuck sensors: the 'flatline' technical alert and the distrust of the z it leaves behind.

A sensor stuck on one value repeats it exactly; real measurements with any noise never
repeat exactly `FLATLINE_SAMPLES` times, and quantised ones repeat no longer than their
card's learned run. The residual detector cannot see a sensor stuck near its prediction,
so a run of identical values raises the technical `flatline` alert instead, and while a
vital's window still holds a stuck sample its z counts as 0 for the physiological detector
(docs/detection.md, "Flatline: a stuck sensor").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.alerts import AlertEvent
from monitor.core.slots import Placement, SlotMap, grown
from monitor.core.state import StateArrays, check_array
from monitor.core.technical import TechnicalAlarms
from monitor.core.types import BoolArray, Float32Array, FloatArray
from monitor.core.vitals import Registry

__all__ = [
    "FLATLINE_SAMPLES",
    "StuckSensors",
    "flatline_samples",
]

#: A vital repeating one exact value this many samples in a row is a stuck sensor, unless
#: the model card learned another run for it or its registered signal declares one.
FLATLINE_SAMPLES = 5


def flatline_samples(
    features: Sequence[str], learned: Sequence[int] | None, signals: Registry
) -> list[int]:
    """The run of identical values that raises 'flatline', per feature of the model.

    A registered signal's declared `flatline_samples` wins; else the card's learned rule
    (`learned`, per feature); else `FLATLINE_SAMPLES`.
    """
    runs = learned or (FLATLINE_SAMPLES,) * len(features)
    out = []
    for name, run in zip(features, runs, strict=True):
        declared = signals[name].flatline_samples if name in signals else None
        out.append(declared or run)
    return out


def _groups(runs: Sequence[int], window: int) -> list[tuple[int, int, int]]:
    """Consecutive features with one flatline run length: (run, first, end) column ranges.

    A run longer than the window plus the new sample cannot be seen in one window: such a
    vital gets no flatline check (its normal runs are longer than the model's memory).
    """
    groups: list[tuple[int, int, int]] = []
    for i, run in enumerate(runs):
        if run - 1 > window:
            continue
        if groups and groups[-1][0] == run and groups[-1][2] == i:
            groups[-1] = (run, groups[-1][1], i + 1)
        else:
            groups.append((run, i, i + 1))
    return groups


def _own_run(values: Float32Array, sent: BoolArray, actual: Float32Array, run: int) -> BoolArray:
    """Per row and vital: the window holds at least `run` - 1 values the vital was sent
    with, and the last `run` - 1 of them equal `actual` (its values held between them, flag
    0, are skipped).

    Args:
        values: ``(B, window, k)`` the window's values.
        sent: ``(B, window, k)`` their observed flags.
        actual: ``(B, k)`` the new sample's values.
        run: The flatline run.
    """
    # How many sent values lie at or after each position: the last run - 1 have 1..run - 1.
    after = np.cumsum(sent[:, ::-1], axis=1)[:, ::-1]
    last = sent & (after <= run - 1)
    same = np.all((values == actual[:, None, :]) | ~last, axis=1)
    stuck: BoolArray = (after[:, 0, :] >= run - 1) & same
    return stuck


class StuckSensors:
    """Which samples repeat a stuck value, and whose z is not to be trusted.

    Args:
        features: Vital names in model order.
        window: The model's window length (samples).
        runs: Per feature, the run of identical values that is a stuck sensor
            (`flatline_samples`).
        masked: Windows carry observed flags after the values (a carried-forward value is
            not a stuck sensor).
        patients: The patient table whose slots index the state (shared with the scale
            and the detector); its own when None.
    """

    def __init__(
        self,
        features: Sequence[str],
        window: int,
        runs: Sequence[int],
        *,
        masked: bool,
        patients: SlotMap | None = None,
    ) -> None:
        self.features = tuple(features)
        self.window = window
        self.masked = masked
        self.patients = SlotMap() if patients is None else patients
        self._groups = _groups(runs, window)
        # Per slot and vital, the seq of the slot's last stuck sample; valid only for the
        # slots in `_live`, whose window may still hold one.
        self._stuck_seq: FloatArray = np.zeros((0, len(self.features)))
        # slot -> its generation when it became live: a slot released or given to another
        # patient since (`SlotMap.generation` moved on) is dropped.
        self._live: dict[int, int] = {}

    def find(self, windows: Float32Array, actual: FloatArray) -> BoolArray:
        """Per row and vital, ``(B, F)``: the sample equals the vital's last run - 1 values.

        Args:
            windows: The rows' context windows, ``(B, window, F)`` (``2F`` with flags).
            actual: The rows' samples, ``(B, F)``.
        """
        f = len(self.features)
        values = windows[:, :, :f]
        stuck: BoolArray = np.zeros(actual.shape, dtype=bool)
        actual32 = actual.astype(np.float32)
        for run, lo, hi in self._groups:  # slices: views, no copies
            tail = values[:, 1 - run :, lo:hi]
            stuck[:, lo:hi] = np.all(tail == actual32[:, None, lo:hi], axis=1)
            if self.masked:  # a carried-forward value is not a stuck sensor
                sent = np.all(windows[:, 1 - run :, f + lo : f + hi] == 1.0, axis=1)
                stuck[:, lo:hi] &= sent
                # A vital sent in this sample but not in each of the last run - 1 (a
                # slower vital): judged on its own last run - 1 values in the window.
                sparse = ~sent & ~np.isnan(actual32[:, lo:hi])
                if np.count_nonzero(sparse):
                    rows = np.flatnonzero(sparse.any(axis=1))
                    stuck[rows, lo:hi] |= sparse[rows] & _own_run(
                        values[rows, :, lo:hi],
                        windows[rows, :, f + lo : f + hi] == 1.0,
                        actual32[rows, lo:hi],
                        run,
                    )
        return stuck

    def distrust(
        self, placed: Placement, seq: Sequence[int], stuck: BoolArray, z: FloatArray
    ) -> None:
        """Zero, in place, the z of vitals whose window holds a stuck stretch (or that are
        stuck now).

        A stuck sensor's repeated value fills the window, and for `window` samples after it
        recovers the model predicts from that stale value: its residuals then measure the
        sensor's recovery, not the patient. Decided row by row from each patient's own
        history, so the batch size cannot change the outcome.
        """
        any_stuck: list[bool] = np.any(stuck, axis=1).tolist()
        live = self._live
        if not live and True not in any_stuck:  # the common batch: nothing to look at
            return
        generation = self.patients.generation
        for slot, born in list(live.items()):
            if generation[slot] != born:  # its patient left (eviction)
                del live[slot]
        self._grow()
        for row, slot in enumerate(placed.slots.tolist()):
            if not any_stuck[row] and slot not in live:
                continue
            last = self._stuck_seq[slot]
            if slot not in live:
                last[:] = -np.inf
                live[slot] = int(generation[slot])
            last[stuck[row]] = seq[row]
            untrusted = seq[row] - last <= self.window
            if not untrusted.any():
                del live[slot]
                continue
            z[row] = np.where(untrusted, 0.0, z[row])

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return the patients whose window may still hold a stuck sample, with ``seq``
        ``(n, F)`` float64: per vital, the seq of its last stuck sample (-inf: none)."""
        generation, live = self.patients.generation, self._live
        pairs = [
            (pid, slot) for pid, slot in self.patients.items() if live.get(slot) == generation[slot]
        ]
        slots = np.array([slot for _, slot in pairs], dtype=np.intp)
        return [pid for pid, _ in pairs], {"seq": self._stuck_seq[slots]}

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Take the stuck-sample history of an `export_state` for patients the shared
        table holds (the window store's restore placed them).

        Raises:
            ValueError: A patient holds no slot, is listed twice, or the array has the
                wrong shape; nothing is changed then.
        """
        n = len(patient_ids)
        seq = check_array(arrays, "seq", (n, len(self.features)))
        slots = [self.patients.get(pid) for pid in patient_ids]
        if len(set(patient_ids)) != n or None in slots:
            raise ValueError("stuck history for patients the table does not hold")
        self._grow()
        generation = self.patients.generation
        for row, slot in enumerate(slots):
            assert slot is not None
            self._stuck_seq[slot] = seq[row]
            self._live[slot] = int(generation[slot])

    def _grow(self) -> None:
        """Give the state a row for every slot of the table."""
        if self._stuck_seq.shape[0] < self.patients.capacity:
            self._stuck_seq = grown(self._stuck_seq, self.patients.capacity)

    def flatlines(
        self,
        alarms: TechnicalAlarms,
        patient_ids: Sequence[str],
        t: Sequence[float],
        stuck: BoolArray,
        actual: FloatArray,
    ) -> list[AlertEvent]:
        """Open 'flatline' for each stuck vital and close it for the others sent in the
        row (`TechnicalAlarms.per_vital`): a slower vital's alert stays open between its
        samples."""
        return alarms.per_vital("flatline", self.features, patient_ids, t, stuck, actual)
