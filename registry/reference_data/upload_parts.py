"""Reading an upload request's two parts (the descriptor and the data file), for the page and the API alike."""

from __future__ import annotations

from flask import current_app, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from registry.errors import PayloadTooLarge, UnsupportedMediaType
from registry.reference_data.service import DESCRIPTOR, data_too_large

FORM_OVERHEAD = 1024 * 1024


def data_limit() -> int:
    return int(current_app.config["MAX_DATASET_BYTES"])


def raise_request_limits() -> None:
    """Let this request carry a data file and a descriptor; call before anything reads the form.

    The application-wide cap is sized for models; a data file has a limit of its own (``MAX_DATASET_BYTES``),
    which the service enforces byte by byte while it streams the file.
    """
    document = int(current_app.config["MAX_DOCUMENT_BYTES"])
    request.max_content_length = data_limit() + document + FORM_OVERHEAD
    request.max_form_memory_size = document + FORM_OVERHEAD  # a descriptor sent as a text field


def require_multipart() -> None:
    """Refuse a request that is not multipart/form-data, or whose body is over the limits (before it is read)."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            "Upload as multipart/form-data with the parts descriptor (JSON) and data (CSV or Parquet).",
            code="multipart_required",
        )
    try:
        request.files  # noqa: B018 (parses the form: refused here, by its Content-Length, when it is too large)
    except RequestEntityTooLarge:
        raise data_too_large(data_limit()) from None


def descriptor_part() -> bytes | str | None:
    """The descriptor's bytes: a file part named descriptor, else a text field of that name (None: neither)."""
    limit = int(current_app.config["MAX_DOCUMENT_BYTES"])
    upload = request.files.get("descriptor")
    if upload is not None and upload.filename:
        raw: bytes | str = upload.stream.read(limit + 1)
    else:
        raw = request.form.get("descriptor") or b""
    if len(raw) > limit:
        raise PayloadTooLarge(
            f"The descriptor is larger than the limit of {limit} bytes.",
            code="descriptor_too_large",
            pointer=DESCRIPTOR,
            extra={"detail_zh": f"描述文件超过 {limit} 字节的上限。"},
        )
    return raw or None


def data_part() -> FileStorage | None:
    upload = request.files.get("data")
    return upload if upload is not None and upload.filename else None
