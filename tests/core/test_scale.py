"""Per-patient residual scale."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.scale import ResidualScale, diff_noise_sigma


def _window(sigma: float, n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    slow = np.linspace(0.0, 1.0, n)[:, None]
    return 100.0 + slow + rng.standard_normal((n, 2)) * sigma


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_initial_scale_estimates_the_window_noise(sigma: float) -> None:
    """The first window's robust noise estimate is within 25 % of the true sigma (x 1.1)."""
    scale = ResidualScale(np.array([1.0, 1.0]), model_error_ratio=1.0)
    estimates = [scale.initial(_window(sigma, seed=s)) for s in range(20)]
    assert np.mean(estimates) == pytest.approx(sigma, rel=0.25)


def test_quiet_patient_gets_a_larger_z_than_the_pooled_sigma_gives() -> None:
    """A 10-sigma residual of a patient with half the pooled noise reads about 10, not 5."""
    scale = ResidualScale(np.array([2.0, 2.0]), model_error_ratio=1.0)
    z = scale.z("p1", _window(1.0, n=200), np.array([10.0, 0.0]))
    assert 7.0 < z[0] < 14.0
    assert abs(z[1]) < 1e-9


def test_one_anomaly_moves_the_variance_by_at_most_alpha_clip_squared() -> None:
    """A 100-sigma residual enters the variance clipped at `clip_at` scales."""
    scale = ResidualScale(np.array([1.0]), alpha=0.1, clip_at=4.0)
    ctx = _window(1.0)[:, :1]
    scale.z("p", ctx, np.array([0.0]))
    before = scale.sigma("p")
    assert before is not None
    scale.z("p", ctx, np.array([100.0]))
    after = scale.sigma("p")
    assert after is not None
    assert after[0] ** 2 == pytest.approx(before[0] ** 2 * (0.9 + 0.1 * 16.0))


def test_without_clip_anomalies_do_not_inflate_the_scale() -> None:
    """The default (no `clip_at`): residuals beyond `update_below` leave the scale untouched."""
    scale = ResidualScale(np.array([1.0]), alpha=0.1)
    ctx = _window(1.0)[:, :1]
    scale.z("p", ctx, np.array([0.0]))
    before = scale.sigma("p")
    assert before is not None
    for _ in range(50):
        scale.z("p", ctx, np.array([100.0]))
    assert scale.sigma("p") == pytest.approx(before)


