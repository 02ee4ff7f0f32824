"""Checking a submitted ONNX model file before it is accepted or run.

A submitted model file is hostile until proven otherwise. :func:`check_model_file`
reads it once (bounded by ``max_bytes``), hashes exactly the bytes it parses, and
refuses it with a :class:`ModelRejected` carrying a stable machine ``code`` and a
message in English and Simplified Chinese when any of these holds, checked in
this order:

==========================  ===============================================
code                        meaning
==========================  ===============================================
``empty``                   the file has no bytes
``too_large``               the file is larger than ``max_bytes``
``not_onnx``                the bytes are not a binary ONNX ModelProto with
                            a graph, an ``ir_version`` and an opset import
``external_data``           some tensor refers to external data
``custom_operator_domain``  an operator domain outside ``ALLOWED_DOMAINS``
``invalid_model``           ``onnx.checker.check_model`` refuses the model,
                            or an input/output name is not valid UTF-8
==========================  ===============================================

Nothing here executes the model, loads external data, registers custom
operators, or opens any path named inside the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx import (
    AttributeProto,
    FunctionProto,
    GraphProto,
    ModelProto,
    SparseTensorProto,
    TensorProto,
    TypeProto,
    ValueInfoProto,
)

__all__ = [
    "ALLOWED_DOMAINS",
    "ModelRejected",
    "ModelSummary",
    "check_model_file",
]

#: Operator domains a submitted model may use: the default ONNX domain (spelled
#: ``""`` or ``"ai.onnx"``) and the traditional-ML domain. Anything else needs a
#: custom-operator library, which would load native code.
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})

_CHUNK = 1024 * 1024  # sha256 is computed over 1 MiB chunks
_MAX_SHOWN = 200  # longest piece of file-supplied text quoted in a message


class ModelRejected(ValueError):
    """A submitted model file was refused.

    Attributes:
        code: stable machine code: ``"empty"``, ``"too_large"``, ``"not_onnx"``,
            ``"external_data"``, ``"custom_operator_domain"``, ``"invalid_model"``.
        message: one English sentence naming what is wrong and what is accepted.
        message_zh: the same sentence in Simplified Chinese.
    """

    code: str
    message: str
    message_zh: str

    def __init__(self, code: str, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_zh = message_zh

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ModelRejected(code={self.code!r}, message={self.message!r})"

    def to_json(self) -> dict[str, str]:
        """Return ``{"code", "message", "message_zh"}`` for an API error body."""
        return {"code": self.code, "message": self.message, "message_zh": self.message_zh}


@dataclass(frozen=True)
class ModelSummary:
    """What was learned about an accepted model file.

    ``inputs`` and ``outputs`` hold one dict per graph input/output:
    ``{"name": str, "elem_type": str, "shape": list[int | str | None] | None}``.
    ``elem_type`` is the lower-case ONNX tensor type name (``"float"``,
    ``"int64"``, ``"string"``...), or a description such as
    ``"sequence(map(int64,float))"`` for non-tensor values. ``shape`` has one
    entry per dimension: an ``int`` for a fixed size, a ``str`` for a symbolic
    one, ``None`` for an unknown one; ``shape`` itself is ``None`` when the rank
    is unknown or the value is not a tensor. Graph inputs that are also
    initializers (optional inputs with a default, as in IR version < 4 files)
    are not listed as inputs.
    """

    sha256: str
    size: int
    ir_version: int
    opset_imports: dict[str, int]
    producer: str
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]

    def to_json(self) -> dict:
        """Return a JSON-ready dict (fresh copies; lists instead of tuples)."""
        return {
            "sha256": self.sha256,
            "size": self.size,
            "ir_version": self.ir_version,
            "opset_imports": dict(self.opset_imports),
            "producer": self.producer,
            "inputs": [_copy_io(v) for v in self.inputs],
            "outputs": [_copy_io(v) for v in self.outputs],
        }


def _copy_io(value: dict) -> dict:
    shape = value.get("shape")
    return {
        "name": value["name"],
        "elem_type": value["elem_type"],
        "shape": None if shape is None else list(shape),
    }


# --------------------------------------------------------------------------- refusals


def _text(value: str | bytes) -> str:
    """A protobuf string field as ``str``.

    The onnx schema is proto2, where upb does not validate UTF-8: a string field
    holding invalid UTF-8 comes back as ``bytes``. Decode it with replacement
    characters (for display only).
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _shown(text: str | bytes) -> str:
    """Quote file-supplied text safely: printable, bounded, in repr form."""
    text = _text(text)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "…"
    return repr(text)


