"""Per-patient follow of the alarm level: a slow, bounded gain on top of the calibrated one.

The calibration (docs/detection.md) sets each vital's gain from the training data's tail.
A patient whose live residuals are far heavier-tailed than the training ones (another
patient than the training one, a sensor that got noisier, a stream whose training prefix
was quiet) still raises at the fixed levels' rate on its own tail. The follow measures that
tail per patient and vital, online: the share of samples whose |z| (calibrated units,
divided by the follow's own gain) passes `level`, tracked by a stochastic quantile step in
log-gain,

    log g  +=  step * (1[|z / g| > level] - share),     clipped to [0, log max_gain],

which settles where ``P(|z / g| > level) = share``. With `share` above a Gaussian's tail
at `level` (3: 0.27 %), residuals as the levels assume drift it back to gain 1 (the clip:
never more sensitive than the calibrated levels); only a tail heavier than that, sustained
over many samples, raises it. `step` sets how slow: each exceedance adds `step` to log g,
each calm sample takes ``step * share`` off, so a lone outlier moves the gain by
``exp(step)`` and a burst of n exceedances by at most ``exp(n * step)``; `max_gain`
bounds it.

State lives in ``(capacity, F)`` arrays indexed by a slot of the shared patient table
(`SlotMap`), as the residual scale's and the detector's do: a batch is a few vectorised
operations per round of distinct patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.slots import Placement, Rows, SlotMap, grown
from monitor.core.state import StateArrays, check_array
from monitor.core.types import BoolArray, FloatArray

__all__ = ["AlarmFollow"]


class AlarmFollow:
    """Per-patient, per-vital follow gain (z is divided by it after the calibrated gain).

    Args:
        n_features: Vitals per row.
        level: |z| (calibrated units) above which a sample counts as an exceedance.
        share: The share of samples above `level` the follow settles at.
        step: Log-gain added per exceedance (``step * share`` taken off per sample).
        max_gain: The follow's gain stays within ``[1, max_gain]``.
        patients: The patient table (shared with the scale and the detector); a new one
            if None.
    """

    def __init__(
        self,
        n_features: int,
        *,
        level: float,
        share: float,
        step: float,
        max_gain: float,
        patients: SlotMap | None = None,
    ) -> None:
        if not 0.0 < share < 1.0 or level <= 0.0 or step <= 0.0 or max_gain < 1.0:
            raise ValueError("need level > 0, 0 < share < 1, step > 0, max_gain >= 1")
        self.n_features = n_features
        self.level = level
        self.share = share
        self.step = step
        self.max_log = float(np.log(max_gain))
        self.patients = SlotMap() if patients is None else patients
        self._rows = Rows(self.patients)
        self._log = np.zeros((0, n_features))

    def gain(self, patient_id: str) -> FloatArray | None:
        """The patient's current follow gain per vital, or None before its first sample."""
        slot = self._rows.slot_of(patient_id)
        return None if slot is None else np.exp(self._log[slot])

    def apply(
        self,
        patient_ids: Sequence[str],
        z: FloatArray,
        *,
        placed: Placement | None = None,
        rows: BoolArray | None = None,
    ) -> FloatArray:
        """Divide each row's z by its patient's gain, then step the gain; rows in order.

        Args:
            patient_ids: Patient of each row.
            z: ``(B, F)`` finite z in calibrated units (0 where a vital was not scored:
                a calm sample, which counts as one).
            placed: The batch already placed in `patients`; placed here if None.
            rows: Only these rows are followed (the others pass unchanged and leave their
                patient's gain as it is); None: every row.

        Returns:
            ``(B, F)``: z divided by the gain each row saw (before its own step).
        """
        if placed is None:
            placed = self.patients.assign(patient_ids)
        slots, parts = placed.slots, placed.parts
        cap = self._rows.grow()
        if cap is not None:
            self._log = grown(self._log, cap)
        stale = self._rows.stale(slots)
        if stale is not None:
            fresh = np.unique(slots[stale])
            self._log[fresh] = 0.0
            self._rows.hold(fresh)
        out = np.empty_like(z)
        for part in parts:
            idx = part if len(parts) > 1 else slice(None)
            s = slots[idx]
            lg = self._log[s]
            zf = z[idx] / np.exp(lg)
            stepped = np.clip(
                lg + self.step * ((np.abs(zf) > self.level) - self.share), 0.0, self.max_log
            )
            if rows is not None:
                followed = rows[idx][:, None]
                zf = np.where(followed, zf, z[idx])
                stepped = np.where(followed, stepped, lg)
            out[idx] = zf
            self._log[s] = stepped
        return out

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every followed patient's state: ``log`` ``(n, F)`` float64, the log of
        its follow gain per vital."""
        pairs = self._rows.items()
        slots = np.array([slot for _, slot in pairs], dtype=np.intp)
        return [pid for pid, _ in pairs], {"log": self._log[slots]}

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Hold the patients of an `export_state` (none of them followed yet).

        Raises:
            ValueError: A patient is followed already or listed twice, the array has the
                wrong shape or a gain lies outside ``[1, max_gain]``; nothing is changed.
        """
        n = len(patient_ids)
        log_gain = check_array(arrays, "log", (n, self.n_features))
        if len(set(patient_ids)) != n or any(
            self._rows.slot_of(p) is not None for p in patient_ids
        ):
            raise ValueError("import_state needs patients not followed yet, each once")
        if n and not np.all((log_gain >= 0.0) & (log_gain <= self.max_log + 1e-12)):
            raise ValueError("follow gain out of range")
        slots = self.patients.assign(patient_ids).slots
        cap = self._rows.grow()
        if cap is not None:
            self._log = grown(self._log, cap)
        self._log[slots] = log_gain
        self._rows.hold(slots)

    def forget(self, patient_id: str) -> None:
        """Drop a patient's follow (eviction): its slot leaves the shared table."""
        self.patients.release(patient_id)
