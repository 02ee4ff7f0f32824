"""Use cases for reference data sets: upload and retire (administrators), list and load them for audits. No Flask.

The engine's shipped library (``audits/datasets``) and the uploads share one namespace of names, since an audit
job stores only the name. An upload is checked whole before anything is kept: the descriptor against
``schemas/reference-dataset.json`` and the engine's own rules, then the data file, which is treated as hostile:
streamed under a size limit, sniffed for its declared format (CSV or Parquet only; nothing is ever unpickled) and
actually parsed with the descriptor by :func:`audits.reference.load_file`, exactly as an audit will read it. A file
that fails leaves neither bytes in the content store nor a record.

Rows of a reference data set are never served by any route: these functions give summaries only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow.parquet as pq
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from audits import reference
from registry import authz
from registry.accounts.models import User
from registry.authz import Actor
from registry.db import utcnow
from registry.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, ValidationFailed
from registry.reference_data.models import ReferenceDataset
from registry.storage import service as storage
from registry.storage.files import ContentStore, LocalContentStore
from schemas import validation
from schemas.validation import FieldError

LIBRARY = "library"  # shipped with the engine, in audits/datasets
UPLOADED = "uploaded"  # uploaded by an administrator
DESCRIPTOR = "/descriptor"  # where the descriptor's errors point, in the upload request
DATA = "/data"  # where the data file's errors point


def data_too_large(limit: int) -> PayloadTooLarge:
    """The 413 for a data file over ``limit`` bytes, naming the data part (the request's size or the stored bytes)."""
    return PayloadTooLarge(
        f"The data file is larger than the limit of {limit} bytes.",
        code="dataset_too_large",
        pointer=DATA,
        extra={"detail_zh": f"数据文件超过 {limit} 字节的上限。"},
    )


SUMMARY_KEYS = ("name", "description", "rows", "sensitive_attributes", "default_sensitive")
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024
# A Parquet file is compressed: what it unpacks to is capped too, at this many times the upload limit.
UNPACKED_FACTOR = 10
# Beginnings of files that are not delimited text, named so the administrator sees what was sent instead.
BINARY_SIGNATURES = {
    b"PK\x03\x04": ("a ZIP archive (e.g. an Excel workbook)", "ZIP 压缩包（如 Excel 工作簿）"),
    b"\x1f\x8b": ("a gzip archive", "gzip 压缩文件"),
    b"\x80": ("a Python pickle", "Python pickle 文件"),
    b"PAR1": ("a Parquet file", "Parquet 文件"),
    b"\xfd7zXZ\x00": ("an xz archive", "xz 压缩文件"),
    b"\x89HDF": ("an HDF5 file", "HDF5 文件"),
    b"\x93NUMPY": ("a NumPy array", "NumPy 数组文件"),
    b"%PDF-": ("a PDF document", "PDF 文档"),
}


# --- reading ------------------------------------------------------------------------------------------------------


def _summary(descriptor: dict) -> dict:
    names = [a["name"] for a in descriptor["sensitive_attributes"]]
    return {
        "name": descriptor["name"],
        "description": descriptor["description"],
        "rows": descriptor["rows"],
        "sensitive_attributes": names,
        "default_sensitive": list(descriptor.get("default_sensitive") or names),
    }


def _uploads(session: Session) -> list[ReferenceDataset]:
    return list(session.exec(select(ReferenceDataset).order_by(ReferenceDataset.name)))


def _library(taken: set[str]) -> list[dict]:
    """The shipped library's summaries, but for a name an upload holds (the upload wins: see load_for_audit)."""
    return [d for d in reference.list_datasets() if d["name"] not in taken]


def all_datasets(session: Session) -> list[dict]:
    """The data sets a new audit may use: the shipped library and the active uploads, sorted by name.

    Each is ``{name, description, rows, sensitive_attributes, default_sensitive, origin}`` with ``origin``
    ``"library"`` or ``"uploaded"``; never a row of data. Retired uploads are left out.
    """
    uploads = _uploads(session)
    items = [{k: d[k] for k in SUMMARY_KEYS} | {"origin": LIBRARY} for d in _library({r.name for r in uploads})]
    items += [_summary(r.descriptor) | {"origin": UPLOADED} for r in uploads if r.active]
    return sorted(items, key=lambda d: d["name"])


def describe(session: Session, record: ReferenceDataset) -> dict:
    """An upload as administrators see it: the summary, origin, version, licence, source, format, sha256, whether
    it is active, who uploaded it and when, and when it was retired."""
    uploader = session.get(User, record.uploaded_by_id)
    descriptor = record.descriptor
    return (
        _summary(descriptor)
        | {"origin": UPLOADED}
        | {k: descriptor.get(k, "") for k in ("version", "licence", "source", "format")}
        | {
            "sha256": record.sha256,
            "active": record.active,
            "uploaded_by": uploader.username if uploader is not None else None,
            "uploaded_at": record.uploaded_at,
            "retired_at": record.retired_at,
        }
    )


def admin_listing(session: Session) -> list[dict]:
    """Every data set, for the administrators' page: the shipped library and every upload, retired ones included
    (shapes as :func:`describe`; a shipped one has no uploader), sorted by name."""
    uploads = _uploads(session)
    items = [
        {k: d[k] for k in (*SUMMARY_KEYS, "version", "licence", "source", "format", "sha256")}
        | {"origin": LIBRARY, "active": True, "uploaded_by": None, "uploaded_at": None, "retired_at": None}
        for d in _library({r.name for r in uploads})
    ]
    items += [describe(session, r) for r in uploads]
    return sorted(items, key=lambda d: d["name"])


def _find(session: Session, name: str) -> ReferenceDataset | None:
    return session.exec(select(ReferenceDataset).where(ReferenceDataset.name == name)).first()


def load_for_audit(
    session_or_engine: Session | Engine, content: LocalContentStore, name: str
) -> reference.ReferenceData:
    """Load the data set called ``name`` for an audit, uploaded (retired ones too: old audit jobs still resolve
    them) or shipped. An upload is found first: its record pins the bytes by sha256, so every job that named it
    reads the same data even if a later release ships a data set of the same name.

    Raises :class:`audits.reference.DatasetError` for an unknown name or a file that no longer loads.
    """
    if isinstance(session_or_engine, Session):
        record = _find(session_or_engine, name)
        found = (record.sha256, record.descriptor) if record is not None else None
    else:
        with Session(session_or_engine) as session:
            record = _find(session, name)
            found = (record.sha256, record.descriptor) if record is not None else None
    if found is None:
        return reference.load(name)
    sha256, descriptor = found
    return reference.load_file(content.path(sha256), descriptor, file_name=descriptor.get("file"))


# --- uploading ----------------------------------------------------------------------------------------------------


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_descriptor(raw: bytes | str | None) -> Any:
    """The descriptor part of an upload, parsed as JSON. Raises Unprocessable (at ``/descriptor``) when it is
    missing, not UTF-8 or not JSON."""
    if raw is None or not raw.strip():
        raise Unprocessable(
            "Send the data set's descriptor (a JSON file) as the part named descriptor.",
            code="missing_descriptor",
            pointer=DESCRIPTOR,
            extra={"detail_zh": "请上传数据集的描述文件（JSON 文件）。"},
        )
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        problem = "it is nested too deeply"
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    except ValueError as exc:
        problem = str(exc)
    raise Unprocessable(
        f"The descriptor is not valid JSON: {problem}.",
        code="descriptor_not_json",
        pointer=DESCRIPTOR,
        extra={"detail_zh": f"描述文件不是有效的 JSON：{problem}。"},
    )


def _failed(exc: reference.DatasetError, *, code: str) -> ValidationFailed:
    """The engine's refusal as field errors: its descriptor pointers under /descriptor, or /data for the file."""
    pointers = [DESCRIPTOR + p for p in exc.pointers] or [DATA]
    message = str(exc)
    return ValidationFailed(
        message,
        code=code,
        errors=[FieldError(p, "dataset", message, f"参考数据集无法使用：{message}") for p in dict.fromkeys(pointers)],
    )


def _data_error(message: str, message_zh: str, *, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(DATA, "format", message, message_zh)])