def _empty() -> ModelRejected:
    return ModelRejected(
        "empty",
        "The model file is empty; upload a single-file ONNX model (.onnx).",
        "模型文件为空；请上传单文件 ONNX 模型（.onnx）。",
    )


def _too_large(size: int, max_bytes: int) -> ModelRejected:
    return ModelRejected(
        "too_large",
        f"The model file is {size} bytes, larger than the limit of {max_bytes} bytes; "
        f"upload an ONNX model of at most {max_bytes} bytes.",
        f"模型文件大小为 {size} 字节，超过 {max_bytes} 字节的上限；请上传不超过 {max_bytes} 字节的 ONNX 模型。",
    )


def _not_onnx(detail: str) -> ModelRejected:
    return ModelRejected(
        "not_onnx",
        f"The file is not an ONNX model ({detail}); only binary ONNX ModelProto files (.onnx) are accepted.",
        f"该文件不是 ONNX 模型（{detail}）；仅接受二进制 ONNX ModelProto 文件（.onnx）。",
    )


def _external_data(where: str) -> ModelRejected:
    return ModelRejected(
        "external_data",
        f"The model refers to external tensor data ({where}); only single-file ONNX models "
        "with all weights stored inside the file are accepted.",
        f"模型引用了外部张量数据（{where}）；仅接受所有权重都保存在文件内部的单文件 ONNX 模型。",
    )


def _custom_domain(domain: str, where: str) -> ModelRejected:
    allowed = ", ".join(repr(d) for d in sorted(ALLOWED_DOMAINS))
    return ModelRejected(
        "custom_operator_domain",
        f"The model uses the operator domain {_shown(domain)} ({where}), which needs custom operators; "
        f"only the standard domains {allowed} are accepted.",
        f"模型使用了算子域 {_shown(domain)}（{where}），需要自定义算子；仅接受标准算子域 {allowed}。",
    )


def _invalid_model(first_line: str) -> ModelRejected:
    return ModelRejected(
        "invalid_model",
        f"The ONNX checker refused the model: {_shown(first_line)}; "
        "only models that pass onnx.checker.check_model are accepted.",
        f"ONNX 检查器拒绝了该模型：{_shown(first_line)}；仅接受通过 onnx.checker.check_model 检查的模型。",
    )


# --------------------------------------------------------------------------- reading


