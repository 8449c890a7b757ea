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
    pooled_steps,
    time_matrix,
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
    """`none` subtracts nothing; `window_mean` subtracts each window's per-feature mean;
    `last` its last sample."""
    w = np.arange(12, dtype=float).reshape(2, 3, 2)
    assert window_offset(w, "none").tolist() == [[0, 0], [0, 0]]
    assert window_offset(w, "window_mean").tolist() == [[2, 3], [8, 9]]
    assert window_offset(w, "last").tolist() == [[4, 5], [10, 11]]


def test_last_centring_makes_an_output_of_zero_persistence() -> None:
    """With `last`, float32 (the server's matrix product) and float64 (the trainer's) give
    the same inputs, the offset is the last sample, and a model output of 0 predicts it:
    "next = last"."""
    prep = Preprocess(np.zeros(2), np.array([2.0, 0.5]), "last", recent=2, block=2)
    base = np.random.default_rng(1).normal(size=(3, 6, 2))
    x64, off64 = prep.inputs(base)
    np.testing.assert_allclose(off64, base[:, -1])
    x32, off32 = prep.inputs(base.astype(np.float32))
    np.testing.assert_allclose(x32, x64, atol=1e-5)
    np.testing.assert_allclose(off32, base[:, -1], atol=1e-6)
    np.testing.assert_allclose(x64[:, -1], 0.0, atol=1e-6)  # the last sample minus itself
    np.testing.assert_allclose(prep.outputs(np.zeros((3, 2)), off32), base[:, -1], atol=1e-6)


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


# -- Preprocess.inputs as one matrix product ----------------------------------------------

#: Four preprocessings of 120-sample windows of 6 vitals: (centring, recent); block 5.
VARIANTS = [
    ("window_mean", 20),
    ("window_mean", None),
    ("none", 20),
    ("none", None),
    ("last", 20),
]
LEVELS = np.array([80.0, 96.0, 16.0, 120.0, 75.0, 37.0])
SPREAD = np.array([6.0, 1.5, 2.5, 8.0, 6.0, 0.3])


def _walks(n: int, dtype: type = np.float32) -> np.ndarray:
    """Random walks around random levels, (n, 120, 6), like the shipped model's windows."""
    rng = np.random.default_rng(5)
    base = LEVELS + rng.uniform(-1, 1, (n, 1, 6)) * 3 * SPREAD
    return (base + np.cumsum(rng.standard_normal((n, 120, 6)) * SPREAD, axis=1) / 4).astype(dtype)


def _prep(centring: str, recent: int | None) -> Preprocess:
    if centring == "none":
        return Preprocess(LEVELS, 3 * SPREAD, "none", recent, 5)
    # The shipped model's statistics of centred values.
    std = np.array([4.32, 0.685, 1.64, 4.52, 3.09, 0.0684])
    return Preprocess(np.full(6, 0.01), std, centring, recent, 5)  # type: ignore[arg-type]


