"""Tests for audits.model_check: submitted ONNX files are hostile."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from audits.model_check import (
    ALLOWED_DOMAINS,
    ModelRejected,
    ModelSummary,
    check_model_file,
)

MAX = 10 * 1024 * 1024
OPSET = [helper.make_opsetid("", 17)]
IR_VERSION = 8


# --------------------------------------------------------------------------- builders


def _weights() -> TensorProto:
    return numpy_helper.from_array(np.array([[0.5], [-1.0], [2.0]], dtype=np.float32), name="W")


def _classifier_graph(extra_nodes=(), initializers=None) -> onnx.GraphProto:
    """X float[N,3] -> MatMul(W) -> Sigmoid -> probability; ArgMax(Concat(1-p, p)) -> label."""
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["logit"], name="matmul"),
        helper.make_node("Sigmoid", ["logit"], ["probability"], name="sigmoid"),
        helper.make_node("Sub", ["one", "probability"], ["complement"], name="sub"),
        helper.make_node("Concat", ["complement", "probability"], ["both"], name="concat", axis=1),
        helper.make_node("ArgMax", ["both"], ["label"], name="argmax", axis=1, keepdims=0),
        *extra_nodes,
    ]
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="one")
    return helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=initializers if initializers is not None else [_weights(), one],
    )


def _model(graph: onnx.GraphProto, opsets=OPSET, **kwargs) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=list(opsets), producer_name="unit-test", **kwargs)
    model.ir_version = IR_VERSION
    model.producer_version = "1.0"
    return model


def _write(tmp_path: Path, data: bytes | onnx.ModelProto, name: str = "model.onnx") -> Path:
    if isinstance(data, onnx.ModelProto):
        data = data.SerializeToString()
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rejected(path: Path, code: str, max_bytes: int = MAX) -> ModelRejected:
    with pytest.raises(ModelRejected) as info:
        check_model_file(path, max_bytes=max_bytes)
    exc = info.value
    assert exc.code == code, (exc.code, exc.message)
    _assert_messages(exc)
    return exc


def _assert_messages(exc: ModelRejected) -> None:
    assert isinstance(exc, ValueError)
    assert isinstance(exc.message, str) and exc.message.strip()
    assert isinstance(exc.message_zh, str) and exc.message_zh.strip()
    assert exc.message != exc.message_zh
    assert str(exc) == exc.message
    assert any("\u4e00" <= ch <= "\u9fff" for ch in exc.message_zh)


# --------------------------------------------------------------------------- accepted


def test_valid_model_is_accepted_with_the_right_summary(tmp_path):
    path = _write(tmp_path, _model(_classifier_graph()))
    data = path.read_bytes()

    summary = check_model_file(path, max_bytes=MAX)

    assert isinstance(summary, ModelSummary)
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    assert summary.size == len(data)
    assert summary.ir_version == IR_VERSION
    assert summary.opset_imports == {"": 17}
    assert summary.producer == "unit-test 1.0"
    assert summary.inputs == ({"name": "X", "elem_type": "float", "shape": ["N", 3]},)
    assert summary.outputs == (
        {"name": "probability", "elem_type": "float", "shape": ["N", 1]},
        {"name": "label", "elem_type": "int64", "shape": ["N"]},
    )


def test_summary_to_json_round_trips_through_json(tmp_path):
    summary = check_model_file(_write(tmp_path, _model(_classifier_graph())), max_bytes=MAX)
    as_json = summary.to_json()
    assert json.loads(json.dumps(as_json)) == as_json
    assert as_json["inputs"] == [{"name": "X", "elem_type": "float", "shape": ["N", 3]}]
    assert set(as_json) == {"sha256", "size", "ir_version", "opset_imports", "producer", "inputs", "outputs"}


def test_string_inputs_unknown_dims_and_ml_domain_are_accepted(tmp_path):
    graph = helper.make_graph(
        [
            helper.make_node(
                "LabelEncoder",
                ["city"],
                ["code"],
                domain="ai.onnx.ml",
                keys_strings=["a", "b"],
                values_int64s=[1, 2],
                default_int64=0,
            )
        ],
        "encoder",
        [helper.make_tensor_value_info("city", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("code", TensorProto.INT64, [None])],
    )
    model = _model(graph, opsets=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    summary = check_model_file(_write(tmp_path, model), max_bytes=MAX)
    assert summary.opset_imports == {"": 17, "ai.onnx.ml": 3}
    assert summary.inputs == ({"name": "city", "elem_type": "string", "shape": [None]},)
    assert summary.outputs == ({"name": "code", "elem_type": "int64", "shape": [None]},)


def test_zipmap_output_is_described_as_a_sequence_of_maps(tmp_path):
    # skl2onnx's default classifier output: sequence(map(int64, float)), which has no shape.
    zipmap_type = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    )
    graph = helper.make_graph(
        [helper.make_node("ZipMap", ["p"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1])],
        "zipmap",
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 2])],
        [helper.make_value_info("probabilities", zipmap_type)],
    )
    model = _model(graph, opsets=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    summary = check_model_file(_write(tmp_path, model), max_bytes=MAX)
    assert summary.outputs == ({"name": "probabilities", "elem_type": "sequence(map(int64,float))", "shape": None},)


def test_invalid_utf8_strings_are_handled(tmp_path):
    data = bytearray(_model(_classifier_graph()).SerializeToString())
    # producer_name "unit-test" -> invalid UTF-8: shown with a replacement character
    at = data.index(b"unit-test")
    data[at] = 0x80
    summary = check_model_file(_write(tmp_path, bytes(data)), max_bytes=MAX)
    assert summary.producer == "\ufffdnit-test 1.0"
    json.dumps(summary.to_json())


def test_invalid_utf8_input_name_is_invalid_model(tmp_path):
    graph = _classifier_graph()
    for node in graph.node:
        node.input[:] = ["Q" if name == "X" else name for name in node.input]
    graph.input[0].name = "Q"
    data = bytearray(_model(graph).SerializeToString())
    for at in [i for i in range(len(data)) if data[i : i + 2] == b"\x01Q"]:
        data[at + 1] = 0xFF  # every length-1 string "Q" becomes the invalid byte 0xFF
    exc = _rejected(_write(tmp_path, bytes(data)), "invalid_model")
    assert "UTF-8" in exc.message


def test_file_extension_does_not_choose_a_text_parser(tmp_path):
    # onnx.load picks a text/JSON parser from a path's extension; the check must not.
    path = _write(tmp_path, _model(_classifier_graph()), name="model.json")
    assert check_model_file(path, max_bytes=MAX).inputs[0]["name"] == "X"
    # A valid model in protobuf text format, named so that onnx.load would parse it as text.
    for name in ("model.textproto", "model.pbtxt", "model.onnxtxt"):
        text = tmp_path / name
        text.write_text(str(_model(_classifier_graph())))
        _rejected(text, "not_onnx")


def test_exactly_max_bytes_is_accepted(tmp_path):
    path = _write(tmp_path, _model(_classifier_graph()))
    size = path.stat().st_size
    assert check_model_file(path, max_bytes=size).size == size


# --------------------------------------------------------------------------- size


def test_empty_file(tmp_path):
    _rejected(_write(tmp_path, b""), "empty")


def test_oversized_file(tmp_path):
    path = _write(tmp_path, _model(_classifier_graph()))
    exc = _rejected(path, "too_large", max_bytes=path.stat().st_size - 1)
    assert str(path.stat().st_size) in exc.message


def test_oversized_is_checked_before_parsing(tmp_path):
    # A huge non-ONNX file is refused for its size, not its content.
    _rejected(_write(tmp_path, b"x" * 2048), "too_large", max_bytes=1024)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_max_bytes_must_be_a_positive_int(tmp_path, bad):
    with pytest.raises(ValueError) as info:
        check_model_file(_write(tmp_path, b"x"), max_bytes=bad)
    assert not isinstance(info.value, ModelRejected)


def test_directory_is_an_os_error_not_a_rejection(tmp_path):
    with pytest.raises(OSError):
        check_model_file(tmp_path, max_bytes=MAX)


# --------------------------------------------------------------------------- not ONNX


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", _model(_classifier_graph()).SerializeToString())
        archive.writestr("../../etc/passwd", "root:x:0:0")
    return buffer.getvalue()


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes(range(256)) * 8, id="byte-ramp"),
        pytest.param(np.random.default_rng(20260101).bytes(4096), id="random-bytes"),
        pytest.param(b"Hello, this is a plain text file.\nNot a model at all.\n", id="text"),
        pytest.param("模型说明：这是一个文本文件。\n".encode(), id="chinese-text"),
        pytest.param(b'{"ir_version": 8, "graph": {}}', id="json"),
        pytest.param(_zip_bytes(), id="zip"),
        pytest.param(PNG, id="png"),
        pytest.param(b"\x89PNG\r\n\x1a\n", id="png-header"),
        pytest.param(b"\x80\x04\x95", id="pickle-header"),
        pytest.param(b"\x00", id="one-zero-byte"),
    ],
)
def test_non_onnx_bytes_are_not_onnx(tmp_path, data):
    _rejected(_write(tmp_path, data), "not_onnx")


def test_valid_protobuf_without_graph_is_not_onnx(tmp_path):
    model = onnx.ModelProto(ir_version=IR_VERSION, producer_name="x")
    model.opset_import.extend(OPSET)
    _rejected(_write(tmp_path, model), "not_onnx")


def test_model_without_ir_version_is_not_onnx(tmp_path):
    model = _model(_classifier_graph())
    model.ClearField("ir_version")
    _rejected(_write(tmp_path, model), "not_onnx")


def test_model_without_opset_import_is_not_onnx(tmp_path):
    model = _model(_classifier_graph())
    del model.opset_import[:]
    _rejected(_write(tmp_path, model), "not_onnx")


def test_model_text_format_is_not_onnx(tmp_path):
    text = str(_model(_classifier_graph())).encode()  # protobuf text format
    _rejected(_write(tmp_path, text), "not_onnx")


def test_truncated_model_is_refused(tmp_path):
    data = _model(_classifier_graph()).SerializeToString()
    with pytest.raises(ModelRejected) as info:
        check_model_file(_write(tmp_path, data[: len(data) // 2]), max_bytes=MAX)
    assert info.value.code in {"not_onnx", "invalid_model"}
    _assert_messages(info.value)


# --------------------------------------------------------------------------- external data


def _point_outside(tensor: TensorProto) -> None:
    onnx.external_data_helper.set_external_data(tensor, location="../../etc/passwd", offset=0, length=12)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")


def test_external_initializer_is_refused_and_never_read(tmp_path, monkeypatch):
    weights = _weights()
    _point_outside(weights)
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="one")
    path = _write(tmp_path, _model(_classifier_graph(initializers=[weights, one])))

    def no_external_loading(*args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("external data must never be loaded")

    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", no_external_loading)
    monkeypatch.setattr(onnx, "load_external_data_for_model", no_external_loading)
    exc = _rejected(path, "external_data")
    assert "'W'" in exc.message


def test_external_data_entries_without_location_flag_are_refused(tmp_path):
    weights = _weights()
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="one")
    _rejected(_write(tmp_path, _model(_classifier_graph(initializers=[weights, one]))), "external_data")


def test_external_data_location_flag_alone_is_refused(tmp_path):
    weights = _weights()
    weights.data_location = TensorProto.EXTERNAL
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="one")
    _rejected(_write(tmp_path, _model(_classifier_graph(initializers=[weights, one]))), "external_data")


def test_external_sparse_initializer_is_refused(tmp_path):
    values = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="S")
    indices = numpy_helper.from_array(np.array([0], dtype=np.int64), name="S_indices")
    _point_outside(values)
    graph = _classifier_graph()
    graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [3]))
    _rejected(_write(tmp_path, _model(graph)), "external_data")


def test_external_constant_attribute_is_refused(tmp_path):
    value = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="c")
    _point_outside(value)
    constant = helper.make_node("Constant", [], ["c_out"], name="const", value=value)
    _rejected(_write(tmp_path, _model(_classifier_graph(extra_nodes=[constant]))), "external_data")


def _if_node(then_nodes, else_nodes, initializers=()) -> onnx.NodeProto:
    out = helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [1])
    then_graph = helper.make_graph(then_nodes, "then", [], [out], initializer=list(initializers))
    else_graph = helper.make_graph(else_nodes, "else", [], [out])
    return helper.make_node("If", ["cond"], ["if_out"], name="if", then_branch=then_graph, else_branch=else_graph)


def _const(name: str, output: str = "branch_out") -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [output],
        name=name,
        value=numpy_helper.from_array(np.array([1.0], dtype=np.float32), name=name),
    )


def _with_cond(graph: onnx.GraphProto) -> onnx.GraphProto:
    graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    return graph


def test_external_data_inside_an_if_subgraph_is_refused(tmp_path):
    hidden = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="hidden")
    _point_outside(hidden)
    node = _if_node([helper.make_node("Identity", ["hidden"], ["branch_out"])], [_const("e")], [hidden])
    _rejected(_write(tmp_path, _model(_with_cond(_classifier_graph(extra_nodes=[node])))), "external_data")


def test_external_data_in_a_constant_nested_two_levels_deep_is_refused(tmp_path):
    value = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="deep")
    _point_outside(value)
    deep = helper.make_node("Constant", [], ["branch_out"], name="deep", value=value)
    inner = _if_node([deep], [_const("x")])
    inner.input[0] = "cond"
    inner.output[0] = "branch_out"
    outer = _if_node([inner], [_const("y")])
    _rejected(_write(tmp_path, _model(_with_cond(_classifier_graph(extra_nodes=[outer])))), "external_data")


def test_external_data_wins_over_custom_domain(tmp_path):
    weights = _weights()
    _point_outside(weights)
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), name="one")
    evil = helper.make_node("Steal", ["X"], ["loot"], domain="com.evil")
    graph = _classifier_graph(extra_nodes=[evil], initializers=[weights, one])
    _rejected(_write(tmp_path, _model(graph, opsets=[*OPSET, helper.make_opsetid("com.evil", 1)])), "external_data")


# --------------------------------------------------------------------------- domains


def test_custom_domain_node_is_refused(tmp_path):
    evil = helper.make_node("Steal", ["X"], ["loot"], name="steal", domain="com.evil")
    model = _model(_classifier_graph(extra_nodes=[evil]), opsets=[*OPSET, helper.make_opsetid("com.evil", 1)])
    exc = _rejected(_write(tmp_path, model), "custom_operator_domain")
    assert "com.evil" in exc.message and "com.evil" in exc.message_zh


def test_custom_domain_node_without_opset_import_is_refused(tmp_path):
    evil = helper.make_node("Steal", ["X"], ["loot"], name="steal", domain="com.evil")
    exc = _rejected(_write(tmp_path, _model(_classifier_graph(extra_nodes=[evil]))), "custom_operator_domain")
    assert "com.evil" in exc.message


def test_unused_custom_opset_import_is_refused(tmp_path):
    model = _model(_classifier_graph(), opsets=[*OPSET, helper.make_opsetid("com.microsoft", 1)])
    exc = _rejected(_write(tmp_path, model), "custom_operator_domain")
    assert "com.microsoft" in exc.message


def test_custom_domain_inside_an_if_subgraph_is_refused(tmp_path):
    evil = helper.make_node("Steal", [], ["branch_out"], name="hidden-steal", domain="com.evil")
    node = _if_node([evil], [_const("e")])
    model = _model(_with_cond(_classifier_graph(extra_nodes=[node])))
    exc = _rejected(_write(tmp_path, model), "custom_operator_domain")
    assert "com.evil" in exc.message


def test_custom_domain_inside_a_loop_body_is_refused(tmp_path):
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Steal", [], ["scan_out"], domain="com.evil"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("scan_out", TensorProto.FLOAT, [1]),
        ],
    )
    loop = helper.make_node("Loop", ["", "cond"], ["loop_out"], body=body)
    model = _model(_with_cond(_classifier_graph(extra_nodes=[loop])))
    _rejected(_write(tmp_path, model), "custom_operator_domain")


def test_custom_domain_in_a_model_local_function_is_refused(tmp_path):
    function = helper.make_function(
        "ai.onnx.ml",
        "Helper",
        ["a"],
        ["b"],
        [helper.make_node("Steal", ["a"], ["b"], domain="com.evil")],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model = _model(_classifier_graph(), functions=[function])
    exc = _rejected(_write(tmp_path, model), "custom_operator_domain")
    assert "com.evil" in exc.message


def test_model_local_function_in_its_own_domain_is_refused(tmp_path):
    function = helper.make_function(
        "local.funcs",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model = _model(_classifier_graph(), functions=[function])
    exc = _rejected(_write(tmp_path, model), "custom_operator_domain")
    assert "local.funcs" in exc.message


def test_hostile_domain_name_is_quoted_and_bounded(tmp_path):
    domain = "com.evil\n<script>" + "x" * 5000
    evil = helper.make_node("Steal", ["X"], ["loot"], domain=domain)
    exc = _rejected(_write(tmp_path, _model(_classifier_graph(extra_nodes=[evil]))), "custom_operator_domain")
    assert "\n" not in exc.message and len(exc.message) < 1000


def test_allowed_domains():
    assert ALLOWED_DOMAINS == frozenset({"", "ai.onnx", "ai.onnx.ml"})


# --------------------------------------------------------------------------- checker


def test_node_consuming_an_undefined_input_is_invalid_model(tmp_path):
    ghost = helper.make_node("Relu", ["nowhere"], ["ghost_out"], name="ghost")
    exc = _rejected(_write(tmp_path, _model(_classifier_graph(extra_nodes=[ghost]))), "invalid_model")
    assert "nowhere" in exc.message
    assert "\n" not in exc.message


def test_unknown_operator_is_invalid_model(tmp_path):
    bogus = helper.make_node("NoSuchOperator", ["X"], ["y"])
    _rejected(_write(tmp_path, _model(_classifier_graph(extra_nodes=[bogus]))), "invalid_model")


def test_future_ir_version_is_invalid_model(tmp_path):
    model = _model(_classifier_graph())
    model.ir_version = 999
    _rejected(_write(tmp_path, model), "invalid_model")


# --------------------------------------------------------------------------- property


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_are_refused_or_summarised(tmp_path, data):
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(data)
    try:
        summary = check_model_file(path, max_bytes=2048)
    except ModelRejected as exc:
        _assert_messages(exc)
        assert exc.code in {
            "empty",
            "too_large",
            "not_onnx",
            "external_data",
            "custom_operator_domain",
            "invalid_model",
        }
    else:
        assert summary.sha256 == hashlib.sha256(data).hexdigest()
        json.dumps(summary.to_json())


_VALID = _model(_classifier_graph()).SerializeToString()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(min_value=0, max_value=len(_VALID) - 1),
    replacement=st.binary(min_size=1, max_size=8),
)
def test_mutated_valid_model_is_refused_or_summarised(tmp_path, position, replacement):
    data = _VALID[:position] + replacement + _VALID[position + len(replacement) :]
    path = tmp_path / "mutant.onnx"
    path.write_bytes(data)
    try:
        summary = check_model_file(path, max_bytes=MAX)
    except ModelRejected as exc:
        _assert_messages(exc)
    else:
        assert summary.size == len(data)
        json.dumps(summary.to_json(), ensure_ascii=False)


def test_no_file_is_left_open(tmp_path):
    # check_model_file reads through a context manager; the fd count stays flat.
    path = _write(tmp_path, _model(_classifier_graph()))
    fd_dir = Path("/proc/self/fd")  # the registry runs on Linux (the model runner needs its rlimits)
    before = len(os.listdir(fd_dir))
    for _ in range(20):
        check_model_file(path, max_bytes=MAX)
        with pytest.raises(ModelRejected):
            check_model_file(path, max_bytes=10)
    assert len(os.listdir(fd_dir)) <= before
