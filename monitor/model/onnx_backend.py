"""ONNX Runtime inference of a `MedicalLSTM` on the CPU.

The ONNX graph is written with `onnx.helper` from the loaded model's weights, in memory, when
the predictor is built: no exporter (``torch.onnx``), no file next to the weights, and the
model's version is still the hash of its safetensors weights. The graph computes what
`MedicalLSTM.forward` does on normalised, pooled windows: batch-first to sequence-first, one
ONNX ``LSTM`` per torch layer started from zero states, the last layer's final hidden state,
then the linear layer. Preprocessing stays in numpy (`monitor.model.features`), shared with
the trainer.

Why: with one thread, ONNX Runtime's LSTM kernel costs about half of torch's per window at
the daemon's batch sizes (docs/model-card.md, "Inference backends").
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from monitor.model.lstm import MedicalLSTM

#: Operator set and IR version of the graph: both old enough for onnxruntime >= 1.17.
OPSET = 17
IR_VERSION = 8

INPUT = "x"
OUTPUT = "y"

#: Windows per LSTM call. ONNX Runtime's LSTM costs more per window on larger batches (its
#: working set leaves the cache); 64 to 256 were the cheapest (docs/benchmarks.md).
MAX_BATCH = 256

SCAN_INPUT = "xs"
SCAN_OUTPUT = "ys"


def _onnx_gates(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # torch stacks the gate blocks as (input, forget, cell, output); ONNX as (input,
    # output, forget, cell).
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def lstm_graph(model: MedicalLSTM) -> onnx.ModelProto:
    """Return the ONNX model of `model`'s forward pass (float32, any batch size).

    Input ``x``: ``(batch, steps, input_size)``, as `MedicalLSTM.forward` takes it; output
    ``y``: ``(batch, output_size)``.

    Raises:
        ValueError: The LSTM is not the unidirectional, batch-first one with biases and no
            projection that `MedicalLSTM` builds.
    """
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
    x_info = helper.make_tensor_value_info(
        INPUT, TensorProto.FLOAT, ["batch", "steps", lstm.input_size]
    )
    y_info = helper.make_tensor_value_info(
        OUTPUT, TensorProto.FLOAT, ["batch", model.fc.out_features]
    )
    graph = helper.make_graph(nodes, "medical_lstm", [x_info], [y_info], initializers)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(proto)
    return proto


def pieces_graph(model: MedicalLSTM) -> onnx.ModelProto:
    """Return a graph that runs `lstm_graph`'s forward pass on each of several pieces.

    Input ``xs``: ``(pieces, MAX_BATCH, steps, input_size)``; output ``ys``: ``(pieces,
    MAX_BATCH, output_size)``. An ONNX ``Scan`` over the first axis runs `lstm_graph`'s
    nodes on one piece at a time (its weights are the outer graph's), so the results are
    bit for bit those of one run per piece.
    """
    single = lstm_graph(model).graph
    body = helper.make_graph(
        list(single.node),
        "medical_lstm_piece",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [MAX_BATCH, "steps", None])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [MAX_BATCH, None])],
    )
    scan = helper.make_node("Scan", [SCAN_INPUT], [SCAN_OUTPUT], num_scan_inputs=1, body=body)
    x_info = helper.make_tensor_value_info(
        SCAN_INPUT, TensorProto.FLOAT, ["pieces", MAX_BATCH, "steps", model.lstm.input_size]
    )
    y_info = helper.make_tensor_value_info(
        SCAN_OUTPUT, TensorProto.FLOAT, ["pieces", MAX_BATCH, model.fc.out_features]
    )
    graph = helper.make_graph(
        [scan], "medical_lstm_pieces", [x_info], [y_info], list(single.initializer)
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(proto)
    return proto


class OnnxLSTM:
    """ONNX Runtime sessions running a `MedicalLSTM` on the CPU; build with `from_model`.

    Safe to call from one thread at a time.

    Args:
        session: A session of `lstm_graph`'s model.
        pieces: A session of `pieces_graph`'s model, for batches larger than `MAX_BATCH`.
    """

    def __init__(self, session: ort.InferenceSession, pieces: ort.InferenceSession) -> None:
        self._session = session
        self._pieces = pieces

    @classmethod
    def from_model(cls, model: MedicalLSTM) -> OnnxLSTM:
        """Build the graphs of `model`'s weights and one CPU session for each.

        One intra-op and one inter-op thread: the daemon runs inference on one worker
        thread beside the event loop on the other core (docs/architecture.md), and ONNX
        Runtime then computes in the calling thread.
        """
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Errors only: its warnings would go to stderr, past the daemon's structured logs.
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        return cls(
            ort.InferenceSession(
                lstm_graph(model).SerializeToString(), options, providers=providers
            ),
            ort.InferenceSession(
                pieces_graph(model).SerializeToString(), options, providers=providers
            ),
        )

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run the model on normalised inputs ``(batch, steps, input_size)``, float32.

        A batch larger than `MAX_BATCH` runs as pieces of `MAX_BATCH` in one session run
        (`pieces_graph`), and the rest in a second one. Each run gives the GIL up and takes
        it back once: with one run per piece, the calling thread waited for the GIL after
        every piece while another thread held it (offline replay: the inference thread
        waited less and the replay ran faster; docs/benchmarks.md).

        Returns:
            The normalised outputs, ``(batch, output_size)``, float32.
        """
        n = len(x) // MAX_BATCH
        if n <= 1:
            return self._run(x)
        whole = n * MAX_BATCH
        xs = np.ascontiguousarray(x[:whole]).reshape(n, MAX_BATCH, *x.shape[1:])
        ys: npt.NDArray[np.float32] = self._pieces.run([SCAN_OUTPUT], {SCAN_INPUT: xs})[0]
        out = ys.reshape(whole, ys.shape[-1])
        return out if whole == len(x) else np.concatenate([out, self._run(x[whole:])])

    def _run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if len(x) <= MAX_BATCH:
            out: npt.NDArray[np.float32] = self._session.run([OUTPUT], {INPUT: x})[0]
            return out
        pieces = [
            self._session.run([OUTPUT], {INPUT: x[i : i + MAX_BATCH]})[0]
            for i in range(0, len(x), MAX_BATCH)
        ]
        return np.concatenate(pieces)