def _settled(residuals: np.ndarray, clip_at: float | None) -> tuple[float, np.ndarray]:
    scale = ResidualScale(np.array([1.0]), clip_at=clip_at)
    ctx = np.random.default_rng(9).standard_normal((60, 1))
    n = len(residuals)
    z = scale.z_batch(["p"] * n, [ctx] * n, residuals[:, None])[:, 0]
    sigma = scale.sigma("p")
    assert sigma is not None
    return float(sigma[0]), z[n // 2 :]


def test_gaussian_residuals_keep_their_sigma() -> None:
    """Unit Gaussian residuals, clipped at 6: the scale stays near 1 and |z| > 4 stays as
    rare as it is."""
    sigma, z = _settled(np.random.default_rng(0).standard_normal(20_000), 6.0)
    assert sigma == pytest.approx(1.0, abs=0.1)
    assert np.mean(np.abs(z) > 4.0) < 0.001


def test_heavy_tails_widen_the_scale() -> None:
    """Student-t (3 degrees of freedom) residuals clipped at 6: their 3- to 6-sigma residuals
    widen the scale, so |z| > 4 is under 1.2 % of samples (0.9 %, seed 0), where the |z| < 3
    rule leaves it above (1.6 %)."""
    t3 = np.random.default_rng(0).standard_t(3, 20_000)
    _, z = _settled(t3, 6.0)
    assert np.mean(np.abs(z) > 4.0) < 0.012
    _, old = _settled(t3, None)
    assert np.mean(np.abs(old) > 4.0) > 0.012


def test_a_slow_bias_is_learned_and_stops_counting() -> None:
    """A constant 2-sigma residual bias fades from z as the running mean learns it."""
    scale = ResidualScale(np.array([1.0]), alpha=0.05)
    ctx = np.zeros((60, 1)) + np.random.default_rng(1).standard_normal((60, 1))
    first = scale.z("p", ctx, np.array([2.0]))[0]
    for _ in range(200):
        last = scale.z("p", ctx, np.array([2.0]))[0]
    assert first > 1.5
    assert abs(last) < 0.2


def test_floor_and_forget() -> None:
    """A zero-variance window is floored; forgetting a patient drops its state."""
    scale = ResidualScale(np.array([2.0]), floor_ratio=0.25)
    z = scale.z("p", np.zeros((60, 1)), np.array([1.0]))
    assert z[0] == pytest.approx(2.0)
    assert len(scale) == 1
    scale.forget("p")
    assert scale.sigma("p") is None
    assert len(scale) == 0


def test_batch_equals_row_by_row_with_repeated_patients() -> None:
    """z_batch over a batch where patients repeat gives exactly the row-by-row results."""
    rng = np.random.default_rng(5)
    pids = ["a", "b", "a", "c", "a", "b"] * 5
    contexts = [_window(1.0 + i % 3, seed=i) for i in range(len(pids))]
    residuals = rng.standard_normal((len(pids), 2)) * 2
    residuals[7] = [50.0, 0.0]
    one = ResidualScale(np.array([1.0, 1.0]), alpha=0.2)
    rows = np.stack([one.z(p, c, r) for p, c, r in zip(pids, contexts, residuals, strict=True)])
    two = ResidualScale(np.array([1.0, 1.0]), alpha=0.2)
    batched = two.z_batch(pids, contexts, residuals)
    np.testing.assert_array_equal(batched, rows)
    for pid in "abc":
        np.testing.assert_array_equal(two.sigma(pid), one.sigma(pid))


@pytest.mark.parametrize("length", [2, 3, 60, 120, 121])
def test_diff_noise_sigma_is_the_mad_of_differences_per_window(length: int) -> None:
    """Batched (B, T, F) estimates equal np.median's MAD of first differences, window by window."""
    rng = np.random.default_rng(length)
    windows = (rng.standard_normal((9, length, 3)) * 2.0 + 80.0).astype(np.float32)
    diffs = np.diff(windows.astype(np.float64), axis=1)
    mad = np.median(np.abs(diffs - np.median(diffs, axis=1, keepdims=True)), axis=1)
    expected = mad * 1.4826 / np.sqrt(2.0)
    batched = diff_noise_sigma(windows)
    np.testing.assert_allclose(batched, expected, rtol=1e-12)
    for b in range(windows.shape[0]):
        assert np.array_equal(diff_noise_sigma(windows[b]), batched[b])


def test_a_sparse_vital_learns_its_scale_from_its_own_residuals_before_it_is_judged() -> None:
    """With observed flags: a vital seen in under half of the first window (blood pressure
    every few minutes) starts from the card's sigma, is not judged (z NaN) for its first
    LEARN_SAMPLES residuals, which set its scale whatever their size, and is judged on that
    scale afterwards; a dense vital is judged from the first sample; NaN residuals (not in
    the sample) neither count nor change anything."""
    from monitor.core.scale import LEARN_SAMPLES

    scale = ResidualScale(np.array([1.0, 1.0]), model_error_ratio=1.0, masked=True)
    values = _window(1.0, n=60)
    flags = np.ones_like(values)
    flags[:, 1] = 0.0
    flags[::20, 1] = 1.0  # the second vital: 3 of 60 samples
    context = np.concatenate([values, flags], axis=1)
    zs = []
    for k in range(LEARN_SAMPLES + 2):
        zs.append(scale.z("p", context, np.array([0.5, np.nan])))  # not in this sample
        zs.append(scale.z("p", context, np.array([0.5, 6.0 if k % 2 else -6.0])))
    second = np.array([z[1] for z in zs])
    assert np.isnan(second[: 2 * LEARN_SAMPLES]).all()
    judged = second[2 * LEARN_SAMPLES :][1::2]
    assert np.all(np.abs(judged) < 1.5)  # residuals of 6 are its normal now, not 6 sigma
    assert not np.isnan([z[0] for z in zs]).any()  # the dense vital: judged throughout
    sigma = scale.sigma("p")
    assert sigma is not None
    assert 4.0 < sigma[1] < 7.0


def test_a_sparse_vitals_scale_learned_small_grows_when_its_values_are_heavy() -> None:
    """A cuff pressure whose first readings happen to agree (residuals 0.5) learns a small
    scale; its later readings swing by 6. Unclipped, as before, only residuals under
    `update_below` scales update the variance, so the scale never grows and every reading
    is a 10-sigma spike; marked heavy for that vital (`heavy` per row and vital), its
    variance follows winsorised residuals and the swings soon stop counting. The other
    vital, not marked, scores exactly as without the mark."""
    from monitor.core.scale import LEARN_SAMPLES

    values = _window(1.0, n=60)
    flags = np.ones_like(values)
    flags[:, 1] = 0.0
    context = np.concatenate([values, flags], axis=1)
    residuals = [0.5] * LEARN_SAMPLES + [6.0 if k % 2 else -6.0 for k in range(40)]
    second: dict[bool, list[float]] = {}
    first: dict[bool, list[float]] = {}
    for marked in (False, True):
        scale = ResidualScale(np.array([1.0, 1.0]), model_error_ratio=1.0, masked=True)
        heavy = np.array([[False, marked]])
        zs = [
            scale.z_batch(["p"], [context], np.array([[0.3 * (-1) ** k, r]]), heavy=heavy)[0]
            for k, r in enumerate(residuals)
        ]
        second[marked] = [abs(float(z[1])) for z in zs[LEARN_SAMPLES:]]
        first[marked] = [float(z[0]) for z in zs]
    assert min(second[False]) > 8.0  # never learned: every swing a spike
    assert sum(z > 5.5 for z in second[True]) <= 5  # its first 4
    assert max(second[True][-10:]) < 4.0
    assert first[True] == first[False]
