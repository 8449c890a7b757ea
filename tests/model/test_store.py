"""save_model / load_model: round trip, and every kind of bad model directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from monitor.errors import ModelLoadError
from monitor.model.store import default_model_path, load_model, save_model, weights_hash
from tests.model.factory import make_card, tiny_model, write_model_dir


def _rewrite_weights(path: Path, tensors: dict[str, torch.Tensor], rehash: bool) -> None:
    save_file(tensors, str(path / "model.safetensors"))
    if rehash:
        card = json.loads((path / "card.json").read_text())
        card["model_version"] = weights_hash(tensors)
        (path / "card.json").write_text(json.dumps(card))


def _load_error(path: Path) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert info.value.path == path
    return info.value.reason


def test_round_trip_gives_the_same_predictions(tmp_path: Path) -> None:
    """A saved model loads in eval mode with the same weights, card and version."""
    model = tiny_model(seed=3)
    card = save_model(tmp_path, model, make_card())
    loaded = load_model(tmp_path)
    assert loaded.card == card
    assert card.model_version == weights_hash(model.state_dict())
    assert not loaded.model.training
    x = torch.randn(3, 5, 2)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model.eval()(x))


def test_version_is_the_hash_of_the_weights(tmp_path: Path) -> None:
    """Different weights give a different model_version; equal weights the same."""
    a = write_model_dir(tmp_path / "a", seed=0)
    b = write_model_dir(tmp_path / "b", seed=1)
    c = write_model_dir(tmp_path / "c", seed=0)
    assert a.model_version != b.model_version
    assert a.model_version == c.model_version


def test_missing_file(tmp_path: Path) -> None:
    """A directory without model.safetensors names the missing file."""
    write_model_dir(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    assert _load_error(tmp_path) == "missing file model.safetensors"


def test_missing_key(tmp_path: Path) -> None:
    """A weights file without one LSTM tensor names the key."""
    write_model_dir(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["lstm.weight_hh_l1"]
    _rewrite_weights(tmp_path, tensors, rehash=True)
    assert _load_error(tmp_path) == "missing key lstm.weight_hh_l1"


def test_extra_key(tmp_path: Path) -> None:
    """An unexpected tensor is refused by name."""
    write_model_dir(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["fc2.weight"] = torch.zeros(2, 2)
    _rewrite_weights(tmp_path, tensors, rehash=True)
    assert _load_error(tmp_path) == "unexpected key fc2.weight"


def test_wrong_shape(tmp_path: Path) -> None:
    """Weights of a hidden size other than the card's name tensor and both shapes."""
    save_model(tmp_path, tiny_model(hidden=8), make_card(hidden=8))
    other = tiny_model(hidden=4).state_dict()
    _rewrite_weights(tmp_path, dict(other), rehash=True)
    assert _load_error(tmp_path) == "shape of fc.weight is (2, 4), card says (2, 8)"


def test_unknown_feature(tmp_path: Path) -> None:
    """A card listing a feature that is not a vital is refused, naming it."""
    write_model_dir(tmp_path)
    card = json.loads((tmp_path / "card.json").read_text())
    card["features"] = ["heart_rate", "glucose"]
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert "glucose" in _load_error(tmp_path)


def test_truncated_weights(tmp_path: Path) -> None:
    """A cut safetensors file is reported as unreadable."""
    write_model_dir(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert _load_error(tmp_path).startswith("model.safetensors is unreadable")


def test_tampered_weights(tmp_path: Path) -> None:
    """A changed weight with the old card gives a model_version mismatch."""
    card = write_model_dir(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["fc.bias"] = tensors["fc.bias"] + 0.5
    _rewrite_weights(tmp_path, tensors, rehash=False)
    reason = _load_error(tmp_path)
    assert reason == (
        f"model_version mismatch: card {card.model_version[:12]}.., "
        f"weights {weights_hash(tensors)[:12]}.."
    )


def test_non_finite_weights(tmp_path: Path) -> None:
    """A NaN weight is refused even when the card's hash matches it."""
    write_model_dir(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["lstm.bias_ih_l0"][3] = float("nan")
    _rewrite_weights(tmp_path, tensors, rehash=True)
    assert _load_error(tmp_path) == "non-finite values in lstm.bias_ih_l0"


def test_unsupported_format_version(tmp_path: Path) -> None:
    """A card from a future format is refused with its version."""
    write_model_dir(tmp_path)
    card = json.loads((tmp_path / "card.json").read_text())
    card["format_version"] = 2
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert _load_error(tmp_path) == "card.json format_version 2 is not supported (expected 1)"


def test_shipped_default_model_loads() -> None:
    """The packaged default model passes every load check and predicts six vitals."""
    loaded = load_model(default_model_path())
    assert loaded.card.hyperparameters.output_size == 6
    assert loaded.card.features[0] == "heart_rate"