def _old_way(prep: Preprocess, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The obvious computation, in the windows' dtype: offset, centre, pool, normalise."""
    offset = window_offset(w, prep.centring)
    centred = w - offset[:, None, :] if prep.centring != "none" else w
    return normalise(pool_window(centred, prep.recent, prep.block), prep.mean, prep.std), offset


@pytest.mark.parametrize(("centring", "recent"), VARIANTS)
def test_inputs_match_float64_reference(centring: str, recent: int | None) -> None:
    """float32 windows: within the float32 error bound of the product, and no further from
    the float64 value than the old float32 computation.

    The bound: a float32 sum of 120 products errs by at most 120 * 2**-24 times the sum of
    their magnitudes (recursive summation; a blocked GEMM does better); the weights of a
    row of the time matrix sum to at most 2 in magnitude (1 for the mean row), applied to
    deviations from the window's last sample (to raw values without centring); then the
    result's own float32 spacing. Measured here, normalised: at most 1.5e-5 centred and
    4.3e-6 pooled but not centred (4 % of the bound), against 2.8e-4 and 6.8e-6 for the old
    float32 computation; offsets (raw, up to ~150) 1.5e-5 against 6.7e-5.
    """
    prep = _prep(centring, recent)
    w = _walks(500)
    x, offset = prep.inputs(w)
    w64 = w.astype(np.float64)
    truth_off = window_offset(w64, prep.centring)
    truth_x = (pool_window(w64 - truth_off[:, None, :], recent, 5) - prep.mean) / prep.std
    sum_error = _sum_error(prep, w)
    assert (np.abs(x - truth_x) <= 2 * sum_error / prep.std + np.spacing(np.abs(x))).all()
    old_x, old_off = _old_way(prep, w)
    assert np.abs(x - truth_x).max() <= np.abs(old_x - truth_x).max()
    # The offset: the mean row's weights sum to 1, then the reference is added back.
    assert (np.abs(offset - truth_off) <= sum_error + np.spacing(np.abs(offset))).all()
    assert np.abs(offset - truth_off).max() <= np.abs(old_off - truth_off).max()


def _sum_error(prep: Preprocess, w: np.ndarray) -> np.ndarray:
    """Per feature: the float32 error bound of a 120-term sum, per unit of weight."""
    w64 = w.astype(np.float64)
    ref = w64[:, -1:, :] if prep.centring == "window_mean" else 0.0
    result: np.ndarray = 120 * 2.0**-24 * np.abs(w64 - ref).max(axis=(0, 1))
    return result


@pytest.mark.parametrize(("centring", "recent"), VARIANTS)
def test_inputs_of_float64_windows_equal_the_old_way(centring: str, recent: int | None) -> None:
    """float64 windows (the trainer's) take the old computation itself: exactly its values,
    so a retrain reproduces the shipped model bit for bit."""
    prep = _prep(centring, recent)
    w = _walks(300, np.float64)
    x, offset = prep.inputs(w)
    old_x, old_off = _old_way(prep, w)
    np.testing.assert_array_equal(x, old_x)
    np.testing.assert_array_equal(offset, old_off)


@pytest.mark.parametrize(("centring", "recent"), VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_shapes_and_dtypes(centring: str, recent: int | None, dtype: type) -> None:
    """x is float32 (B, steps, F); the offset (B, F) in the windows' float dtype."""
    x, offset = _prep(centring, recent).inputs(_walks(3, dtype))
    assert x.shape == (3, 40 if recent else 120, 6)
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    assert offset.shape == (3, 6)
    assert offset.dtype == dtype
    if centring == "none":
        assert not offset.any()
    empty, empty_offset = _prep(centring, recent).inputs(_walks(0, dtype))
    assert empty.shape == (0, 40 if recent else 120, 6)
    assert empty_offset.shape == (0, 6)


def test_inputs_in_chunks_equal_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of INPUT_CHUNK windows (the trainer's large arrays) give the same result."""
    prep = _prep("window_mean", 20)
    w = _walks(50)
    whole = prep.inputs(w)
    monkeypatch.setattr("monitor.model.features.INPUT_CHUNK", 7)
    chunked = prep.inputs(w)
    # Not bit for bit: the BLAS may sum a row in another order for another number of
    # rows. Each is within the error bound of the float64 value, so within twice of each other.
    sum_error = _sum_error(prep, w)
    bound = 2 * sum_error / prep.std + np.spacing(np.abs(whole[0]))
    assert (np.abs(chunked[0] - whole[0]) <= 2 * bound).all()
    assert (np.abs(chunked[1] - whole[1]) <= 2 * (sum_error + np.spacing(whole[1]))).all()


def test_time_matrix_rows() -> None:
    """Centring rows sum to 0, the mean row is 1/window; without centring, pooling rows sum
    to 1; no pooling and no centring is the identity."""
    p = time_matrix(7, "window_mean", 3, 2)
    assert p.shape == (5 + 1, 7)
    np.testing.assert_allclose(p[:5].sum(axis=1), 0, atol=1e-15)
    np.testing.assert_allclose(p[5], 1 / 7)
    w = np.arange(7.0)
    np.testing.assert_allclose(p @ w, [0.5 - 3, 2.5 - 3, 4 - 3, 5 - 3, 6 - 3, 3])
    np.testing.assert_allclose(time_matrix(7, "none", 3, 2) @ w, [0.5, 2.5, 4, 5, 6])
    assert (time_matrix(4, "none", None, 1) == np.eye(4)).all()
    assert pooled_steps(120, 20, 5) == 40
    assert pooled_steps(120, None, 5) == pooled_steps(120, 120, 5) == 120


def test_inputs_refuse_bad_shapes() -> None:
    """A 2-D array, or pooling that does not fit the window, is a ValueError."""
    with pytest.raises(ValueError, match=r"\(B, window, F\)"):
        _prep("window_mean", 20).inputs(np.zeros((120, 6)))
    with pytest.raises(ValueError, match="not a multiple"):
        _prep("window_mean", 21).inputs(_walks(1))
