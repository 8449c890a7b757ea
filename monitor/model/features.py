"""Windowing and normalisation shared by the trainer and the predictor.

Both sides call these functions, so a window is cut and scaled the same way in training
and in serving (no train/serve skew).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]

#: How a window is centred before normalisation: ``none`` (the seed: absolute values) or
#: ``window_mean`` (each window minus its own per-feature mean; the model predicts the next
#: sample relative to that mean, so it never has to reproduce a patient's baseline).
Centring = Literal["none", "window_mean"]

#: Standard deviations below this are treated as this, so a constant feature does not
#: divide by zero (its z-score is then 0 everywhere).
MIN_STD = 1e-6


def make_windows(series: FloatArray, window: int, stride: int = 1) -> tuple[FloatArray, FloatArray]:
    """Cut a series into (window, next sample) pairs, as the seed's ``create_sequences``.

    Args:
        series: Samples, shape ``(T, F)``, oldest first.
        window: Number of past samples per input.
        stride: Keep every `stride`-th pair (1: all, as the seed).

    Returns:
        ``X`` of shape ``(T - window, window, F)`` and ``y`` of shape ``(T - window, F)``:
        ``X[i] = series[i:i+window]`` and ``y[i] = series[i+window]``. Both empty (with
        the right trailing shape) when ``T <= window``. With a stride, every
        `stride`-th pair of those.
    """
    if series.ndim != 2:
        raise ValueError(f"series must be (T, F), got shape {series.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    n = series.shape[0] - window
    if n <= 0:
        f = series.shape[1]
        return np.empty((0, window, f), series.dtype), np.empty((0, f), series.dtype)
    view = np.lib.stride_tricks.sliding_window_view(series, window, axis=0)
    # sliding_window_view puts the window axis last: (T-window+1, F, window).
    x = np.ascontiguousarray(view[:n:stride].transpose(0, 2, 1))
    y = np.ascontiguousarray(series[window::stride])
    return x, y


def window_offset(windows: FloatArray, centring: Centring) -> FloatArray:
    """Return the per-window offset subtracted before normalisation, shape ``(B, F)``.

    Args:
        windows: Raw windows, ``(B, window, F)``.
        centring: ``none`` gives zeros; ``window_mean`` each window's per-feature mean.
    """
    if centring == "none":
        return np.zeros((windows.shape[0], windows.shape[2]), dtype=windows.dtype)
    out: FloatArray = windows.mean(axis=1)
    return out


def pool_window(windows: FloatArray, recent: int | None, block: int) -> FloatArray:
    """Shorten windows for the model: block means of older samples, then the recent ones.

    ``(B, window, F)`` becomes ``(B, (window - recent) // block + recent, F)``: the oldest
    ``window - recent`` samples as means of `block` consecutive samples (oldest first), then
    the last `recent` samples unchanged. A slow signal keeps what matters (its level and
    shape far back, full detail near the prediction) while the LSTM runs fewer steps.

    Args:
        windows: ``(B, window, F)``, oldest first.
        recent: Samples kept as they are; None keeps the whole window (no pooling).
        block: Samples per mean; ``window - recent`` must be a multiple of it.
    """
    if recent is None or recent >= windows.shape[1]:
        return windows
    old = windows.shape[1] - recent
    if old % block:
        raise ValueError(f"window - recent ({old}) is not a multiple of block ({block})")
    b, _, f = windows.shape
    pooled = windows[:, :old].reshape(b, old // block, block, f).mean(axis=2)
    out: FloatArray = np.concatenate([pooled, windows[:, old:]], axis=1)
    return out


def fit_normalisation(series: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
    """Per-feature mean and standard deviation over all samples of the given series.

    Args:
        series: Training series, each ``(T_i, F)``.

    Returns:
        ``(mean, std)``, each of shape ``(F,)``, float64; std floored at `MIN_STD`.
    """
    stacked = np.concatenate([np.asarray(s, dtype=np.float64) for s in series], axis=0)
    mean = stacked.mean(axis=0)
    std = np.maximum(stacked.std(axis=0), MIN_STD)
    return mean, std


def normalise(values: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
    """Z-score raw values with per-feature statistics (last axis is the feature axis).

    Args:
        values: Raw values, shape ``(..., F)``.
        mean: Per-feature mean, ``(F,)``.
        std: Per-feature standard deviation, ``(F,)``.

    Returns:
        float32 array of the same shape: ``(values - mean) / std``.
    """
    mean32 = np.asarray(mean, dtype=np.float32)
    std32 = np.maximum(np.asarray(std, dtype=np.float32), np.float32(MIN_STD))
    out: FloatArray = (np.asarray(values, dtype=np.float32) - mean32) / std32
    return out


def denormalise(values: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
    """Invert `normalise`: map z-scores back to raw units.

    Args:
        values: Normalised values, shape ``(..., F)``.
        mean: Per-feature mean, ``(F,)``.
        std: Per-feature standard deviation, ``(F,)``.

    Returns:
        float32 array of the same shape: ``values * std + mean``.
    """
    mean32 = np.asarray(mean, dtype=np.float32)
    std32 = np.maximum(np.asarray(std, dtype=np.float32), np.float32(MIN_STD))
    out: FloatArray = np.asarray(values, dtype=np.float32) * std32 + mean32
    return out


@dataclass(frozen=True, slots=True)
class Preprocess:
    """Raw windows -> model input, and model output -> raw predictions (trainer and server).

    Attributes:
        mean: Per-feature normalisation mean, ``(F,)``.
        std: Per-feature normalisation std, ``(F,)``.
        centring: Whether each window's own mean is subtracted first.
        recent: Pooling: samples kept unpooled (None: no pooling).
        block: Pooling: samples per block mean.
    """

    mean: FloatArray
    std: FloatArray
    centring: Centring = "none"
    recent: int | None = None
    block: int = 1

    def inputs(self, windows: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return ``(x, offset)``: float32 model input ``(B, steps, F)`` and ``(B, F)`` offsets."""
        offset = window_offset(windows, self.centring)
        centred = windows if self.centring == "none" else windows - offset[:, None, :]
        pooled = pool_window(centred, self.recent, self.block)
        return normalise(pooled, self.mean, self.std), offset

    def targets(self, y: FloatArray, offset: FloatArray) -> FloatArray:
        """Normalise next samples ``(B, F)`` as the model is trained to output them."""
        return normalise(np.asarray(y) - offset, self.mean, self.std)

    def outputs(self, out: FloatArray, offset: FloatArray) -> FloatArray:
        """Map model output ``(B, F)`` back to raw units (float64)."""
        raw: FloatArray = np.asarray(denormalise(out, self.mean, self.std), np.float64) + offset
        return raw