def check_descriptor(descriptor: Any) -> dict:
    """Return ``descriptor`` if it is a usable descriptor; raise ValidationFailed naming every field under
    ``/descriptor`` (the schema first, then the engine's rules: columns, label, attributes, bins)."""
    errors = validation.validate("reference-dataset", descriptor, pointer_prefix=DESCRIPTOR)
    if errors:
        raise ValidationFailed(
            "The descriptor does not follow the reference data set schema.", code="invalid_descriptor", errors=errors
        )
    try:
        reference.check_descriptor(descriptor)
    except reference.DatasetError as exc:
        raise _failed(exc, code="invalid_descriptor") from None
    return descriptor


def _library_names() -> set[str]:
    return {d["name"] for d in reference.list_datasets()}


def _require_free_name(session: Session, name: str) -> None:
    if name in _library_names():
        raise Conflict(
            f"The name {name!r} belongs to a data set of the engine's shipped library; choose another name.",
            code="dataset_name_taken",
            pointer=f"{DESCRIPTOR}/name",
            extra={"detail_zh": f"名称“{name}”已被系统自带的参考数据集使用，请换一个名称。"},
        )
    if _find(session, name) is not None:
        raise Conflict(
            f"The name {name!r} is already used by an uploaded data set (names are never reused, even once retired, "
            "so that old audits keep pointing at their data); choose another name.",
            code="dataset_name_taken",
            pointer=f"{DESCRIPTOR}/name",
            extra={"detail_zh": f"名称“{name}”已被已上传的参考数据集使用（停用后也不复用），请换一个名称。"},
        )


