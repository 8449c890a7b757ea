"""Windowing and normalisation shared by trainer and predictor."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.model.features import denormalise, fit_normalisation, make_windows, normalise


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
