"""Per-patient residual scale: z-scores in units of this patient's own residual sigma.

The model card's `residual_sigma` pools every training patient; real patients (and simulated
ones) differ in noise level by a factor of two or more, so one pooled sigma makes a quiet
patient's anomalies look small and a noisy patient's noise look large. Each patient's scale
starts from a robust noise estimate of its first full window (median absolute first
difference, which a slow trend or a single spike barely moves) and then follows an
exponentially weighted mean and variance of its residuals. The mean is updated only by
samples that look normal (|z| below `update_below`). The variance, by default, too, so an
anomaly cannot inflate the scale that judges it; with `clip_at` (a model trained on a real
recording: the card's `residual_clip_at`, 6) by every sample, its square clipped at `clip_at`
scales (a winsorised, Huber-type variance). Real residuals are heavier-tailed than a
Gaussian's: with the variance of the normal-looking samples alone, a real stream's 3- to
6-sigma residuals counted as anomalies many times an hour; clipped, they widen the scale of
the stream that shows them until they are as rare as the levels assume, while one outlier
moves the variance by at most `alpha * (clip_at**2 - 1)` of itself (a sustained anomaly, raised at
its onset, does widen it: its episode clears sooner, and the simulator's anomaly-dense
patients lose a few events: docs/detection.md).

z is measured from that running mean: a small, slow bias of the model for one patient (for
example while another of its vitals is far out of the training range) neither inflates the
scale nor turns into a stream of false alarms, while a sudden change stands out at once.

State lives in (capacity, F) arrays indexed by a slot of the patient table (`SlotMap`,
shared with the detector in the service), so a whole batch is scored with a few vectorised
operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.slots import IntpArray, Placement, Rows, SlotMap, grown
from monitor.core.state import StateArrays, check_array
from monitor.core.types import AnyFloatArray, BoolArray, FloatArray

__all__ = [
    "LEARN_SAMPLES",
    "ResidualScale",
    "diff_noise_sigma",
]

#: MAD -> sigma for a normal distribution, and first differences have twice the variance.
_MAD_TO_SIGMA = 1.4826 / np.sqrt(2.0)


def diff_noise_sigma(values: AnyFloatArray) -> FloatArray:
    """Robust white-noise sigma per column of ``(T, F)`` values: the median absolute deviation
    of first differences, scaled for Gaussian noise (a slow trend or one spike barely moves it).

    ``(B, T, F)`` gives one estimate per window, ``(B, F)``, in one vectorised pass.
    """
    diffs = np.moveaxis(np.diff(np.asarray(values, dtype=np.float64), axis=-2), -2, -1)
    centre = _median_last(diffs)
    out: FloatArray = _median_last(np.abs(diffs - centre[..., None])) * _MAD_TO_SIGMA
    return out


def _median_last(a: FloatArray) -> FloatArray:
    """`np.median(a, axis=-1)`, the same values, by partition alone (faster on a new
    stream's first windows, which all arrive in one tick: docs/benchmarks.md)."""
    n = a.shape[-1]
    k = n // 2
    if n % 2:
        odd: FloatArray = np.partition(a, k, axis=-1)[..., k]
        return odd
    both = np.partition(a, (k - 1, k), axis=-1)
    even: FloatArray = (both[..., k - 1] + both[..., k]) / 2.0
    return even


#: With observed flags: a vital too sparse in a new patient's first window to measure its
#: noise there is not judged until this many of its own residuals have set its scale.
LEARN_SAMPLES = 5


class ResidualScale:
    """Per-patient, per-vital residual sigma.

    Args:
        base_sigma: The card's pooled residual sigma per feature (the floor's base).
        masked: Contexts carry observed flags after the values (``2F`` columns).
        patients: The patient table (shared with the detector); a new one if None.
        alpha: EWMA weight of each new normal residual (0.01: about 100 samples of memory).
        floor_ratio: The scale never falls below this fraction of `base_sigma` (a stuck
            sensor's zero-variance window must not make every later residual infinite).
        update_below: Only residuals with |z| below this update the running mean, and,
            without `clip_at`, the variance.
        clip_at: Every residual updates the variance, its square clipped at this many
            current scales squared (a winsorised, Huber-type variance): a stream whose
            residuals are heavier-tailed than a Gaussian's settles at a wider scale, while
            one outlier moves it by at most ``alpha * (clip_at**2 - 1)`` of itself. None:
            only residuals with |z| below `update_below` update the variance (the card's
            `residual_clip_at` chooses; `monitor train --data` sets 6).
        slow_clip_at: The clip for the rows `z_batch` is told are heavy-tailed (a slow
            stream) while `clip_at` is None.
        model_error_ratio: The initial estimate is the window's noise times this (the
            model's own error adds to the noise in a residual).
    """

    def __init__(
        self,
        base_sigma: AnyFloatArray,
        *,
        alpha: float = 0.01,
        floor_ratio: float = 0.2,
        update_below: float = 3.0,
        clip_at: float | None = None,
        slow_clip_at: float = 6.0,
        model_error_ratio: float = 1.1,
        masked: bool = False,
        patients: SlotMap | None = None,
    ) -> None:
        self.base = np.asarray(base_sigma, dtype=np.float64)
        self.alpha = alpha
        self.floor = self.base * floor_ratio
        self.update_below = update_below
        self.clip_at = clip_at
        self.slow_clip_at = slow_clip_at
        self.model_error_ratio = model_error_ratio
        self.masked = masked
        self.patients = SlotMap() if patients is None else patients
        self._rows = Rows(self.patients)
        self._var = np.empty((0, self.base.size))
        self._mean = np.empty((0, self.base.size))
        # Per vital, its own residuals seen while learning its scale (LEARN_SAMPLES: done).
        self._seen = np.empty((0, self.base.size), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._rows)

    def sigma(self, patient_id: str) -> FloatArray | None:
        """Return the patient's current scale, or None before its first scored sample."""
        slot = self._rows.slot_of(patient_id)
        return None if slot is None else np.sqrt(self._var[slot])

    def initial(self, context: AnyFloatArray) -> FloatArray:
        """Estimate a scale from one window (window, F), or one per window of (B, window, F):
        the robust noise level of its samples."""
        if not self.masked:
            sigma: FloatArray = np.maximum(
                diff_noise_sigma(context) * self.model_error_ratio, self.floor
            )
            return sigma
        # Windows with observed flags ((..., window, 2F)): a vital observed in under half
        # of the window (a slow or new one) has no noise to measure there (carried values
        # repeat): it starts from the card's sigma instead.
        ctx = np.asarray(context)
        f = ctx.shape[-1] // 2
        estimate = diff_noise_sigma(ctx[..., :f]) * self.model_error_ratio
        estimate = np.where(self._sparse(ctx) | np.isnan(estimate), self.base, estimate)
        masked_sigma: FloatArray = np.maximum(estimate, self.floor)
        return masked_sigma

    def _sparse(self, context: AnyFloatArray) -> BoolArray:
        """Per vital of each window: observed in under half of it (False without flags)."""
        ctx = np.asarray(context)
        if not self.masked:
            return np.zeros(ctx.shape[:-2] + self.base.shape, dtype=np.bool_)
        f = ctx.shape[-1] // 2
        sparse: BoolArray = ctx[..., f:].mean(axis=-2) < 0.5
        return sparse

    def z(self, patient_id: str, context: AnyFloatArray, residual: AnyFloatArray) -> FloatArray:
        """Score one sample: (residual - running mean) / scale, then update both.

        Args:
            patient_id: The patient.
            context: The window the prediction came from (used only for a new patient).
            residual: actual - predicted, shape (F,).
        """
        out: FloatArray = self.z_batch([patient_id], [context], np.asarray(residual)[None, :])[0]
        return out

    def z_batch(
        self,
        patient_ids: Sequence[str],
        contexts: Sequence[AnyFloatArray] | AnyFloatArray,
        residuals: AnyFloatArray,
        *,
        placed: Placement | None = None,
        heavy: BoolArray | None = None,
    ) -> FloatArray:
        """Score a batch in order: as if `z` were called row by row.

        A patient may appear several times (replay at full speed); its rows are scored in
        order, each seeing the state its previous row left.

        Args:
            patient_ids: Patient of each row.
            contexts: Window of each row (used only for patients seen for the first time).
            residuals: actual - predicted, shape (B, F).
            placed: The batch already placed in `patients` (the service places it once
                for the scale and the detector); placed here if None.
            heavy: Rows ``(B,)``, or rows and vitals ``(B, F)``, whose variance follows
                heavy tails (clipped at `slow_clip_at` scales, as with `clip_at`) although
                `clip_at` is None: a stream much slower than the model's period
                (docs/detection.md, "Slow streams"), a vital slower than its stream.
        """
        r = np.asarray(residuals, dtype=np.float64)
        out = np.empty_like(r)
        if placed is None:
            placed = self.patients.assign(patient_ids)
        slots, parts = placed.slots, placed.parts
        new_rows = self._new_rows(slots)
        if new_rows:
            self._admit(slots, new_rows, contexts)
        a = self.alpha
        for rows in parts:
            idx = rows if len(parts) > 1 else slice(None)
            s = slots[idx]
            var, mean = self._var[s], self._mean[s]
            d = r[idx] - mean
            z = d / np.sqrt(var)
            normal = np.abs(z) < self.update_below
            if self.clip_at is None:
                new_var = np.where(
                    normal, np.maximum((1.0 - a) * var + a * d * d, self.floor**2), var
                )
                if heavy is not None:
                    clipped = np.minimum(d * d, self.slow_clip_at**2 * var)
                    winsorised = np.where(
                        np.isnan(d), var, np.maximum((1.0 - a) * var + a * clipped, self.floor**2)
                    )
                    h = heavy[idx]
                    new_var = np.where(h if h.ndim == 2 else h[:, None], winsorised, new_var)
            else:
                # Every residual updates the variance, clipped at `clip_at` scales (Huber's
                # winsorised variance): heavy tails widen the scale, one outlier barely does.
                clipped = np.minimum(d * d, self.clip_at**2 * var)
                new_var = np.where(
                    np.isnan(d), var, np.maximum((1.0 - a) * var + a * clipped, self.floor**2)
                )
            if self.masked:
                seen = self._seen[s]
                learning = seen < LEARN_SAMPLES
                if learning.any():
                    # A sparse vital's first residuals set its scale (the card's sigma
                    # counts as one of them) and are not judged: the mean of their squares.
                    got = learning & ~np.isnan(d)
                    pooled = (var * (seen + 1) + d * d) / (seen + 2)
                    new_var = np.where(
                        got, np.maximum(pooled, self.floor**2), np.where(learning, var, new_var)
                    )
                    normal &= ~learning
                    z = np.where(learning, np.nan, z)
                    self._seen[s] = seen + got
            out[idx] = z
            self._mean[s] = np.where(normal, mean + a * d, mean)
            self._var[s] = new_var
        return out

    def _grow(self) -> None:
        cap = self._rows.grow()
        if cap is not None:
            self._var = grown(self._var, cap)
            self._mean = grown(self._mean, cap)
            self._seen = grown(self._seen, cap)

    def _new_rows(self, slots: IntpArray) -> list[int]:
        """The first row of each slot in `slots` that is new to this scale, in row order."""
        self._grow()
        stale = self._rows.stale(slots)
        if stale is None:
            return []
        rows = np.flatnonzero(stale)
        _, first = np.unique(slots[rows], return_index=True)
        new_rows: list[int] = np.sort(rows[first]).tolist()
        return new_rows

    def _admit(
        self,
        slots: IntpArray,
        new_rows: list[int],
        contexts: Sequence[AnyFloatArray] | AnyFloatArray,
    ) -> None:
        # One vectorised estimate for all new patients: a patient's first full window comes
        # for every patient at once when a stream starts, and one by one cost too much
        # (docs/benchmarks.md).
        new = slots[new_rows]
        firsts = np.stack([np.asarray(contexts[row]) for row in new_rows])
        self._var[new] = self.initial(firsts) ** 2
        self._mean[new] = 0.0
        self._seen[new] = np.where(self._sparse(firsts), 0, LEARN_SAMPLES)
        self._rows.hold(new)

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every patient's scale state, rows aligned with the returned ids.

        Returns:
            ``(patient_ids, arrays)``: ``var`` and ``mean`` ``(n, F)`` float64 and ``seen``
            ``(n, F)`` int64 (residuals seen while learning a sparse vital's scale).
        """
        pairs = self._rows.items()
        slots = np.array([slot for _, slot in pairs], dtype=np.intp)
        arrays = {"var": self._var[slots], "mean": self._mean[slots], "seen": self._seen[slots]}
        return [pid for pid, _ in pairs], arrays

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Hold the patients of an `export_state` (none of them may be held already; a
        patient the shared table placed for another component is taken in its slot).

        Raises:
            ValueError: A patient is already held or an array has the wrong shape; nothing
                is changed then.
        """
        n, f = len(patient_ids), self.base.size
        self._grow()
        if len(set(patient_ids)) != n or any(
            self._rows.slot_of(p) is not None for p in patient_ids
        ):
            raise ValueError("import_state needs patients not held yet, each once")
        var = check_array(arrays, "var", (n, f))
        mean = check_array(arrays, "mean", (n, f))
        seen = check_array(arrays, "seen", (n, f))
        if n and not np.all(var > 0):
            raise ValueError("var must be positive")
        slots = self.patients.assign(patient_ids).slots
        self._grow()
        self._var[slots] = var
        self._mean[slots] = mean
        self._seen[slots] = seen
        self._rows.hold(slots)

    def forget(self, patient_id: str) -> None:
        """Drop a patient's scale (eviction): its slot leaves the patient table, which drops
        its state in every component sharing the table."""
        self.patients.release(patient_id)