def _read_bounded(path: str | os.PathLike, max_bytes: int) -> tuple[bytes, str]:
    """Read the whole file, refusing empty or oversized ones, and hash it.

    The size is checked with ``os.stat`` (and again with ``os.fstat`` on the
    opened file) before any byte is read, and the read itself stops after ``max_bytes + 1`` bytes, so a file that
    grows after the check is still refused. The bytes returned are exactly the
    bytes hashed, so the summary describes what was parsed.

    Raises:
        ModelRejected: ``"empty"`` or ``"too_large"``.
        OSError: the file cannot be opened or read (including a path that is
            not a regular file).
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):  # checked before open(): opening a FIFO would block
        raise OSError(f"not a regular file: {os.fspath(path)!r}")
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())  # the file actually opened, in case the path was replaced
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file: {os.fspath(path)!r}")
        if st.st_size == 0:
            raise _empty()
        if st.st_size > max_bytes:
            raise _too_large(st.st_size, max_bytes)
        digest = hashlib.sha256()
        buffer = bytearray()
        while chunk := f.read(_CHUNK):
            buffer += chunk
            if len(buffer) > max_bytes:
                raise _too_large(len(buffer), max_bytes)
            digest.update(chunk)
    if not buffer:
        raise _empty()
    return bytes(buffer), digest.hexdigest()


def _parse(data: bytes) -> ModelProto:
    """Parse ``data`` as a binary ModelProto; raise ``not_onnx`` if it is not one.

    The format is forced to ``"protobuf"``: given a path, ``onnx.load`` would pick
    a text or JSON parser from the file's extension. Parsing from memory also
    means there is no base directory from which external data could be found.
    """
    try:
        model = onnx.load(io.BytesIO(data), format="protobuf", load_external_data=False)
    except DecodeError:
        raise _not_onnx("it does not decode as an ONNX protobuf message") from None
    except RecursionError:
        raise _not_onnx("it is nested too deeply to decode") from None
    except Exception:  # hostile input: any parser failure is a refusal
        raise _not_onnx("it could not be decoded") from None
    if not isinstance(model, ModelProto):  # pragma: no cover - defensive
        raise _not_onnx("it could not be decoded")
    if not model.HasField("graph"):
        raise _not_onnx("it has no graph")
    if model.ir_version <= 0:
        raise _not_onnx("it has no IR version")
    if len(model.opset_import) == 0:
        raise _not_onnx("it has no opset import")
    return model


# --------------------------------------------------------------------------- walking


def _graphs_of_attribute(attr: AttributeProto) -> Iterator[GraphProto]:
    if attr.HasField("g"):
        yield attr.g
    yield from attr.graphs


def _tensors_of_attribute(attr: AttributeProto) -> Iterator[TensorProto]:
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    if attr.HasField("sparse_tensor"):
        yield from _tensors_of_sparse(attr.sparse_tensor)
    for sparse in attr.sparse_tensors:
        yield from _tensors_of_sparse(sparse)


def _tensors_of_sparse(sparse: SparseTensorProto) -> Iterator[TensorProto]:
    if sparse.HasField("values"):
        yield sparse.values
    if sparse.HasField("indices"):
        yield sparse.indices


def _walk(model: ModelProto) -> Iterator[tuple[str, GraphProto | FunctionProto]]:
    """Yield ``(label, container)`` for every graph and function in the model.

    Covers the main graph, the subgraphs held in node attributes (If, Loop,
    Scan...) at any depth, model-local functions, and training-info graphs.
    Iterative, so a deeply nested file cannot exhaust the Python stack.
    """
    pending: list[tuple[str, GraphProto | FunctionProto]] = [("the main graph", model.graph)]
    for function in model.functions:
        pending.append((f"function {_shown(function.name)}", function))
    for info in model.training_info:
        if info.HasField("initialization"):
            pending.append(("a training initialization graph", info.initialization))
        if info.HasField("algorithm"):
            pending.append(("a training algorithm graph", info.algorithm))
    while pending:
        label, container = pending.pop()
        yield label, container
        for node in container.node:
            for attr in node.attribute:
                for sub in _graphs_of_attribute(attr):
                    pending.append((f"a subgraph of node {_shown(node.name or node.op_type)}", sub))


def _tensors(container: GraphProto | FunctionProto) -> Iterator[tuple[str, TensorProto]]:
    """Yield every tensor stored directly in this graph or function (not in subgraphs)."""
    if isinstance(container, GraphProto):
        for tensor in container.initializer:
            yield f"initializer {_shown(tensor.name)}", tensor
        for sparse in container.sparse_initializer:
            for tensor in _tensors_of_sparse(sparse):
                yield f"sparse initializer {_shown(sparse.values.name)}", tensor
    for node in container.node:
        for attr in node.attribute:
            for tensor in _tensors_of_attribute(attr):
                yield f"attribute {_shown(attr.name)} of node {_shown(node.name or node.op_type)}", tensor


def _refuse_external_data(model: ModelProto) -> None:
    """Raise ``external_data`` if any tensor anywhere points outside the file."""
    for label, container in _walk(model):
        for where, tensor in _tensors(container):
            if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0:
                raise _external_data(f"{where} in {label}")


def _refuse_custom_domains(model: ModelProto) -> None:
    """Raise ``custom_operator_domain`` for any domain outside ALLOWED_DOMAINS.

    Checks the model's opset imports, every function's own domain and opset
    imports, and the domain of every node in every graph and function.
    """
    for opset in model.opset_import:
        if opset.domain not in ALLOWED_DOMAINS:
            raise _custom_domain(opset.domain, "in the model's opset imports")
    for function in model.functions:
        if function.domain not in ALLOWED_DOMAINS:
            raise _custom_domain(function.domain, f"as the domain of function {_shown(function.name)}")
        for opset in function.opset_import:
            if opset.domain not in ALLOWED_DOMAINS:
                raise _custom_domain(opset.domain, f"in the opset imports of function {_shown(function.name)}")
    for label, container in _walk(model):
        for node in container.node:
            if node.domain not in ALLOWED_DOMAINS:
                raise _custom_domain(node.domain, f"node {_shown(node.name or node.op_type)} in {label}")


def _run_checker(model: ModelProto) -> None:
    """Raise ``invalid_model`` with the checker's first line if the checker refuses."""
    try:
        onnx.checker.check_model(model, full_check=False)
    except Exception as exc:  # ValidationError normally; anything else is a refusal too
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise _invalid_model(first_line) from None


