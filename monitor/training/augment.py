"""Anomaly augmentation: teach the multivariate model that one vital's anomaly says nothing
about the others.

`MedicalLSTM` predicts every vital from every vital's history, so a model trained only on
normal data lets an anomaly in one input leak into the other outputs (seen before this
existed: an 11-sigma SpO2 shift moved the temperature prediction by about 2.5 sigma, and the
detector then alerted on temperature). Each augmented window is a copy of a training window
with one vital disturbed (a spike, a step, a ramp or a stuck stretch, 3 to 12 of its noise
sigma); the targets of the other vitals stay as they were, and the disturbed vital's own
target is left out of the loss (weight 0), so the model is taught nothing about how that
vital itself continues.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from monitor.core.scale import diff_noise_sigma
from monitor.training.data import Segment

FloatArray = npt.NDArray[np.float64]

KINDS = ("spike", "step", "ramp", "stuck")


def noise_sigma(segments: list[Segment]) -> FloatArray:
    """Per-feature noise sigma: median over segments of a robust first-difference estimate."""
    per_segment = [diff_noise_sigma(seg.values) for seg in segments]
    out: FloatArray = np.median(np.stack(per_segment), axis=0)
    return out


def augment(
    x: FloatArray,
    y: FloatArray,
    sigma: FloatArray,
    fraction: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Append disturbed copies of a random `fraction` of the windows.

    Args:
        x: Raw windows ``(N, W, F)``.
        y: Raw next samples ``(N, F)``.
        sigma: Per-feature noise sigma ``(F,)``.
        fraction: Copies to add, as a fraction of N.
        rng: Seeded generator (the recipe's seed).

    Returns:
        ``(x, y, weight)``: the windows with the copies appended, their targets, and loss
        weights ``(N + copies, F)``: 1 everywhere except the disturbed vital of each copy.
    """
    n, w, f = x.shape
    m = round(n * fraction)
    weight = np.ones((n + m, f), dtype=np.float64)
    if m == 0 or f < 2:
        return x, y, weight[:n]
    rows = rng.integers(0, n, m)
    feat = rng.integers(0, f, m)
    kind = rng.integers(0, len(KINDS), m)
    start = rng.integers(0, w, m)
    size = rng.uniform(3.0, 12.0, m) * np.where(rng.random(m) < 0.5, -1.0, 1.0) * sigma[feat]
    xa = x[rows].copy()
    pos = np.arange(w)[None, :]
    after = pos >= start[:, None]  # (m, W)
    ramp = np.clip((pos - start[:, None] + 1) / np.maximum(w - start[:, None], 1), 0.0, 1.0)
    delta = np.where(
        (kind == 0)[:, None],
        (pos == start[:, None]) * size[:, None],
        np.where((kind == 1)[:, None], after * size[:, None], ramp * after * size[:, None]),
    )
    track = xa[np.arange(m), :, feat]  # (m, W) copy of the disturbed vital
    stuck = (kind == 3)[:, None] & after
    held = track[np.arange(m), np.maximum(start - 1, 0)][:, None]
    track = np.where(stuck, held, track + np.where((kind == 3)[:, None], 0.0, delta))
    xa[np.arange(m), :, feat] = track
    weight[n + np.arange(m), feat] = 0.0
    return np.concatenate([x, xa]), np.concatenate([y, y[rows]]), weight
