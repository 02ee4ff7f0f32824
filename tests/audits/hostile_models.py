"""Hostile ONNX models built by hand for the tests (never from a file off the network)."""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper


def endless_loop(path: Path, *, width: int = 1) -> str:
    """A valid model whose Loop runs 10^12 iterations over a tiny loop-carried value: it would run for hours.

    Input X float[N, width]; output "label" int64[2].
    """
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.INT64, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.INT64, [2]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["X"], ["start"]),
            helper.make_node("Loop", ["trips", "keep_going", "start"], ["label"], body=body),
        ],
        "endless",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [2])],
        initializer=[
            helper.make_tensor("trips", TensorProto.INT64, [], [10**12]),
            helper.make_tensor("keep_going", TensorProto.BOOL, [], [True]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    Path(path).write_bytes(model.SerializeToString())
    return str(path)
