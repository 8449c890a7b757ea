"""The model registry: the card names its architecture, and loading, the ONNX export and
the predictor dispatch on it. A toy second architecture (one linear layer on the last
sample) is registered here and goes through the same calls as MedicalLSTM."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from monitor.errors import ModelLoadError
from monitor.model.card import Hyperparameters
from monitor.model.onnx_export import INPUT, OUTPUT, graph
from monitor.model.predictor import Predictor
from monitor.model.registry import Architecture, architecture, known, register, unregister
from monitor.model.store import default_model_path, load_model, save_model
from tests.model.factory import FEATURES, make_card, tiny_model

TOY = "toy-linear"


class LastSampleLinear(nn.Module):
    """Predicts the next sample as a linear map of the window's last sample."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, steps, inputs) -> (batch, outputs)."""
        out: torch.Tensor = self.fc(x[:, -1, :])
        return out


def build_toy(hp: Hyperparameters) -> nn.Module:
    """The toy for the card's sizes (hidden_size and num_layers unused)."""
    return LastSampleLinear(hp.input_size, hp.output_size)


def toy_graph(model: nn.Module) -> onnx.ModelProto:
    """The toy's forward pass as ONNX: the last step (Gather), then Gemm."""
    assert isinstance(model, LastSampleLinear)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    initializers = [
        numpy_helper.from_array(np.array(-1, dtype=np.int64), "last"),
        numpy_helper.from_array(state["fc.weight"], "w"),
        numpy_helper.from_array(state["fc.bias"], "b"),
    ]
    nodes = [
        helper.make_node("Gather", [INPUT, "last"], ["h"], axis=1),
        helper.make_node("Gemm", ["h", "w", "b"], [OUTPUT], transB=1),
    ]
    return graph("toy_linear", nodes, initializers, model.fc.in_features, model.fc.out_features)


@pytest.fixture
def toy() -> Iterator[Architecture]:
    """The toy architecture, registered for the test only."""
    arch = Architecture(name=TOY, build=build_toy, onnx_graph=toy_graph)
    register(arch)
    yield arch
    unregister(TOY)


def test_medical_lstm_is_found_without_being_listed() -> None:
    """The default architecture comes from its module in monitor/model/architectures."""
    assert "medical-lstm" in known()
    arch = architecture("medical-lstm")
    model = arch.build(Hyperparameters(input_size=2, hidden_size=4, num_layers=1, output_size=2))
    assert type(model).__name__ == "MedicalLSTM"


def test_unknown_architecture_is_one_clear_line(tmp_path: Path) -> None:
    """A card naming an architecture nobody defines is refused in one line naming it and
    the known ones (ModelLoadError, as `monitor run` reports with exit 2)."""
    save_model(tmp_path, tiny_model(), make_card())
    card = json.loads((tmp_path / "card.json").read_text())
    card["architecture"] = "transformer-xl"
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError) as info:
        load_model(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.reason == (
        "card.json: unknown model architecture 'transformer-xl'; known: medical-lstm"
    )


def test_a_second_architecture_saves_loads_exports_and_predicts(
    tmp_path: Path, toy: Architecture
) -> None:
    """The toy, registered in a test, goes through save_model, load_model and both
    predictor backends: its own ONNX graph runs on ONNX Runtime and agrees with torch."""
    torch.manual_seed(0)
    hp = Hyperparameters(input_size=2, hidden_size=1, num_layers=1, output_size=2)
    model = toy.build(hp)
    card = make_card().model_copy(update={"architecture": TOY, "hyperparameters": hp})
    save_model(tmp_path, model, card)
    loaded = load_model(tmp_path)
    assert isinstance(loaded.model, LastSampleLinear)
    assert loaded.card.architecture == TOY
    windows = np.random.default_rng(1).normal([80.0, 97.0], [10.0, 1.5], size=(300, 5, 2))
    by_torch = Predictor(loaded, "cpu", "torch").predict(windows)
    by_onnx = Predictor(loaded, "cpu", "onnxruntime").predict(windows)
    assert Predictor(loaded, "cpu", "auto").backend == "onnxruntime"
    np.testing.assert_allclose(by_onnx, by_torch, rtol=1e-5, atol=1e-4)
    # What the toy computes, by hand: the last sample, normalised, through the layer.
    mean, std = np.array([80.0, 97.0]), np.array([10.0, 1.5])
    w, b = model.fc.weight.detach().numpy(), model.fc.bias.detach().numpy()
    expected = (((windows[:, -1] - mean) / std) @ w.T + b) * std + mean
    np.testing.assert_allclose(by_torch, expected, rtol=1e-5, atol=1e-4)
    assert by_torch.shape == (300, len(FEATURES))


def test_an_architecture_without_onnx_runs_on_torch(tmp_path: Path, toy: Architecture) -> None:
    """With no ONNX graph, ``auto`` picks torch and a forced ``onnxruntime`` is refused."""
    register(Architecture(name=TOY, build=build_toy))
    hp = Hyperparameters(input_size=2, hidden_size=1, num_layers=1, output_size=2)
    card = make_card().model_copy(update={"architecture": TOY, "hyperparameters": hp})
    save_model(tmp_path, build_toy(hp), card)
    loaded = load_model(tmp_path)
    assert Predictor(loaded, "cpu", "auto").backend == "torch"
    with pytest.raises(ValueError, match="needs an architecture with an ONNX graph"):
        Predictor(loaded, "cpu", "onnxruntime")


def test_weights_of_another_architecture_are_refused(tmp_path: Path, toy: Architecture) -> None:
    """MedicalLSTM weights under a card that says toy-linear: the key check refuses them."""
    save_model(tmp_path, tiny_model(), make_card())
    card = json.loads((tmp_path / "card.json").read_text())
    card["architecture"] = TOY
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="unexpected key lstm"):
        load_model(tmp_path)


def test_the_shipped_card_names_no_architecture_and_still_loads() -> None:
    """The shipped card predates the field: it loads as a MedicalLSTM, files untouched."""
    path = default_model_path()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.iterdir()}
    assert "architecture" not in json.loads((path / "card.json").read_text())
    loaded = load_model(path)
    assert loaded.card.architecture == "medical-lstm"
    assert type(loaded.model).__name__ == "MedicalLSTM"
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.iterdir()}
    assert after == before


def test_a_new_card_writes_its_architecture(tmp_path: Path) -> None:
    """A card saved now names its architecture, so a reader need not assume it."""
    save_model(tmp_path, tiny_model(), make_card())
    assert json.loads((tmp_path / "card.json").read_text())["architecture"] == "medical-lstm"
