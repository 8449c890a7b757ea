"""Windowing and normalisation shared by the trainer and the predictor.

Both sides call these functions, so a window is cut and scaled the same way in training
and in serving (no train/serve skew).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "GEMM_SIZE",
    "INPUT_CHUNK",
    "MIN_STD",
    "Centring",
    "Preprocess",
    "denormalise",
    "fit_normalisation",
    "make_windows",
    "normalise",
    "pool_window",
    "pooled_steps",
    "time_matrix",
    "window_offset",
    "with_flags",
]

FloatArray = npt.NDArray[np.floating]

#: How a window is centred before normalisation: ``none`` (the seed: absolute values),
#: ``window_mean`` (each window minus its own per-feature mean; the model predicts the next
#: sample relative to that mean, so it never has to reproduce a patient's baseline) or
#: ``last`` (each window minus its last sample: the model predicts the change from it, and
#: an output of 0 is "next = last", so an untrained model starts as persistence).
Centring = Literal["none", "window_mean", "last"]

#: Standard deviations below this are treated as this, so a constant feature does not
#: divide by zero (its z-score is then 0 everywhere).
MIN_STD = 1e-6

#: Windows per block in `Preprocess.inputs`: a caller may pass a whole test set at once; a
#: block's temporaries (a transposed copy, the product) stay under 25 MB.
INPUT_CHUNK = 8192

#: Most multiply-adds per BLAS call in `Preprocess.inputs`. OpenBLAS runs a product of
#: m * n * k <= 4 * 65536 in the calling thread and starts threads of its own above that,
#: unless OMP_NUM_THREADS or OPENBLAS_NUM_THREADS is 1 (the container image sets 2). A
#: stack of such products costs about the same per window and never takes the core the
#: daemon's event loop runs on.
GEMM_SIZE = 4 * 65536


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


def with_flags(windows: FloatArray) -> FloatArray:
    """Append observed flags of 1 to fully observed windows: ``(N, W, F)`` -> ``(N, W, 2F)``,
    the input of a model with an observed mask (`Preprocess.masked`)."""
    out: FloatArray = np.concatenate([windows, np.ones_like(windows)], axis=2)
    return out


def window_offset(windows: FloatArray, centring: Centring) -> FloatArray:
    """Return the per-window offset subtracted before normalisation, shape ``(B, F)``.

    Args:
        windows: Raw windows, ``(B, window, F)``.
        centring: ``none`` gives zeros; ``window_mean`` each window's per-feature mean;
            ``last`` its last sample.
    """
    if centring == "none":
        return np.zeros((windows.shape[0], windows.shape[2]), dtype=windows.dtype)
    if centring == "last":
        last: FloatArray = windows[:, -1, :].copy()
        return last
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


def pooled_steps(window: int, recent: int | None, block: int) -> int:
    """Number of LSTM steps `pool_window` leaves of a `window`-sample window."""
    if recent is None or recent >= window:
        return window
    old = window - recent
    if old % block:
        raise ValueError(f"window - recent ({old}) is not a multiple of block ({block})")
    return old // block + recent


def time_matrix(window: int, centring: Centring, recent: int | None, block: int) -> FloatArray:
    """The linear map along time that centres and pools a window, float64.

    Centring by the window's mean (or its last sample) and pooling (`pool_window`) are both
    linear in the samples of each feature, so one ``(rows, window)`` matrix ``P`` does
    both: ``P @ w`` (``w`` one feature's ``window`` samples) gives the ``steps`` centred,
    pooled values (rows ``0 .. steps-1``) and, when centred, the offset (a last row: the
    window's mean, or its last sample). Each centring row sums to 0, so adding a constant
    to ``w`` changes only the offset row.

    Raises:
        ValueError: ``window - recent`` is not a multiple of `block`.
    """
    steps = pooled_steps(window, recent, block)
    centred = centring != "none"
    p = np.zeros((steps + centred, window))
    if recent is None or steps == window:
        p[:steps] = np.eye(window)
    else:
        old = window - recent
        for k in range(old // block):
            p[k, k * block : (k + 1) * block] = 1.0 / block
        p[old // block : steps, old:] = np.eye(recent)
    if centred:
        offset = np.full(window, 1.0 / window)
        if centring == "last":
            offset = np.zeros(window)
            offset[-1] = 1.0
        p[:steps] -= offset
        p[steps] = offset
    return p


@lru_cache(maxsize=16)
def _time_matrix_t(window: int, centring: Centring, recent: int | None, block: int) -> FloatArray:
    # float32, transposed and contiguous for `(B*F, window) @ P.T`; cached per
    # preprocessing, read-only because it is shared.
    pt = np.ascontiguousarray(time_matrix(window, centring, recent, block).T, dtype=np.float32)
    pt.setflags(write=False)
    return pt


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


def _product(a: FloatArray, b: FloatArray) -> FloatArray:
    # a @ b as a stack of products of at most GEMM_SIZE multiply-adds each (one thread).
    m, k = a.shape
    n = b.shape[1]
    rows = max(1, GEMM_SIZE // (k * n))
    out = np.empty((m, n), dtype=np.result_type(a, b))
    full = m - m % rows
    if full:
        np.matmul(a[:full].reshape(-1, rows, k), b, out=out[:full].reshape(-1, rows, n))
    if full < m:
        np.matmul(a[full:], b, out=out[full:])
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
        masked: Windows are ``(B, window, 2F)``: values (NaN for a vital never seen in
            the window), then observed flags; the model input is ``2F`` wide: the values
            as without a mask (NaN -> 0, the normalised mean), then the flags pooled
            like the values (the share of observed samples in each pooled step).
    """

    mean: FloatArray
    std: FloatArray
    centring: Centring = "none"
    recent: int | None = None
    block: int = 1
    masked: bool = False

    def inputs(self, windows: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return ``(x, offset)``: float32 model input ``(B, steps, input_size)`` and the
        ``(B, F)`` offsets (NaN for a masked model's vital never seen in the window).

        Without `masked`, `values_inputs`; with it, that of the value columns followed by
        the pooled observed flags.
        """
        if not self.masked:
            return self.values_inputs(windows)
        w = np.asarray(windows)
        if w.ndim != 3 or w.shape[2] % 2:
            raise ValueError(f"masked windows must be (B, window, 2F), got shape {w.shape}")
        f = w.shape[2] // 2
        x, offset = self.values_inputs(w[:, :, :f])
        flags = w[:, :, f:]
        out = np.empty((x.shape[0], x.shape[1], 2 * f), dtype=np.float32)
        out[:, :, :f] = x
        if flags.size and flags.min() == 1.0:
            # Every vital observed throughout (the common batch): no NaN in the values,
            # and every pooled flag is 1.
            out[:, :, f:] = 1.0
        else:
            np.nan_to_num(out[:, :, :f], copy=False, nan=0.0)
            out[:, :, f:] = pool_window(flags, self.recent, self.block)
        return out, offset

    def values_inputs(self, windows: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return ``(x, offset)``: float32 model input ``(B, steps, F)`` and ``(B, F)`` offsets.

        The same values as `window_offset`, then `pool_window` of the centred windows, then
        `normalise`, computed as one matrix product along time (`time_matrix`), a block of
        `INPUT_CHUNK` windows at a time, for float32 windows (the server's; the offset is
        float32 too). Other dtypes (the trainer's float64) take the plain computation,
        which keeps training bit-for-bit reproducible. Each window's last sample is subtracted
        first and added back to the offset: the product then sums deviations, not values
        of ~100, so the result is closer to the float64 value than averaging the raw
        float32 samples was (docs/model-card.md, "Inference backends").

        Raises:
            ValueError: `windows` is not ``(B, window, F)``, or the pooling does not fit
                the window.
        """
        w = np.asarray(windows)
        if w.ndim != 3:
            raise ValueError(f"windows must be (B, window, F), got shape {w.shape}")
        if w.dtype != np.float32:
            # The trainer's float64 windows: the plain computation, so that a model trained
            # before the matrix form came in is trained again bit for bit.
            offset = window_offset(w, self.centring)
            centred64 = w if self.centring == "none" else w - offset[:, None, :]
            pooled = pool_window(centred64, self.recent, self.block)
            return normalise(pooled, self.mean, self.std), offset
        b, n, f = w.shape
        steps = pooled_steps(n, self.recent, self.block)
        offset = np.zeros((b, f), dtype=np.float32)
        if steps == n and self.centring == "none":
            return normalise(w, self.mean, self.std), offset
        pt = _time_matrix_t(n, self.centring, self.recent, self.block)
        centred = self.centring != "none"
        x = np.empty((b, steps, f), dtype=np.float32)
        mean32 = np.asarray(self.mean, dtype=np.float32)[:, None]
        std32 = np.maximum(np.asarray(self.std, dtype=np.float32), np.float32(MIN_STD))[:, None]
        for lo in range(0, b, INPUT_CHUNK):
            hi = min(lo + INPUT_CHUNK, b)
            chunk = w[lo:hi]
            # Time last and contiguous for one GEMM: (c*F, window) @ (window, rows).
            flat = np.empty((hi - lo, f, n), dtype=np.float32)
            if centred:
                ref = chunk[:, -1, :]
                np.subtract(chunk.transpose(0, 2, 1), ref[:, :, None], out=flat)
            else:
                flat[...] = chunk.transpose(0, 2, 1)
            y = _product(flat.reshape(-1, n), pt).reshape(hi - lo, f, -1)
            if centred:
                # The mean row of the deviations, plus the reference, is the window's mean.
                np.add(y[:, :, steps], ref, out=offset[lo:hi])
            # Cast to float32, then scale in float32, as `normalise` does; (c, F, steps) is
            # contiguous along steps, so the scaling runs over rows, not 6-element ones.
            z = y[:, :, :steps].astype(np.float32)
            z -= mean32
            z /= std32
            np.copyto(x[lo:hi], z.transpose(0, 2, 1))
        return x, offset

    def targets(self, y: FloatArray, offset: FloatArray) -> FloatArray:
        """Normalise next samples ``(B, F)`` as the model is trained to output them."""
        return normalise(np.asarray(y) - offset, self.mean, self.std)

    def outputs(self, out: FloatArray, offset: FloatArray) -> FloatArray:
        """Map model output ``(B, F)`` back to raw units (float64)."""
        raw: FloatArray = np.asarray(denormalise(out, self.mean, self.std), np.float64) + offset
        return raw
