"""Generated data sources: the seed's sine, and simulated patients split by patient."""

from __future__ import annotations

import numpy as np

from monitor.training.simulated import seed_sine, simulated_patients


def test_seed_sine_is_the_tutorial_signal() -> None:
    """1000 points of sin(t) + 0.2 N(0,1) at 0.1 s, split 800 / 200 in time order."""
    data = seed_sine(seed=4)
    assert data.features == ("seed_signal",)
    assert data.sample_period_s == 0.1
    train, test = data.train[0], data.test[0]
    assert train.values.shape == (800, 1)
    assert test.values.shape == (200, 1)
    assert train.clean is not None
    np.testing.assert_allclose(train.clean[:, 0], np.sin(np.arange(0, 80, 0.1)[:800]))
    noise = np.concatenate([train.values - train.clean, test.values - test.clean])
    assert abs(float(noise.std()) - 0.2) < 0.02
    assert data.val == []


def test_patients_are_split_without_overlap() -> None:
    """Train, validation and test segments come from distinct patients with clean signals."""
    data = simulated_patients(n_train=2, n_val=1, n_test=2, seconds=50, seed=3)
    assert len(data.train) == 2
    assert len(data.val) == 1
    assert len(data.test) == 2
    firsts = [s.values[0, 0] for s in (*data.train, *data.val, *data.test)]
    assert len(set(firsts)) == 5
    assert all(s.clean is not None and s.values.shape == (50, 6) for s in data.test)


def test_adding_patients_keeps_the_first_ones() -> None:
    """A patient's data depends on its index and the seed only."""
    small = simulated_patients(2, 0, 0, 30, seed=1)
    big = simulated_patients(3, 0, 0, 30, seed=1)
    np.testing.assert_array_equal(small.train[1].values, big.train[1].values)
