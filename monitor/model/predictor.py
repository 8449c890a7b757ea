"""The predictor: raw-unit windows in, raw-unit one-step-ahead predictions out.

One batched forward pass per call, under ``torch.inference_mode``. Normalisation uses
`monitor.model.features`, the same functions the trainer uses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from monitor.model.card import ModelCard
from monitor.model.features import Preprocess
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


def preprocess_of(card: ModelCard) -> Preprocess:
    """Return the card's window preprocessing (centring, pooling, normalisation)."""
    norm = card.normalisation
    return Preprocess(
        mean=np.asarray(norm.mean, dtype=np.float64),
        std=np.asarray(norm.std, dtype=np.float64),
        centring=norm.centring,
        recent=None if card.pooling is None else card.pooling.recent,
        block=1 if card.pooling is None else card.pooling.block,
    )


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
        self.preprocess = preprocess_of(loaded.card)

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
        x, offset = self.preprocess.inputs(windows)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device)).to("cpu").numpy()
        return np.asarray(self.preprocess.outputs(out, offset), dtype=np.float32)