# --------------------------------------------------------------------------- summary


def _type_name(type_proto: TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        return _elem_name(type_proto.tensor_type.elem_type)
    if kind == "sparse_tensor_type":
        return f"sparse_tensor({_elem_name(type_proto.sparse_tensor_type.elem_type)})"
    if kind == "sequence_type":
        return f"sequence({_type_name(type_proto.sequence_type.elem_type)})"
    if kind == "map_type":
        key = _elem_name(type_proto.map_type.key_type)
        return f"map({key},{_type_name(type_proto.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_name(type_proto.optional_type.elem_type)})"
    if kind is None:
        return "undefined"
    return kind  # pragma: no cover - a TypeProto kind newer than this code


def _elem_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"unknown({elem_type})"


def _shape(type_proto: TypeProto) -> list[int | str | None] | None:
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        tensor_type = type_proto.tensor_type
    elif kind == "sparse_tensor_type":
        tensor_type = type_proto.sparse_tensor_type
    else:
        return None
    if not tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        which = dim.WhichOneof("value")
        if which == "dim_value":
            dims.append(int(dim.dim_value))
        elif which == "dim_param":
            dims.append(_text(dim.dim_param))
        else:
            dims.append(None)
    return dims


def _describe(value: ValueInfoProto) -> dict[str, Any]:
    if not isinstance(value.name, str):  # invalid UTF-8: the model could not be fed by name
        raise ModelRejected(
            "invalid_model",
            f"The model's input or output name {_shown(value.name)} is not valid UTF-8; "
            "only models whose names are UTF-8 text are accepted.",
            f"模型的输入或输出名称 {_shown(value.name)} 不是有效的 UTF-8；仅接受名称为 UTF-8 文本的模型。",
        )
    return {"name": value.name, "elem_type": _type_name(value.type), "shape": _shape(value.type)}


def _summarise(model: ModelProto, sha256: str, size: int) -> ModelSummary:
    graph = model.graph
    initialized = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    producer = " ".join(_text(p) for p in (model.producer_name, model.producer_version) if p)
    return ModelSummary(
        sha256=sha256,
        size=size,
        ir_version=int(model.ir_version),
        opset_imports={_text(o.domain): int(o.version) for o in model.opset_import},
        producer=producer[:_MAX_SHOWN],
        inputs=tuple(_describe(v) for v in graph.input if v.name not in initialized),
        outputs=tuple(_describe(v) for v in graph.output),
    )


# --------------------------------------------------------------------------- entry point


def check_model_file(path: str | os.PathLike, *, max_bytes: int) -> ModelSummary:
    """Check a submitted ONNX model file and summarise it; never run it.

    The file is read once: its size is checked with ``os.stat`` before reading,
    the bytes are hashed with sha256 in 1 MiB chunks, and the same bytes are parsed
    with ``onnx.load(..., format="protobuf", load_external_data=False)``. Then the
    tensors and operator domains of every graph, subgraph and function are
    inspected, and finally ``onnx.checker.check_model(model, full_check=False)``
    runs. No external data is loaded and no path named in the file is opened.

    Args:
        path: the file to check.
        max_bytes: the largest accepted file size in bytes (must be positive).

    Returns:
        A :class:`ModelSummary` of the accepted model.

    Raises:
        ModelRejected: with ``code`` (checked in this order) ``"empty"`` for a file
            of zero bytes; ``"too_large"`` for one larger than ``max_bytes``;
            ``"not_onnx"`` when the bytes are not a binary ONNX ModelProto with a
            graph, an IR version and at least one opset import; ``"external_data"``
            when any tensor (initializer, sparse initializer, node attribute, in
            any subgraph, function or training graph) has ``data_location ==
            EXTERNAL`` or ``external_data`` entries; ``"custom_operator_domain"``
            when an opset import, function or node uses a domain outside
            :data:`ALLOWED_DOMAINS`; ``"invalid_model"`` when the ONNX checker
            refuses the model (or, after it, when a graph input or output name
            is not valid UTF-8).
        ValueError: ``max_bytes`` is not a positive integer (a caller error).
        OSError: the file cannot be opened or read, or is not a regular file
            (a server-side problem, not a property of the submission).
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive integer, not {max_bytes!r}")
    data, sha256 = _read_bounded(path, max_bytes)
    model = _parse(data)
    _refuse_external_data(model)
    _refuse_custom_domains(model)
    _run_checker(model)
    return _summarise(model, sha256, len(data))
