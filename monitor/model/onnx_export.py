"""What every architecture's ONNX graph agrees on: names, operator set, IR version.

An architecture module (`monitor.model.architectures`) writes its forward pass as ONNX nodes
with `onnx.helper` from the model's weights, in memory (no exporter, no file next to the
weights), and `graph` checks and wraps them; `monitor.model.onnx_backend` runs any such graph.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

__all__ = ["INPUT", "IR_VERSION", "OPSET", "OUTPUT", "graph"]

#: Operator set and IR version of the graphs: both old enough for onnxruntime >= 1.17.
OPSET = 17
IR_VERSION = 8

#: The graph's input, ``(batch, steps, input_size)`` float32, and output, ``(batch,
#: output_size)``: the normalised windows and predictions `Preprocess` works with.
INPUT = "x"
OUTPUT = "y"


def graph(
    name: str,
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    input_size: int,
    output_size: int,
) -> onnx.ModelProto:
    """Wrap `nodes` (reading `INPUT`, writing `OUTPUT`) as a checked model, any batch size.

    Raises:
        onnx.checker.ValidationError: The nodes do not form a valid graph.
    """
    x_info = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", "steps", input_size])
    y_info = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", output_size])
    body = helper.make_graph(nodes, name, [x_info], [y_info], initializers)
    proto = helper.make_model(
        body, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(proto)
    return proto
