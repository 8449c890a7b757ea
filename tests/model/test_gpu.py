"""CUDA inference (skipped where torch sees no GPU, as in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def test_cuda_predictions_match_cpu() -> None:
    """The shipped model gives the same predictions with torch on CUDA as with the CPU's
    default backend, ONNX Runtime (within 1e-4)."""
    cpu = Predictor(load_model(default_model_path()), "cpu")
    gpu = Predictor(load_model(default_model_path()), "cuda")
    assert gpu.device.startswith("cuda")
    assert (cpu.backend, gpu.backend) == ("onnxruntime", "torch")
    mean = np.asarray(cpu.card.normalisation.mean, dtype=np.float32)
    windows = mean + np.random.default_rng(0).standard_normal((512, cpu.window, len(mean)))
    windows = windows.astype(np.float32)
    np.testing.assert_allclose(gpu.predict(windows), cpu.predict(windows), rtol=0, atol=1e-4)
