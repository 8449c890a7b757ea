"""Predictor: raw units in and out, batched equals one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from monitor.model.features import normalise
from monitor.model.predictor import Predictor
from monitor.model.store import load_model
from tests.model.factory import write_model_dir


@pytest.fixture
def predictor(tmp_path: Path) -> Predictor:
    write_model_dir(tmp_path)
    return Predictor(load_model(tmp_path), device="cpu")


def _windows(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (np.array([80.0, 97.0]) + rng.normal(0, [5.0, 1.0], (n, 5, 2))).astype(np.float32)


def test_properties(predictor: Predictor) -> None:
    """device, window and features come from the card."""
    assert predictor.device == "cpu"
    assert predictor.window == 5
    assert predictor.features == ["heart_rate", "spo2"]


def test_batched_equals_one_by_one(predictor: Predictor) -> None:
    """One batched call gives the same predictions as one call per window."""
    windows = _windows(7)
    batched = predictor.predict(windows)
    single = np.concatenate([predictor.predict(windows[i : i + 1]) for i in range(7)])
    assert batched.shape == (7, 2)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-4)


def test_prediction_is_denormalised_model_output(predictor: Predictor) -> None:
    """predict == model(normalised window) * std + mean."""
    windows = _windows(3)
    mean, std = np.array([80.0, 97.0]), np.array([10.0, 1.5])
    with torch.no_grad():
        z = predictor.model(torch.from_numpy(normalise(windows, mean, std))).numpy()
    np.testing.assert_allclose(predictor.predict(windows), z * std + mean, rtol=1e-6)


def test_wrong_window_shape_is_refused(predictor: Predictor) -> None:
    """A window of the wrong length is a ValueError naming the expected shape."""
    with pytest.raises(ValueError, match=r"\(B, 5, 2\)"):
        predictor.predict(np.zeros((1, 4, 2), dtype=np.float32))


def test_empty_batch(predictor: Predictor) -> None:
    """No windows give an empty (0, F) result."""
    assert predictor.predict(np.zeros((0, 5, 2), dtype=np.float32)).shape == (0, 2)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_a_non_finite_output_is_a_failed_forward(tmp_path: Path, backend: str) -> None:
    """A network that gives NaN (a weight corrupted after the load-time check, a hardware
    fault) raises instead of returning NaN predictions, which downstream read as "no value
    to judge" and would leave every patient of the batch unscored in silence."""
    write_model_dir(tmp_path)
    loaded = load_model(tmp_path)
    healthy = Predictor(loaded, device="cpu", backend=backend)
    assert np.isfinite(healthy.predict(_windows(3))).all()
    with torch.no_grad():  # the head's bias: no activation after it can hide the NaN
        dict(loaded.model.named_parameters())["fc.bias"].fill_(float("nan"))
    broken = Predictor(loaded, device="cpu", backend=backend)
    with pytest.raises(FloatingPointError, match=r"6 non-finite outputs for 3 windows"):
        broken.predict(_windows(3))
