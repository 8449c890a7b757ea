"""The data recipe's window from the dominant period, and its sizes from the data size."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.training.data_defaults import (
    EPOCHS_MAX,
    MAX_TRAIN_WINDOWS,
    WINDOW_MAX,
    autocorrelation,
    choose_sizes,
    choose_window,
    dominant_period,
    pooling_for,
    window_limit,
)


def _noisy_sine(n: int, period: float, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    return (np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(n)).reshape(-1, 1)


def _random_walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (70.0 + np.cumsum(rng.standard_normal(n))).reshape(-1, 1)


def test_autocorrelation_of_a_sine_peaks_at_its_period() -> None:
    """cos-shaped: 1 at lag 0, about -1 at half a period, a peak at the period."""
    acf = autocorrelation([_noisy_sine(2000, 20, 0.0)[:, 0]], 40)
    assert acf[0] == pytest.approx(1.0)
    assert acf[10] < -0.9
    assert int(np.argmax(acf[5:30])) + 5 == 20


def test_autocorrelation_never_crosses_a_gap() -> None:
    """Two pieces give the lag products within each piece only, as one long piece would not."""
    a, b = np.array([1.0, -1.0, 1.0, -1.0]), np.array([5.0, 5.0, -5.0, -5.0])
    pooled = autocorrelation([a, b], 3)
    ca, cb = a - a.mean(), b - b.mean()
    expected = [
        (np.dot(ca[: 4 - k], ca[k:]) + np.dot(cb[: 4 - k], cb[k:]))
        / (np.dot(ca, ca) + np.dot(cb, cb))
        for k in range(4)
    ]
    np.testing.assert_allclose(pooled, expected, atol=1e-12)


@pytest.mark.parametrize(("period", "noise"), [(12, 0.3), (25, 0.5), (60, 0.2), (9, 1.0)])
def test_known_period_is_found(period: int, noise: float) -> None:
    """Noisy sines of a known period: the period found is that period."""
    found = dominant_period([_noisy_sine(3000, period, noise)], ("seed_signal",))
    assert found is not None
    assert found.lag == period
    assert found.feature == "seed_signal"


def test_period_found_across_gap_split_segments() -> None:
    """The period of a series cut into pieces by gaps is still its period."""
    series = _noisy_sine(3000, 16, 0.3)
    pieces = [series[:700], series[710:1900], series[1905:]]
    found = dominant_period(pieces, ("seed_signal",))
    assert found is not None
    assert found.lag == 16


def test_aperiodic_data_has_no_period() -> None:
    """A random walk (a drifting vital) and white noise: no period."""
    assert dominant_period([_random_walk(5000)], ("heart_rate",)) is None
    noise = np.random.default_rng(1).standard_normal((400, 1))
    assert dominant_period([noise], ("heart_rate",)) is None


def test_strongest_feature_decides() -> None:
    """Two features: the one with the clearer period gives the window."""
    both = np.hstack([_random_walk(3000), _noisy_sine(3000, 14, 0.2)])
    found = dominant_period([both], ("heart_rate", "resp_rate"))
    assert found is not None
    assert (found.feature, found.lag) == ("resp_rate", 14)


def test_window_covers_two_and_a_half_periods_and_says_why() -> None:
    """Period 12: window 30, no pooling; the reason names the period and the rule."""
    choice = choose_window(
        [_noisy_sine(3000, 12, 0.3)],
        ("seed_signal",),
        sample_period_s=0.5,
        fallback=10,
        limit=1000,
    )
    assert (choice.window, choice.pool_recent, choice.pool_block) == (30, None, 1)
    assert choice.period is not None
    assert choice.period.lag == 12
    assert "dominant period 12 samples (6 s)" in choice.reason
    assert "2.5 periods = 30 samples" in choice.reason


def test_long_period_is_bounded_and_pooled() -> None:
    """Period 150: 2.5 periods is 375, bounded to 240 and pooled to 40 LSTM steps."""
    choice = choose_window(
        [_noisy_sine(6000, 150, 0.3)],
        ("seed_signal",),
        sample_period_s=1.0,
        fallback=10,
        limit=5000,
    )
    assert choice.window == WINDOW_MAX
    assert (choice.pool_recent, choice.pool_block) == (20, 11)
    assert "bounded to [8, 240]" in choice.reason
    assert "40 LSTM steps" in choice.reason


def test_aperiodic_data_falls_back_to_the_default() -> None:
    """No period: the recipe's window, and the reason says none was found."""
    choice = choose_window(
        [_random_walk(3000)], ("heart_rate",), sample_period_s=60.0, fallback=10, limit=1000
    )
    assert (choice.window, choice.period, choice.pool_recent) == (10, None, None)
    assert "no period in the training part" in choice.reason
    assert "default window 10" in choice.reason


def test_window_capped_by_the_shortest_split() -> None:
    """A validation tail of 25 rows caps a 30-sample window at 24, and the reason says so."""
    parts = [[np.zeros((3000, 1))], [np.zeros((25, 1))], [np.zeros((500, 1)), np.zeros((9, 1))]]
    limit = window_limit(parts)
    assert limit == 24
    choice = choose_window(
        [_noisy_sine(3000, 12, 0.3)],
        ("seed_signal",),
        sample_period_s=1.0,
        fallback=10,
        limit=limit,
    )
    assert choice.window == 24
    assert "capped at 24" in choice.reason


@pytest.mark.parametrize("window", [41, 57, 100, 239, 240])
def test_pooling_tiles_the_window(window: int) -> None:
    """Pooled windows never grow, tile into blocks and run at most 40 LSTM steps."""
    pooled, recent, block = pooling_for(window)
    assert recent is not None
    assert pooled <= window
    assert (pooled - recent) % block == 0
    assert recent + (pooled - recent) // block <= 40


def test_short_windows_are_not_pooled() -> None:
    """Up to 40 samples the LSTM sees every sample."""
    assert pooling_for(40) == (40, None, 1)


def test_sizes_follow_the_data_size() -> None:
    """Small data: small batches, the most epochs; large data: fewer epochs, then a stride."""
    small = choose_sizes(1_000)
    assert (small.batch_size, small.epochs, small.train_stride) == (32, EPOCHS_MAX, 1)
    mid = choose_sizes(17_000)
    assert (mid.batch_size, mid.train_stride) == (64, 1)
    assert mid.epochs < EPOCHS_MAX
    big = choose_sizes(10 * MAX_TRAIN_WINDOWS)
    assert big.train_stride == 10
    assert "every 10th kept" in big.reason
    # The windows seen in all stay bounded as the data grow.
    seen = [
        s.epochs * -(-n // s.train_stride)
        for n in (20_000, 100_000, 1_000_000)
        for s in [choose_sizes(n)]
    ]
    assert max(seen) <= 1.1 * min(seen)
