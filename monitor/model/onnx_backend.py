"""ONNX Runtime inference on the CPU of any architecture's ONNX graph.

The graph comes from the card's architecture (`monitor.model.registry`, e.g.
`monitor.model.architectures.medical_lstm.lstm_graph`), written in memory from the loaded
weights when the predictor is built: no exporter (``torch.onnx``), no file next to the
weights, and the model's version is still the hash of its safetensors weights.
Preprocessing stays in numpy (`monitor.model.features`), shared with the trainer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from monitor.model.onnx_export import INPUT, IR_VERSION, OPSET, OUTPUT

__all__ = ["MAX_BATCH", "SCAN_INPUT", "SCAN_OUTPUT", "OnnxForward", "pieces_graph"]

#: Windows per model call. ONNX Runtime's LSTM costs more per window on larger batches (its
#: working set leaves the cache); 64 to 256 were the cheapest (docs/benchmarks.md).
MAX_BATCH = 256

SCAN_INPUT = "xs"
SCAN_OUTPUT = "ys"


def _size(info: onnx.ValueInfoProto, axis: int) -> int:
    return int(info.type.tensor_type.shape.dim[axis].dim_value)


def pieces_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a graph that runs `model`'s forward pass on each of several pieces.

    Input ``xs``: ``(pieces, MAX_BATCH, steps, input_size)``; output ``ys``: ``(pieces,
    MAX_BATCH, output_size)``. An ONNX ``Scan`` over the first axis runs `model`'s nodes on
    one piece at a time (its weights are the outer graph's), so the results are bit for bit
    those of one run per piece.
    """
    single = model.graph
    input_size, output_size = _size(single.input[0], 2), _size(single.output[0], 1)
    body = helper.make_graph(
        list(single.node),
        f"{single.name}_piece",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [MAX_BATCH, "steps", None])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [MAX_BATCH, None])],
    )
    scan = helper.make_node("Scan", [SCAN_INPUT], [SCAN_OUTPUT], num_scan_inputs=1, body=body)
    x_info = helper.make_tensor_value_info(
        SCAN_INPUT, TensorProto.FLOAT, ["pieces", MAX_BATCH, "steps", input_size]
    )
    y_info = helper.make_tensor_value_info(
        SCAN_OUTPUT, TensorProto.FLOAT, ["pieces", MAX_BATCH, output_size]
    )
    graph = helper.make_graph(
        [scan], f"{single.name}_pieces", [x_info], [y_info], list(single.initializer)
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(proto)
    return proto


class OnnxForward:
    """ONNX Runtime sessions running a model's graph on the CPU; build with `from_graph`.

    Safe to call from one thread at a time.

    Args:
        session: A session of the model's graph.
        pieces: A session of `pieces_graph`'s model, for batches larger than `MAX_BATCH`.
    """

    def __init__(self, session: ort.InferenceSession, pieces: ort.InferenceSession) -> None:
        self._session = session
        self._pieces = pieces

    @classmethod
    def from_graph(cls, model: onnx.ModelProto) -> OnnxForward:
        """Build one CPU session for `model` and one for its `pieces_graph`.

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
            ort.InferenceSession(model.SerializeToString(), options, providers=providers),
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
