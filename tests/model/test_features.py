"""Windowing and normalisation shared by trainer and predictor."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.model.features import (
    Preprocess,
    denormalise,
    fit_normalisation,
    make_windows,
    normalise,
    pool_window,
    window_offset,
)


def test_make_windows_matches_the_seed_create_sequences() -> None:
    """X[i] = series[i:i+w], y[i] = series[i+w], T-w pairs (the seed's example)."""
    series = np.array([[10.0], [20.0], [30.0], [40.0], [50.0]])
    x, y = make_windows(series, 3)
    assert x[:, :, 0].tolist() == [[10, 20, 30], [20, 30, 40]]
    assert y[:, 0].tolist() == [40, 50]


def test_make_windows_keeps_feature_columns() -> None:
    """Multivariate windows keep each feature in its own column."""
    series = np.arange(12, dtype=float).reshape(6, 2)
    x, y = make_windows(series, 4)
    assert x.shape == (2, 4, 2)
    assert x[1].tolist() == [[2, 3], [4, 5], [6, 7], [8, 9]]
    assert y.tolist() == [[8, 9], [10, 11]]


def test_make_windows_of_a_short_series_is_empty() -> None:
    """A series no longer than the window gives no pair, with the right trailing shape."""
    x, y = make_windows(np.zeros((3, 2)), 3)
    assert x.shape == (0, 3, 2)
    assert y.shape == (0, 2)


def test_make_windows_rejects_a_1d_series() -> None:
    """The feature axis is required."""
    with pytest.raises(ValueError, match="must be"):
        make_windows(np.zeros(5), 2)


def test_normalise_round_trip_and_statistics() -> None:
    """fit_normalisation gives per-column mean/std; denormalise inverts normalise."""
    a = np.array([[1.0, 10.0], [3.0, 10.0]])
    mean, std = fit_normalisation([a])
    assert mean.tolist() == [2.0, 10.0]
    assert std[0] == 1.0
    assert std[1] == pytest.approx(1e-6)  # a constant column is floored, not zero
    z = normalise(a, mean, std)
    assert z.dtype == np.float32
    assert z[:, 0].tolist() == [-1.0, 1.0]
    assert z[:, 1].tolist() == [0.0, 0.0]
    assert np.allclose(denormalise(z, mean, std), a)


def test_make_windows_with_stride_keeps_every_nth_pair() -> None:
    """stride=2 keeps pairs 0, 2, 4, ... of the stride-1 result."""
    series = np.arange(7, dtype=float).reshape(-1, 1)
    x, y = make_windows(series, 2, stride=2)
    assert x[:, :, 0].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert y[:, 0].tolist() == [2, 4, 6]


def test_window_offset_none_is_zero_and_window_mean_is_the_mean() -> None:
    """`none` subtracts nothing; `window_mean` subtracts each window's per-feature mean."""
    w = np.arange(12, dtype=float).reshape(2, 3, 2)
    assert window_offset(w, "none").tolist() == [[0, 0], [0, 0]]
    assert window_offset(w, "window_mean").tolist() == [[2, 3], [8, 9]]


def test_pool_window_block_means_then_recent_samples() -> None:
    """(B, 7, F) with recent 3, block 2 -> 2 block means then the last 3 samples."""
    w = np.arange(7, dtype=float).reshape(1, 7, 1)
    assert pool_window(w, 3, 2)[0, :, 0].tolist() == [0.5, 2.5, 4, 5, 6]
    assert pool_window(w, None, 2) is w
    assert pool_window(w, 7, 2) is w
    with pytest.raises(ValueError, match="not a multiple"):
        pool_window(w, 4, 2)


def test_preprocess_centred_model_sees_no_baseline() -> None:
    """Centred inputs are the same for two windows that differ by a constant; outputs add it
    back, so a model predicting 0 predicts each window's mean."""
    prep = Preprocess(np.zeros(2), np.array([2.0, 0.5]), "window_mean", recent=2, block=2)
    base = np.random.default_rng(0).normal(size=(1, 6, 2))
    x1, _ = prep.inputs(base)
    shift = np.array([50.0, -3.0])
    x2, off2 = prep.inputs(base + shift)
    np.testing.assert_allclose(x1, x2, atol=1e-4)
    assert x1.shape == (1, 4, 2)
    np.testing.assert_allclose(prep.outputs(np.zeros((1, 2)), off2), base.mean(axis=1) + shift)
    target = prep.targets(base[:, -1] + shift, off2)
    np.testing.assert_allclose(prep.outputs(target, off2), base[:, -1] + shift, atol=1e-4)
