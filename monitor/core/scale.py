"""Per-patient residual scale: z-scores in units of this patient's own residual sigma.

The model card's `residual_sigma` pools every training patient; real patients (and simulated
ones) differ in noise level by a factor of two or more, so one pooled sigma makes a quiet
patient's anomalies look small and a noisy patient's noise look large. Each patient's scale
starts from a robust noise estimate of its first full window (median absolute first
difference, which a slow trend or a single spike barely moves) and then follows an
exponentially weighted mean and variance of its residuals, updated only by samples that look
normal (|z| below `update_below`) so an anomaly cannot inflate the scale that judges it.

z is measured from that running mean: a small, slow bias of the model for one patient (for
example while another of its vitals is far out of the training range) neither inflates the
scale nor turns into a stream of false alarms, while a sudden change stands out at once.
"""

from __future__ import annotations

import numpy as np

from monitor.core.types import AnyFloatArray, FloatArray

#: MAD -> sigma for a normal distribution, and first differences have twice the variance.
_MAD_TO_SIGMA = 1.4826 / np.sqrt(2.0)


class ResidualScale:
    """Per-patient, per-vital residual sigma.

    Args:
        base_sigma: The card's pooled residual sigma per feature (the fallback and floor base).
        alpha: EWMA weight of each new normal residual (0.01: about 100 samples of memory).
        floor_ratio: The scale never falls below this fraction of `base_sigma` (a stuck
            sensor's zero-variance window must not make every later residual infinite).
        update_below: Only residuals with |z| below this update the scale.
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
        model_error_ratio: float = 1.1,
    ) -> None:
        self.base = np.asarray(base_sigma, dtype=np.float64)
        self.alpha = alpha
        self.floor = self.base * floor_ratio
        self.update_below = update_below
        self.model_error_ratio = model_error_ratio
        self._var: dict[str, FloatArray] = {}
        self._mean: dict[str, FloatArray] = {}

    def __len__(self) -> int:
        return len(self._var)

    def sigma(self, patient_id: str) -> FloatArray | None:
        """Return the patient's current scale, or None before its first scored sample."""
        var = self._var.get(patient_id)
        return None if var is None else np.sqrt(var)

    def initial(self, context: AnyFloatArray) -> FloatArray:
        """Estimate a scale from one window (window, F): robust noise level of its samples."""
        diffs = np.diff(np.asarray(context, dtype=np.float64), axis=0)
        mad = np.median(np.abs(diffs - np.median(diffs, axis=0)), axis=0)
        sigma: FloatArray = np.maximum(mad * _MAD_TO_SIGMA * self.model_error_ratio, self.floor)
        return sigma

    def z(self, patient_id: str, context: AnyFloatArray, residual: AnyFloatArray) -> FloatArray:
        """Return (residual - running mean) / scale for one sample, then update both.

        Args:
            patient_id: The patient.
            context: The window the prediction came from (used only for a new patient).
            residual: actual - predicted, shape (F,).
        """
        var = self._var.get(patient_id)
        if var is None:
            var = self._var[patient_id] = self.initial(context) ** 2
            mean = self._mean[patient_id] = np.zeros_like(var)
        else:
            mean = self._mean[patient_id]
        r = np.asarray(residual, dtype=np.float64)
        d = r - mean
        z: FloatArray = d / np.sqrt(var)
        normal = np.abs(z) < self.update_below
        if normal.any():
            a = self.alpha
            np.copyto(mean, mean + a * d, where=normal)
            updated = (1.0 - a) * var + a * d * d
            np.copyto(var, np.maximum(updated, self.floor**2), where=normal)
        return z

    def forget(self, patient_id: str) -> None:
        """Drop a patient's scale (eviction, or a window reset after a gap)."""
        self._var.pop(patient_id, None)
        self._mean.pop(patient_id, None)
