"""Observation patterns for training a model that takes an observed mask.

Real devices send vitals at their own rates (heart rate and SpO2 every second, blood
pressure every few minutes, temperature rarely) and a wearable sends only some of them.
The daemon's window store carries a missing vital forward and flags it unobserved
(`monitor.core.windows`); this module gives training windows the same shape, so the model
learns what a carried value and a flag mean. A random share of the training windows gets,
per vital, one of three patterns:

* observed at every step (as the simulator sends);
* observed every ``k`` steps from a random phase, ``k`` log-uniform from 2 to four windows
  (a slow vital; with ``k`` past the window it may show no fresh value at all, only the
  value carried from before the window, which the window's first sample stands for);
* never observed (a vital the device does not send): NaN, as in the store.

The target of a vital that is not observed at the next step is left out of the loss: the
daemon never scores it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from monitor.model.features import with_flags

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Probabilities of the three patterns (every step, every k steps, never) per vital.
PATTERN_P = (0.4, 0.45, 0.15)


def mask_windows(
    x: FloatArray,
    weight: FloatArray,
    fraction: float,
    rng: np.random.Generator,
    observed: BoolArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Give a random `fraction` of the windows random observation patterns.

    Args:
        x: Raw windows ``(N, W, F)``, every vital observed or held (`observed`).
        weight: Loss weights of the targets ``(N, F)``.
        fraction: Share of the windows to mask.
        rng: Seeded generator (the recipe's seed).
        observed: Where the windows' samples and targets were sampled, not held from an
            earlier sample, ``(N, W + 1, F)`` (`monitor.training.data.Windows.observed`):
            a held value is flagged unobserved and a held target has no loss, in every
            window; a pattern only removes more. None: all sampled.

    Returns:
        ``(windows, weight)``: ``(N, W, 2F)`` windows (values carried forward, NaN where a
        vital was never observed, then the observed flags) and the weights with each
        unobserved target set to 0.
    """
    n, w, f = x.shape
    out = np.asarray(with_flags(x), dtype=np.float64)
    weight = weight.copy()
    if observed is not None:
        out[:, :, f:] = observed[:, :w]
        weight *= observed[:, w]
    rows = np.flatnonzero(rng.random(n) < fraction)
    m = rows.size
    if m == 0:
        return out, weight
    pattern = rng.choice(3, size=(m, f), p=PATTERN_P)
    k = np.exp(rng.uniform(np.log(2.0), np.log(4.0 * w), size=(m, f))).astype(np.int64)
    phase = rng.integers(0, 1 << 30, size=(m, f)) % k
    steps = np.arange(w + 1)  # the window's steps and the target's
    # (m, W + 1, F): observed where (step - phase) is a multiple of k.
    seen = (steps[None, :, None] - phase[:, None, :]) % k[:, None, :] == 0
    seen |= (pattern == 0)[:, None, :]
    seen &= (pattern != 2)[:, None, :]
    if observed is not None:
        seen &= observed[rows]
    window_seen = seen[:, :w]
    # Carry forward: each step takes the last observed step at or before it; a slow vital
    # with nothing observed before a step carries the window's first value (the reading
    # before the window).
    source = np.where(window_seen, steps[None, :w, None], 0)
    source = np.maximum.accumulate(source, axis=1)
    vals = np.take_along_axis(x[rows], source, axis=1)
    vals[np.broadcast_to((pattern == 2)[:, None, :], vals.shape)] = np.nan
    out[rows, :, :f] = vals
    out[rows, :, f:] = window_seen
    weight[rows] *= seen[:, w]
    return out, weight
