"""The predictor: raw-unit windows in, raw-unit one-step-ahead predictions out.

One batched forward pass per call: with ONNX Runtime on the CPU (`monitor.model.onnx_backend`,
running the graph the card's architecture exports: `monitor.model.registry`) or with torch
under ``torch.inference_mode`` (GPUs, an architecture without an ONNX export, or when
asked). Normalisation uses `monitor.model.features`, the same functions the trainer uses.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from monitor.errors import DeviceError
from monitor.model.card import ModelCard
from monitor.model.features import Preprocess
from monitor.model.registry import architecture
from monitor.model.store import LoadedModel

__all__ = [
    "BACKENDS",
    "Backend",
    "Predictor",
    "preprocess_of",
    "resolve_backend",
    "resolve_device",
]

#: What runs the forward pass: ``auto`` (ONNX Runtime on the CPU when it is installed,
#: torch otherwise), or one of them forced.
Backend = Literal["auto", "torch", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("auto", "torch", "onnxruntime")
_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is available, else ``"cpu"``.

    Raises:
        DeviceError: Not one of auto, cpu, cuda, cuda:N; or CUDA was asked for and there is
            no GPU.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if _DEVICE.fullmatch(device) is None:
        raise DeviceError(device, "unknown device; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            device, "CUDA is not available on this machine; use cpu (or auto: CUDA when present)"
        )
    return device


def resolve_backend(
    backend: str, device: str, exportable: bool = True
) -> Literal["torch", "onnxruntime"]:
    """Map ``"auto"`` to ``"onnxruntime"`` on a CPU device when it imports and the model's
    architecture exports to ONNX, else ``"torch"``.

    Args:
        backend: ``"auto"``, ``"torch"`` or ``"onnxruntime"``.
        device: A resolved device (`resolve_device`).
        exportable: Whether the model's architecture has an ONNX graph.

    Raises:
        ValueError: An unknown backend, or ``"onnxruntime"`` on a device other than the CPU,
            without the package, or for an architecture without an ONNX graph.
    """
    on_cpu = torch.device(device).type == "cpu"
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "onnxruntime" if on_cpu and exportable and _onnxruntime_installed() else "torch"
    if backend == "onnxruntime":
        if not exportable:
            raise ValueError(
                "backend 'onnxruntime' needs an architecture with an ONNX graph; "
                "use backend 'torch' (or 'auto')"
            )
        if not on_cpu:
            raise ValueError(
                f"backend 'onnxruntime' runs on the CPU only, not on device {device!r}; "
                "use backend 'torch' (or 'auto') for CUDA"
            )
        if not _onnxruntime_installed():
            raise ValueError("backend 'onnxruntime' requested but onnxruntime is not installed")
        return "onnxruntime"
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def _onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def preprocess_of(card: ModelCard) -> Preprocess:
    """Return the card's window preprocessing (centring, pooling, normalisation)."""
    norm = card.normalisation
    return Preprocess(
        mean=np.asarray(norm.mean, dtype=np.float64),
        std=np.asarray(norm.std, dtype=np.float64),
        centring=norm.centring,
        recent=None if card.pooling is None else card.pooling.recent,
        block=1 if card.pooling is None else card.pooling.block,
        masked=card.observed_mask,
    )


class Predictor:
    """Batched one-step-ahead prediction with a loaded model.

    Safe to call from one worker thread at a time; it holds no per-call state.

    Args:
        loaded: The model and card; the model is moved to the resolved device.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        backend: ``"auto"`` (ONNX Runtime on the CPU, torch on CUDA), ``"torch"`` or
            ``"onnxruntime"`` (`resolve_backend`). With ONNX Runtime, one session with one
            thread is built here from the graph the card's architecture exports of the
            model's weights; `model` stays the torch model.

    Attributes:
        device: The resolved device.
        backend: The resolved backend, ``"torch"`` or ``"onnxruntime"``.
    """

    def __init__(self, loaded: LoadedModel, device: str = "auto", backend: str = "auto") -> None:
        arch = architecture(loaded.card.architecture)
        self.device = resolve_device(device)
        self.backend = resolve_backend(backend, self.device, arch.onnx_graph is not None)
        self.card = loaded.card
        self.model = loaded.model.to(self.device).eval()
        self.preprocess = preprocess_of(loaded.card)
        self._forward: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
        if self.backend == "onnxruntime" and arch.onnx_graph is not None:
            # Imported here: the torch backend (GPUs) never loads onnxruntime.
            from monitor.model.onnx_backend import OnnxForward

            self._forward = OnnxForward.from_graph(arch.onnx_graph(self.model))
        else:
            self._forward = self._torch_forward

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
            windows: Raw-unit windows, shape ``(B, window, F)``, oldest sample first
                (``(B, window, 2F)`` with observed flags for a model with `observed_mask`).

        Returns:
            Raw-unit predictions, shape ``(B, F)``, float32 (NaN for a vital with no value
            in its window).

        Raises:
            ValueError: The array's shape does not match the model's window and features.
            FloatingPointError: The network gave a NaN or infinite output (finite weights and
                inputs never do: a hardware or library fault). Raised, not returned: a NaN
                prediction reads as "no value to judge" downstream, so every patient of the
                batch would go unscored in silence; a raised forward ends its jobs `failed`
                and raises the `inference_failed` technical alert (docs/alerts.md).
        """
        n = len(self.card.features)
        expected = (self.window, 2 * n if self.card.observed_mask else n)
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ValueError(
                f"windows must be (B, {expected[0]}, {expected[1]}), got {windows.shape}"
            )
        if windows.shape[0] == 0:
            return np.empty((0, n), dtype=np.float32)
        x, offset = self.preprocess.inputs(windows)
        out = self._forward(x)
        finite = np.isfinite(out)
        if not finite.all():
            bad = int(out.size - np.count_nonzero(finite))
            raise FloatingPointError(
                f"the model gave {bad} non-finite outputs for {windows.shape[0]} windows"
            )
        return np.asarray(self.preprocess.outputs(out, offset), dtype=np.float32)

    def _torch_forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            out: npt.NDArray[np.float32] = (
                self.model(torch.from_numpy(x).to(self.device)).to("cpu").numpy()
            )
        return out