def _cell_bytes(physical_type: str) -> int:
    """What one cell of a Parquet column takes in memory once read, at least: 8 bytes for a number, more for text
    (a Python string object is some 50 bytes before its characters)."""
    return 64 if physical_type in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY") else 8


def _sniff(path: Path, descriptor: dict, max_bytes: int) -> None:
    """Refuse a file that is not of its descriptor's format before any parser sees it."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        handle.seek(max(0, size - len(PARQUET_MAGIC)))
        tail = handle.read(len(PARQUET_MAGIC))
    if descriptor["format"] == "parquet":
        if size < 3 * len(PARQUET_MAGIC) or not head.startswith(PARQUET_MAGIC) or tail != PARQUET_MAGIC:
            raise _data_error(
                "The data file is not a Parquet file (it does not begin and end with PAR1), "
                "but its descriptor's format is parquet.",
                "数据文件不是 Parquet 文件（未以 PAR1 开头和结尾），而描述文件声明的格式为 parquet。",
                code="not_parquet",
            )
        try:
            metadata = pq.read_metadata(path)
            unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
            cell = sum(_cell_bytes(metadata.schema.column(i).physical_type) for i in range(metadata.num_columns))
        except Exception:  # pyarrow raises many kinds of error for a damaged footer
            raise _data_error(
                "The Parquet file's metadata cannot be read; the file is damaged.",
                "无法读取 Parquet 文件的元数据，文件已损坏。",
                code="not_parquet",
            ) from None
        if metadata.num_rows != descriptor["rows"]:  # before anything is unpacked: rows cost memory however encoded
            raise _failed(
                reference.DatasetError(
                    f"The data file {descriptor['file']} has {metadata.num_rows} rows but its descriptor says "
                    f"{descriptor['rows']}.",
                    ["/rows"],
                ),
                code="dataset_does_not_load",
            )
        # A long run of one value is stored in a few bytes (dictionary and run-length encoding) whatever the sizes
        # the file declares; what the audit holds in memory is at least a machine word a cell (more for text).
        unpacked = max(unpacked, metadata.num_rows * cell)
        if unpacked > UNPACKED_FACTOR * max_bytes:
            raise _data_error(
                f"The Parquet file unpacks to {unpacked} bytes, more than the limit of {UNPACKED_FACTOR * max_bytes}.",
                f"Parquet 文件解压后为 {unpacked} 字节，超过 {UNPACKED_FACTOR * max_bytes} 字节的上限。",
                code="dataset_too_large",
            )
        return
    for magic, (what, what_zh) in BINARY_SIGNATURES.items():
        if head.startswith(magic):
            raise _data_error(
                f"The data file is {what}, not delimited text as its descriptor's format (csv) says.",
                f"数据文件是{what_zh}，而不是描述文件所声明的 CSV 文本。",
                code="not_csv",
            )
    if b"\x00" in head:
        raise _data_error(
            "The data file holds binary data, not delimited text as its descriptor's format (csv) says.",
            "数据文件含有二进制内容，而不是描述文件所声明的 CSV 文本。",
            code="not_csv",
        )


def upload(
    *,
    session: Session,
    content: ContentStore,
    actor: Actor,
    descriptor: Any,
    data_stream: BinaryIO | None,
    max_bytes: int,
) -> ReferenceDataset:
    """Add a reference data set: ``descriptor`` (parsed JSON) and the data file read from ``data_stream``.

    Checks, in order: the actor is an administrator (Forbidden); the descriptor (ValidationFailed, pointers under
    ``/descriptor``); its name is free in the shipped library and among uploads, retired ones included (Conflict,
    ``/descriptor/name``); the file (PayloadTooLarge past ``max_bytes``, or ValidationFailed: not of the declared
    format, sha256 not the descriptor's, columns, rows, label or attributes that do not fit; at ``/data`` or the
    descriptor field at fault). Only then are the file and the record kept; the record joins the caller's
    transaction, which commits once.
    """
    authz.require_admin(actor)
    check_descriptor(descriptor)
    _require_free_name(session, descriptor["name"])
    if data_stream is None:
        raise Unprocessable(
            "Send the data file (CSV or Parquet) as the part named data.",
            code="missing_data",
            pointer=DATA,
            extra={"detail_zh": "请上传数据文件（CSV 或 Parquet）。"},
        )
    loaded: list[reference.ReferenceData] = []

    def vet(path: Path) -> None:
        _sniff(path, descriptor, max_bytes)
        try:
            loaded.append(reference.load_file(path, descriptor, file_name=descriptor["file"]))
        except reference.DatasetError as exc:
            raise _failed(exc, code="dataset_does_not_load") from None

    try:
        stored = storage.store(
            session=session,
            content=content,
            stream=data_stream,
            media_type=MEDIA_TYPES[descriptor["format"]],
            max_bytes=max_bytes,
            check=vet,
        )
    except PayloadTooLarge:
        raise data_too_large(max_bytes) from None
    record = ReferenceDataset(
        name=descriptor["name"],
        descriptor=descriptor,
        sha256=stored.sha256,
        rows=loaded[0].rows,
        uploaded_by_id=actor.user_id,
    )
    session.add(record)
    session.flush()
    return record


def retire(*, session: Session, actor: Actor, name: str) -> ReferenceDataset:
    """Hide an uploaded data set from new audits (audits that used it still read it); retiring twice is harmless.

    Raises Forbidden (not an administrator), Conflict (a shipped data set: it comes and goes with the engine) or
    NotFound (no such upload).
    """
    authz.require_admin(actor)
    record = _find(session, name)
    if record is None:
        if name in _library_names():
            raise Conflict(
                f"{name!r} is a data set of the engine's shipped library; only uploaded data sets can be retired.",
                code="library_dataset",
            )
        raise NotFound(f"There is no uploaded reference data set named {name!r}.", code="dataset_not_found")
    if record.active:
        record.active = False
        record.retired_at = utcnow()
        record.retired_by_id = actor.user_id
        session.add(record)
        session.flush()
    return record
