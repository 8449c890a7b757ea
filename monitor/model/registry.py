"""The model registry: a card's `architecture` name -> how to build and export that model.

Loading (`monitor.model.store`), the predictor's ONNX Runtime backend and training all go
through `architecture(name)`; nothing else names a model class. A new architecture is one
module in `monitor/model/architectures/` that defines ``ARCHITECTURE``, found by its name
(`register` adds one at run time, as the tests do). `MedicalLSTM` ("medical-lstm") is the
default, and the architecture of every card written before cards named one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from monitor.model.card import DEFAULT_ARCHITECTURE, Hyperparameters

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "Architecture",
    "UnknownArchitecture",
    "architecture",
    "known",
    "register",
    "unregister",
]

_PACKAGE = "monitor.model.architectures"


@dataclass(frozen=True, slots=True)
class Architecture:
    """One model architecture: how to build it from the card and export it to ONNX.

    Attributes:
        name: The card's ``architecture`` value.
        build: A fresh model (random weights) for the card's hyper-parameters; loading
            checks the stored tensors against its ``state_dict`` and then loads them.
        onnx_graph: The ONNX graph of a built model's forward pass: input ``x`` (batch,
            steps, input_size), output ``y`` (batch, output_size), float32. None: the
            architecture runs on torch only (the ``auto`` backend then picks torch).
    """

    name: str
    build: Callable[[Hyperparameters], nn.Module]
    onnx_graph: Callable[[nn.Module], onnx.ModelProto] | None = None


class UnknownArchitecture(ValueError):
    """A card names an architecture no module defines."""


_registered: dict[str, Architecture] = {}


def register(arch: Architecture) -> None:
    """Make `arch` known by its name (replacing one of the same name)."""
    _registered[arch.name] = arch


def unregister(name: str) -> None:
    """Forget an architecture `register` added (a test cleaning up)."""
    _registered.pop(name, None)


def _discover() -> None:
    """Import every module of the architectures package and register its ARCHITECTURE."""
    package = importlib.import_module(_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{_PACKAGE}.{info.name}")
        arch = getattr(module, "ARCHITECTURE", None)
        if isinstance(arch, Architecture):
            _registered.setdefault(arch.name, arch)


def known() -> list[str]:
    """The architecture names this installation knows, sorted."""
    _discover()
    return sorted(_registered)


def architecture(name: str) -> Architecture:
    """Return the architecture called `name`.

    Raises:
        UnknownArchitecture: No module defines it (one line naming the known ones).
    """
    if name not in _registered:
        _discover()
    try:
        return _registered[name]
    except KeyError:
        raise UnknownArchitecture(
            f"unknown model architecture {name!r}; known: {', '.join(known())}"
        ) from None
