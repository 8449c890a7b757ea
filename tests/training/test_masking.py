"""Observation patterns for training a model with an observed mask."""

from __future__ import annotations

import numpy as np

from monitor.model.features import Preprocess, with_flags
from monitor.training.masking import mask_windows


def test_masked_windows_carry_values_forward_and_drop_unobserved_targets() -> None:
    """Every masked vital is either observed at a step (flag 1, its own value) or carries
    the last observed value (or the window's first); never-observed vitals are NaN; a
    target is in the loss only where its vital is observed at the next step."""
    rng = np.random.default_rng(0)
    n, w, f = 400, 12, 3
    x = rng.normal(size=(n, w, f))
    out, weight = mask_windows(x, np.ones((n, f)), 1.0, rng)
    assert out.shape == (n, w, 2 * f)
    values, flags = out[:, :, :f], out[:, :, f:]
    never = np.isnan(values).all(axis=1)
    assert never.any()  # some vitals are never sent
    assert not flags[np.broadcast_to(never[:, None, :], flags.shape)].any()
    assert (weight[never] == 0).all()
    observed = flags == 1
    np.testing.assert_array_equal(values[observed], x[observed])
    for row in range(50):
        for i in range(f):
            if never[row, i]:
                continue
            last = x[row, 0, i]
            for step in range(w):
                if observed[row, step, i]:
                    last = x[row, step, i]
                assert values[row, step, i] == last
    assert 0 < weight.mean() < 1
    assert set(np.unique(flags)) <= {0.0, 1.0}


def test_unmasked_share_is_left_fully_observed() -> None:
    """A fraction of 0 only appends flags of 1."""
    x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    out, weight = mask_windows(x, np.ones((2, 3)), 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(out, with_flags(x))
    assert (weight == 1).all()


def test_masked_preprocess_appends_pooled_flags_and_zeroes_missing_values() -> None:
    """The model input is the values' input (NaN -> 0) followed by the pooled flags, and
    the offset of a vital with no value in the window is NaN (no prediction)."""
    prep = Preprocess(np.zeros(2), np.ones(2), "window_mean", recent=2, block=2, masked=True)
    plain = Preprocess(np.zeros(2), np.ones(2), "window_mean", recent=2, block=2)
    w = np.zeros((1, 6, 4), dtype=np.float32)
    w[0, :, 0] = [1, 2, 3, 4, 5, 6]
    w[0, :, 1] = np.nan
    w[0, :, 2] = 1.0
    w[0, :, 3] = [0, 0, 0, 1, 0, 0]
    x, offset = prep.inputs(w)
    ref, ref_offset = plain.inputs(w[:, :, :2])
    assert x.shape == (1, 4, 4)
    np.testing.assert_allclose(x[0, :, 0], ref[0, :, 0], rtol=1e-6)
    assert (x[0, :, 1] == 0).all()
    np.testing.assert_allclose(x[0, :, 2], 1.0)
    np.testing.assert_allclose(x[0, :, 3], [0.0, 0.5, 0.0, 0.0])
    assert offset[0, 0] == ref_offset[0, 0]
    assert np.isnan(offset[0, 1])


def test_held_values_are_flagged_unobserved_and_their_targets_carry_no_loss() -> None:
    """A vital sampled every other step and held between (a record's pressure at half its
    ECG's rate): in every window, masked by a pattern or not, a held value is flagged 0
    and a held target has weight 0; a pattern only removes more."""
    rng = np.random.default_rng(1)
    n, w, f = 300, 8, 2
    x = rng.normal(size=(n, w, f))
    observed = np.ones((n, w + 1, f), dtype=np.bool_)
    observed[: n // 2, 1::2, 1] = False  # held at odd steps and targets
    observed[n // 2 :, 0::2, 1] = False  # held at even steps and targets
    out, weight = mask_windows(x, np.ones((n, f)), 0.0, rng, observed)
    np.testing.assert_array_equal(out[:, :, :f], x)  # no pattern: the values as they are
    np.testing.assert_array_equal(out[:, :, f:], observed[:, :w])
    np.testing.assert_array_equal(weight, observed[:, w] * 1.0)
    out, weight = mask_windows(x, np.ones((n, f)), 1.0, rng, observed)
    flags = out[:, :, f:]
    assert not flags[~observed[:, :w]].any()
    assert (weight[~observed[:, w]] == 0).all()
    assert flags[observed[:, :w]].any()
    assert weight[observed[:, w]].any()
