"""Defaults of the data recipe chosen from the data itself.

`monitor train --data` fits one model per stream, on series from a few hundred to tens of
thousands of samples, some periodic (an ECG beat, a breath), some not (minute numerics, beat
intervals). Two things follow from the data rather than from a fixed preset:

* the window, from the dominant period of the training part (`choose_window`): a window of
  about 2.5 periods lets the model see where in the cycle the series is;
* the sizes that decide training time (`choose_sizes`): epochs, batch size and stride scale
  with the number of training windows, so a 20,000-sample stream trains in well
  under a minute on two cores.

Only the training rows are looked at: the held-out part stays unseen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Window bounds in samples: below 8 a window barely sees a trend; above 240 (pooled to at
#: most 40 LSTM steps) the cost per window grows without a gain seen on the bench recordings.
WINDOW_MIN = 8
WINDOW_MAX = 240
#: Periods covered by a chosen window.
PERIODS_PER_WINDOW = 2.5
#: Longest lag searched for a period: a period up to 4 maximal windows is still reported
#: (the window is then capped), longer ones are treated as trends.
MAX_LAG = 4 * WINDOW_MAX
#: A period needs an autocorrelation peak at least this high (the MIT-BIH ECG's beat, whose
#: narrow QRS complexes drift apart with the heart rate's variation, peaks at 0.27), and at
#: least `NOISE_PEAKS` times the standard error of white noise's autocorrelation,
#: 1/sqrt(samples), so a short noisy series does not pass on a chance peak ...
MIN_PEAK = 0.2
NOISE_PEAKS = 4.0
#: ... that stands at least this far above the lowest autocorrelation at shorter lags, so a
#: slowly decaying (trending, random-walk) series with wiggles is not called periodic.
MIN_PROMINENCE = 0.15
#: The period is the first peak at least this share of the highest one.
FUNDAMENTAL_SHARE = 0.9
#: Windows longer than this are pooled: the last `POOL_RECENT` samples as they are, older
#: ones as block means, about `POOL_RECENT + POOL_BLOCKS` LSTM steps in all.
POOL_ABOVE = 40
POOL_RECENT = 20
POOL_BLOCKS = 20
#: Training cost budget, in window-epochs (windows seen, summed over epochs): about 15 to 20
#: CPU seconds at 40 LSTM steps and hidden size 32 on the development machine.
WINDOW_EPOCHS = 300_000
EPOCHS_MIN = 8
EPOCHS_MAX = 40
#: Fewer training windows than this train in batches of 32 (more steps per epoch).
SMALL_DATA = 4_000
#: Above this many training windows, keep every n-th (the stride) instead of cutting epochs
#: below `EPOCHS_MIN`.
MAX_TRAIN_WINDOWS = 40_000


@dataclass(frozen=True, slots=True)
class Period:
    """A dominant period found by autocorrelation.

    Attributes:
        lag: The period, in samples.
        strength: The autocorrelation at that lag (1 for a perfect repetition).
        feature: The feature it was found in.
    """

    lag: int
    strength: float
    feature: str


@dataclass(frozen=True, slots=True)
class WindowChoice:
    """The window chosen, with pooling for long windows, and why.

    Attributes:
        window: Samples per input window.
        pool_recent: Pooling's recent samples; None when the window is not pooled.
        pool_block: Pooling's block size (1 when not pooled).
        period: The dominant period it follows; None for aperiodic data (the default).
        reason: One line for the user and the card.
    """

    window: int
    pool_recent: int | None
    pool_block: int
    period: Period | None
    reason: str


def autocorrelation(series: Sequence[FloatArray], max_lag: int) -> FloatArray:
    """Autocorrelation at lags ``0..max_lag`` of one signal given as gap-free pieces.

    Each piece is centred on its own mean; lagged products are summed within pieces (never
    across a gap) and divided by the summed squares at lag 0 (the biased estimator: peaks
    shrink with the lag, and chance peaks at long lags stay small).

    Args:
        series: 1-D pieces of one signal, oldest first.
        max_lag: Largest lag returned.

    Returns:
        ``(max_lag + 1,)`` values, 1 at lag 0 (all zeros for a constant signal); lags
        longer than every piece are 0.
    """
    total = np.zeros(max_lag + 1)
    for piece in series:
        x = np.asarray(piece, dtype=np.float64) - float(np.mean(piece))
        n = x.size
        if n < 2:
            continue
        size = 1 << (2 * n - 1).bit_length()  # zero-padded: a linear, not circular, sum
        spectrum = np.fft.rfft(x, size)
        products = np.fft.irfft(spectrum * np.conj(spectrum), size)[: min(n, max_lag + 1)]
        total[: products.size] += products
    if total[0] <= 0:
        return np.zeros(max_lag + 1)
    out: FloatArray = total / total[0]
    return out


def dominant_lag(acf: FloatArray, samples: int) -> tuple[int, float] | None:
    """The lag of the highest autocorrelation peak that marks a period, or None.

    A peak is a local maximum at lag >= 2 that reaches `MIN_PEAK` and ``NOISE_PEAKS /
    sqrt(samples)`` and stands `MIN_PROMINENCE` above the lowest value at shorter lags; of
    those, the first within `FUNDAMENTAL_SHARE` of the highest.

    Args:
        acf: Autocorrelation from lag 0 (`autocorrelation`).
        samples: Samples it was computed from.

    Returns:
        ``(lag, autocorrelation)``, or None when no peak qualifies (aperiodic data).
    """
    floor = max(MIN_PEAK, NOISE_PEAKS / math.sqrt(max(samples, 1)))
    peaks: list[tuple[int, float]] = []
    low = math.inf
    for k in range(1, acf.size - 1):
        low = min(low, float(acf[k]))
        if k < 2 or not (acf[k] >= acf[k - 1] and acf[k] > acf[k + 1]):
            continue
        value = float(acf[k])
        if value >= floor and value - low >= MIN_PROMINENCE:
            peaks.append((k, value))
    if not peaks:
        return None
    # A period's multiples peak almost as high (noise can even lift one above it): the
    # first peak close to the highest is the period itself.
    top = max(v for _, v in peaks)
    return next(p for p in peaks if p[1] >= FUNDAMENTAL_SHARE * top)


def dominant_period(segments: Sequence[FloatArray], features: Sequence[str]) -> Period | None:
    """The strongest period over features of the training segments ``(T_i, F)``, or None."""
    longest = max((len(s) for s in segments), default=0)
    max_lag = min(MAX_LAG, longest // 2)
    if max_lag < 3:
        return None
    found: list[Period] = []
    for j, name in enumerate(features):
        acf = autocorrelation([s[:, j] for s in segments], max_lag)
        peak = dominant_lag(acf, sum(len(s) for s in segments))
        if peak is not None:
            found.append(Period(peak[0], peak[1], name))
    return max(found, key=lambda p: p.strength, default=None)


def pooling_for(window: int) -> tuple[int, int | None, int]:
    """Pool a long window to about ``POOL_RECENT + POOL_BLOCKS`` LSTM steps.

    Returns:
        ``(window, pool_recent, pool_block)``; a window of at most `POOL_ABOVE` samples is
        returned as it is with ``(None, 1)``; a longer one is shortened to the longest window
        whose older part (``window - POOL_RECENT``) tiles into blocks.
    """
    if window <= POOL_ABOVE:
        return window, None, 1
    old = window - POOL_RECENT
    block = math.ceil(old / POOL_BLOCKS)
    blocks = old // block  # rounded down: never beyond the window the data allows
    return POOL_RECENT + blocks * block, POOL_RECENT, block


def choose_window(
    segments: Sequence[FloatArray],
    features: Sequence[str],
    *,
    sample_period_s: float,
    fallback: int,
    limit: int,
) -> WindowChoice:
    """Choose the window from the dominant period of the training segments.

    Args:
        segments: Training segments ``(T_i, F)``, raw units.
        features: Feature names, column order.
        sample_period_s: Seconds per sample, for the reason line.
        fallback: The window for aperiodic data (the recipe's).
        limit: Largest window the data allows (every split needs a longer segment).

    Returns:
        The choice; its `reason` says what was found and how the window follows from it.
    """
    period = dominant_period(segments, features)
    if period is None:
        desired = fallback
        searched = min(MAX_LAG, max((len(s) for s in segments), default=0) // 2)
        reason = (
            f"no period in the training part (no autocorrelation peak >= {MIN_PEAK} up to "
            f"lag {searched}): the recipe's default window {fallback}"
        )
    else:
        wanted = round(PERIODS_PER_WINDOW * period.lag)
        desired = min(max(wanted, WINDOW_MIN), WINDOW_MAX)
        seconds = period.lag * sample_period_s
        reason = (
            f"dominant period {period.lag} samples ({seconds:.4g} s) in the training part of "
            f"{period.feature} (autocorrelation {period.strength:.2f}); "
            f"{PERIODS_PER_WINDOW:g} periods = {wanted} samples"
        )
        if desired != wanted:
            reason += f", bounded to [{WINDOW_MIN}, {WINDOW_MAX}]: {desired}"
    window = min(desired, limit)
    if window < desired:
        reason += f"; capped at {limit}, the shortest split's longest gap-free run less one"
    pooled, recent, block = pooling_for(window)
    if recent is not None:
        reason += (
            f"; pooled: last {recent} samples as they are, older ones as means of {block} "
            f"(window {pooled}, {recent + (pooled - recent) // block} LSTM steps)"
        )
    return WindowChoice(pooled, recent, block, period, f"window {pooled}: {reason}")


def window_limit(parts: Sequence[Sequence[FloatArray]]) -> int:
    """The largest window every part can cut at least one window from.

    Args:
        parts: Segments of each split (train, validation, test); an empty part is skipped.
    """
    lengths = [max(len(s) for s in part) for part in parts if part]
    return max(1, min(lengths, default=WINDOW_MAX + 1) - 1)


@dataclass(frozen=True, slots=True)
class Sizes:
    """Training sizes chosen from the number of training windows.

    Attributes:
        epochs: Passes over the (strided) training windows.
        batch_size: Windows per optimiser step.
        train_stride: Keep every n-th training window.
        reason: One line for the user.
    """

    epochs: int
    batch_size: int
    train_stride: int
    reason: str


def choose_sizes(n_windows: int) -> Sizes:
    """Epochs, batch size and stride for `n_windows` training windows.

    Small data: small batches and the most epochs (enough optimiser steps); large data:
    larger batches, fewer epochs and then a stride, so the windows seen in all
    (`WINDOW_EPOCHS`), and so the time, stay bounded. The hidden size stays the recipe's:
    16 instead of 32 on small data saved no time worth having and scored no better on the
    bench recordings (MIMIC-II heart rate: 0.968 against 0.959 x persistence).
    """
    stride = max(1, math.ceil(n_windows / MAX_TRAIN_WINDOWS))
    kept = math.ceil(n_windows / stride)
    # Batch 64, not 128, above 4,000 windows: on the MIT-BIH ECG 128 gave 0.265 x persistence
    # and 64 gave 0.242 for the same epochs (twice the optimiser steps, 1.1x the time).
    batch = 32 if kept < SMALL_DATA else 64
    epochs = min(EPOCHS_MAX, max(EPOCHS_MIN, round(WINDOW_EPOCHS / max(kept, 1))))
    reason = (
        f"{n_windows} training windows"
        + (f", every {stride}th kept ({kept})" if stride > 1 else "")
        + f": {epochs} epochs, batch {batch}"
        + (f", stride {stride}" if stride > 1 else "")
    )
    return Sizes(epochs, batch, stride, reason)
