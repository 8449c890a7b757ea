"""Anomaly augmentation: disturbed copies, with the disturbed vital left out of the loss."""

from __future__ import annotations

import numpy as np

from monitor.training.augment import augment, noise_sigma
from monitor.training.data import Segment


def _data(n: int = 50, w: int = 12, f: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, w, f)), rng.normal(size=(n, f))


def test_copies_disturb_one_vital_and_drop_it_from_the_loss() -> None:
    """Each copy differs from its source window in exactly the vital whose weight is 0; the
    other vitals' inputs and every target are the source's."""
    x, y = _data()
    sigma = np.array([1.0, 2.0, 0.5])
    xa, ya, weight = augment(x, y, sigma, 0.5, np.random.default_rng(3))
    assert xa.shape == (75, 12, 3)
    assert ya.shape == (75, 3)
    np.testing.assert_array_equal(xa[:50], x)
    assert (weight[:50] == 1).all()
    assert (weight[50:] == 0).sum(axis=1).tolist() == [1] * 25
    for i in range(50, 75):
        # Find the source window: the one whose undisturbed vitals and target match.
        feat = int(np.flatnonzero(weight[i] == 0)[0])
        keep = [j for j in range(3) if j != feat]
        src = [k for k in range(50) if np.array_equal(x[k][:, keep], xa[i][:, keep])]
        assert len(src) == 1
        np.testing.assert_array_equal(ya[i], y[src[0]])
        changed = np.abs(xa[i][:, feat] - x[src[0]][:, feat])
        assert changed.max() > 0  # a stuck stretch or a 3-12 sigma disturbance


def test_augment_is_seeded_and_zero_fraction_is_a_no_op() -> None:
    """The same generator seed gives the same copies; fraction 0 returns the inputs."""
    x, y = _data()
    a = augment(x, y, np.ones(3), 0.4, np.random.default_rng(7))
    b = augment(x, y, np.ones(3), 0.4, np.random.default_rng(7))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    x0, y0, w0 = augment(x, y, np.ones(3), 0.0, np.random.default_rng(7))
    assert x0 is x
    assert y0 is y
    assert w0.shape == (50, 3)


def test_noise_sigma_recovers_white_noise_level() -> None:
    """The robust first-difference estimate finds the noise sigma under a slow trend."""
    rng = np.random.default_rng(0)
    t = np.arange(5000.0)
    values = np.c_[0.01 * t + rng.normal(0, 2.0, 5000), np.sin(t / 300) + rng.normal(0, 0.3, 5000)]
    est = noise_sigma([Segment(values=values)])
    np.testing.assert_allclose(est, [2.0, 0.3], rtol=0.05)
