"""Save and load model directories: ``model.safetensors`` (weights) + ``card.json``.

Weights are stored with safetensors only: loading a model file cannot run code (no
pickle, no ``torch.load``). Loading checks the card against the weights and refuses any
mismatch with a `ModelLoadError` naming it.

``model_version`` is the SHA-256 of the weights as tensors, not of the file bytes: for
each tensor in sorted key order, the key, dtype, shape and the raw little-endian bytes
are hashed (see `weights_hash`). So re-saving the same weights (even with a different
safetensors header) keeps the version, and any changed weight changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from monitor.errors import ModelLoadError
from monitor.model.card import FORMAT_VERSION, ModelCard
from monitor.model.registry import UnknownArchitecture, architecture

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "default_model_path",
    "load_model",
    "save_model",
    "weights_hash",
]

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to predict: weights in eval mode and the card that describes them."""

    model: nn.Module
    card: ModelCard
    path: Path


def default_model_path() -> Path:
    """Return the directory of the default model shipped inside the package."""
    return Path(str(resources.files("monitor") / "assets" / "models" / "default"))


def weights_hash(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the tensors' names, dtypes, shapes and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_model(path: Path, model: nn.Module, card: ModelCard) -> ModelCard:
    """Write the model directory; `card.model_version` is replaced by the weights' hash.

    Args:
        path: Directory to create (or overwrite files in).
        model: The trained model, of the card's ``architecture``.
        card: Its card; any ``model_version`` in it is replaced.

    Returns:
        The card as written, with the real ``model_version``.
    """
    tensors = _state(model)
    final = card.model_copy(update={"model_version": weights_hash(tensors)})
    path.mkdir(parents=True, exist_ok=True)
    # Write to temporary names, then rename: a reader never sees half a model directory.
    for name, data in (
        (WEIGHTS_FILE, save_safetensors(tensors, metadata={"format": "pt"})),
        (CARD_FILE, final.to_json().encode()),
    ):
        tmp = path / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path / name)
    return final


def _read_card(path: Path) -> ModelCard:
    card_path = path / CARD_FILE
    try:
        raw = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(path, f"{CARD_FILE} is not readable JSON: {exc}") from exc
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            path, f"{CARD_FILE} format_version {version!r} is not supported (expected 1)"
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'card'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelLoadError(path, f"{CARD_FILE} is invalid: {problems}") from exc


def _build(path: Path, card: ModelCard) -> nn.Module:
    """A fresh model of the card's architecture and sizes."""
    try:
        return architecture(card.architecture).build(card.hyperparameters)
    except UnknownArchitecture as exc:
        raise ModelLoadError(path, f"{CARD_FILE}: {exc}") from None


def _check_tensors(
    path: Path, card: ModelCard, model: nn.Module, tensors: dict[str, torch.Tensor]
) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key in sorted(expected):
        if key not in tensors:
            raise ModelLoadError(path, f"missing key {key}")
    for key in sorted(tensors):
        if key not in expected:
            raise ModelLoadError(path, f"unexpected key {key}")
    for key in sorted(expected):
        t = tensors[key]
        if t.dtype != torch.float32:
            raise ModelLoadError(path, f"dtype of {key} is {t.dtype}, expected torch.float32")
        if tuple(t.shape) != expected[key]:
            raise ModelLoadError(
                path, f"shape of {key} is {tuple(t.shape)}, card says {expected[key]}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ModelLoadError(path, f"non-finite values in {key}")
    actual = weights_hash(tensors)
    if actual != card.model_version:
        raise ModelLoadError(
            path,
            f"model_version mismatch: card {card.model_version[:12]}.., weights {actual[:12]}..",
        )


def load_model(path: Path, device: str = "cpu") -> LoadedModel:
    """Load and verify a model directory.

    Args:
        path: Directory holding ``model.safetensors`` and ``card.json``.
        device: Torch device to put the weights on.

    Returns:
        The model of the card's architecture (eval mode, on `device`) and its card.

    Raises:
        ModelLoadError: A file is missing or unreadable, the card is invalid or names an
            unknown architecture, or the weights do not match the card (keys, dtypes,
            shapes, finiteness, version).
    """
    path = Path(path)
    for name in (CARD_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise ModelLoadError(path, f"missing file {name}")
    card = _read_card(path)
    try:
        tensors = load_safetensors((path / WEIGHTS_FILE).read_bytes())
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(
            path, f"{WEIGHTS_FILE} is unreadable (truncated or corrupt?): {exc}"
        ) from exc
    model = _build(path, card)
    _check_tensors(path, card, model, tensors)
    model.load_state_dict(tensors, strict=True)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, card=card, path=path)
