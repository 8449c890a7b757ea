"""MedicalLSTM ("medical-lstm"), the default architecture: build and ONNX export.

The model is the seed's (`monitor.model.lstm`). Its ONNX graph computes what
`MedicalLSTM.forward` does on normalised, pooled windows: batch-first to sequence-first, one
ONNX ``LSTM`` per torch layer started from zero states, the last layer's final hidden state,
then the linear layer. Why ONNX: with one thread, ONNX Runtime's LSTM kernel costs about half
of torch's per window at the daemon's batch sizes (docs/model-card.md, "Inference backends").
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from torch import nn

from monitor.model.card import Hyperparameters
from monitor.model.lstm import MedicalLSTM
from monitor.model.onnx_export import INPUT, OUTPUT, graph
from monitor.model.registry import Architecture

__all__ = ["ARCHITECTURE", "build", "lstm_graph"]


def build(hp: Hyperparameters) -> MedicalLSTM:
    """A MedicalLSTM with the card's sizes (random weights)."""
    return MedicalLSTM(hp.input_size, hp.hidden_size, hp.num_layers, hp.output_size)


def _onnx_gates(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # torch stacks the gate blocks as (input, forget, cell, output); ONNX as (input,
    # output, forget, cell).
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def lstm_graph(model: nn.Module) -> onnx.ModelProto:
    """Return the ONNX model of `model`'s forward pass (float32, any batch size).

    Input ``x``: ``(batch, steps, input_size)``, as `MedicalLSTM.forward` takes it; output
    ``y``: ``(batch, output_size)``.

    Raises:
        TypeError: `model` is not a `MedicalLSTM`.
        ValueError: The LSTM is not the unidirectional, batch-first one with biases and no
            projection that `MedicalLSTM` builds.
    """
    if not isinstance(model, MedicalLSTM):
        raise TypeError(f"expected a MedicalLSTM, got {type(model).__name__}")
    lstm = model.lstm
    if not lstm.batch_first or lstm.bidirectional or lstm.proj_size or not lstm.bias:
        raise ValueError(
            "only a batch-first, unidirectional LSTM with biases and no projection converts "
            f"to ONNX, got {lstm}"
        )
    hidden = lstm.hidden_size
    state = {k: v.detach().to("cpu").numpy() for k, v in model.state_dict().items()}
    initializers = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(state["fc.weight"], "fc_weight"),
        numpy_helper.from_array(state["fc.bias"], "fc_bias"),
    ]
    if lstm.num_layers > 1:
        # Only used between layers: ONNX Runtime warns about an unused initializer.
        initializers.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    nodes = [helper.make_node("Transpose", [INPUT], ["seq0"], perm=[1, 0, 2])]
    last = lstm.num_layers - 1
    for layer in range(lstm.num_layers):
        weights = {
            "W": _onnx_gates(state[f"lstm.weight_ih_l{layer}"])[None],
            "R": _onnx_gates(state[f"lstm.weight_hh_l{layer}"])[None],
            "B": np.concatenate(
                [
                    _onnx_gates(state[f"lstm.bias_ih_l{layer}"]),
                    _onnx_gates(state[f"lstm.bias_hh_l{layer}"]),
                ]
            )[None],
        }
        names = [f"{key}{layer}" for key in weights]
        initializers += [
            numpy_helper.from_array(a, n) for a, n in zip(weights.values(), names, strict=True)
        ]
        # Y is (steps, 1 direction, batch, hidden): the next layer's input without the
        # direction axis. The last layer gives only Y_h, (1, batch, hidden).
        outputs = ["", f"h{layer}"] if layer == last else [f"y{layer}"]
        nodes.append(helper.make_node("LSTM", [f"seq{layer}", *names], outputs, hidden_size=hidden))
        if layer != last:
            nodes.append(helper.make_node("Squeeze", [f"y{layer}", "axis1"], [f"seq{layer + 1}"]))
    nodes += [
        helper.make_node("Squeeze", [f"h{last}", "axis0"], ["h"]),
        helper.make_node("Gemm", ["h", "fc_weight", "fc_bias"], [OUTPUT], transB=1),
    ]
    return graph("medical_lstm", nodes, initializers, lstm.input_size, model.fc.out_features)


ARCHITECTURE = Architecture(name="medical-lstm", build=build, onnx_graph=lstm_graph)
