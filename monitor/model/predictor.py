"""The predictor: raw-unit windows in, raw-unit one-step-ahead predictions out.

One batched forward pass per call, under ``torch.inference_mode``. Normalisation uses
`monitor.model.features`, the same functions the trainer uses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from monitor.model.features import denormalise, normalise
from monitor.model.store import LoadedModel


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is available, else ``"cpu"``.

    Raises:
        ValueError: ``"cuda"`` was asked for and there is no GPU.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


class Predictor:
    """Batched one-step-ahead prediction with a loaded model.

    Safe to call from one worker thread at a time; it holds no per-call state.

    Args:
        loaded: The model and card; the model is moved to the resolved device.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    def __init__(self, loaded: LoadedModel, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.card = loaded.card
        self.model = loaded.model.to(self.device).eval()
        self._mean = np.asarray(loaded.card.normalisation.mean, dtype=np.float32)
        self._std = np.asarray(loaded.card.normalisation.std, dtype=np.float32)

    @property
    def window(self) -> int:
        """Number of past samples per input window."""
        return self.card.window

    @property
    def features(self) -> list[str]:
        """Feature names in column order."""
        return list(self.card.features)

    def predict(self, windows: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Predict the next sample of each window.

        Args:
            windows: Raw-unit windows, shape ``(B, window, F)``, oldest sample first.

        Returns:
            Raw-unit predictions, shape ``(B, F)``, float32.

        Raises:
            ValueError: The array's shape does not match the model's window and features.
        """
        expected = (self.window, len(self.card.features))
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ValueError(
                f"windows must be (B, {expected[0]}, {expected[1]}), got {windows.shape}"
            )
        if windows.shape[0] == 0:
            return np.empty((0, expected[1]), dtype=np.float32)
        x = torch.from_numpy(normalise(windows, self._mean, self._std)).to(self.device)
        with torch.inference_mode():
            out = self.model(x).to("cpu").numpy()
        return np.asarray(denormalise(out, self._mean, self._std), dtype=np.float32)
