"""Hostile uploads: zip bombs, huge and truncated files, polyglots, ONNX models that point at files on the server,
and file names that try to climb out of the store. Each is refused with a 4xx problem naming the field (or a page
saying why), never a 500, and leaves nothing behind: no row, no file in the content store or its incoming/ folder,
nothing anywhere else on disk. What is accepted is kept under its sha256 only, and shown back under a plain name.

Supporting documents (PDF) are kept for the record and are never served back by any route (the walk at the end
proves it), so a PDF that is also HTML, a ZIP or carries JavaScript cannot be rendered by a browser from this site;
the PDFs the registry serves (decision letters) are its own, sent as application/pdf with nosniff.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import unicodedata
import zipfile
import zlib
from pathlib import Path

import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto
from sqlmodel import Session, func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from registry.demo import tiny_model_bytes
from registry.filings.models import Attachment, Filing
from registry.reference_data import service as reference_service
from registry.reference_data.models import ReferenceDataset
from registry.storage.models import StoredFile
from tests.conftest import csrf_token
from tests.test_reference_uploads import sample  # noqa: F401 (a fixture)
from tests.test_script_injection import live_markup
from tests.test_security_headers import build_world, caller_for, fill, get_routes

MODEL = tiny_model_bytes()
# The many variants of one refusal run on SQLite only (they never reach a write); one of each kind runs on both.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BOMB_BYTES = 64 * 1024 * 1024  # what the bombs unpack to: 64 MiB of zeros, against a 1 MiB model limit


# --- what an upload could leave behind ------------------------------------------------------------------------------


def disk(app) -> set[str]:
    """Every file under the test's folder (the instance, its content store, and around it)."""
    top = Path(app.config["INSTANCE_PATH"]).parent
    return {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()}


def leftovers(app) -> tuple:
    """(attachments, stored files, reference data sets, the filings' model hashes, files on disk)."""
    with Session(app.extensions["registry"].engine) as s:
        return (
            s.exec(select(func.count()).select_from(Attachment)).one(),
            s.exec(select(func.count()).select_from(StoredFile)).one(),
            s.exec(select(func.count()).select_from(ReferenceDataset)).one(),
            sorted((f.id, f.model_sha256 or "") for f in s.exec(select(Filing))),
            disk(app),
        )


def assert_problem(response, status: int | tuple, pointer: str, code: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, f"{response.status_code}: {response.get_data(as_text=True)[:500]}"
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert pointer in [e["pointer"] for e in body.get("errors", [])], body
    if code:
        assert body["type"].endswith(code), body
    return body


def api_upload(client, filing_id: int, data: bytes, name: str = "model.onnx", kind: str = "model"):
    # Encoded in memory: werkzeug's test client spools big bodies to a temporary file it never closes.
    boundary, body = encode_multipart(MultiDict({"kind": kind, "file": FileStorage(io.BytesIO(data), filename=name)}))
    return client.post(
        f"/api/v1/filings/{filing_id}/attachments",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def post_upload(client, descriptor: dict, data: bytes):
    """A reference data set upload (as tests.test_reference_uploads does), encoded in memory."""
    parts = MultiDict(
        {
            "descriptor": FileStorage(io.BytesIO(json.dumps(descriptor).encode()), filename="descriptor.json"),
            "data": FileStorage(io.BytesIO(data), filename=descriptor["file"]),
        }
    )
    boundary, body = encode_multipart(parts)
    return client.post(
        "/api/v1/reference-datasets", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def page_upload(client, filing_id: int, data: bytes, name: str = "model.onnx"):
    token = csrf_token(client.get(f"/filings/{filing_id}").get_data(as_text=True))
    boundary, body = encode_multipart(
        MultiDict({"csrf_token": token, "file": FileStorage(io.BytesIO(data), filename=name)})
    )
    return client.post(
        f"/filings/{filing_id}/attachments", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


# --- hostile models -------------------------------------------------------------------------------------------------


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("model.onnx", "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(BOMB_BYTES // len(block)):
                member.write(block)
    return buffer.getvalue()


def deflate_bomb() -> bytes:
    return zlib.compress(b"\0" * BOMB_BYTES, 9)


def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * BOMB_BYTES, 9)


def external_data_model(location: str) -> bytes:
    """A valid model but for one initializer whose values live in a file named ``location``."""
    model = onnx.load_from_string(MODEL)
    weights = next(t for t in model.graph.initializer if t.name == "W")
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        weights.external_data.add(key=key, value=value)
    return model.SerializeToString()


def model_with_markup() -> bytes:
    """A valid model whose every free text (doc strings, producer, graph name, metadata) is a script payload."""
    model = onnx.load_from_string(MODEL)
    model.doc_string = '<script>alert("xss-doc")</script>'
    model.producer_name = '"><img src=x onerror=alert("xss-producer")>'
    model.producer_version = "</textarea><b id=xss-version>"
    model.graph.doc_string = "<iframe src=javascript:alert(1)>"
    model.graph.input[0].doc_string = "<svg onload=alert(1)>"
    onnx.helper.set_model_props(model, {"author": "<script>alert('xss-meta')</script>"})
    onnx.checker.check_model(model)
    return model.SerializeToString()


HOSTILE_MODELS = {
    # name: (bytes, file name, machine code of the refusal)
    "zip bomb named .onnx": (zip_bomb, "model.onnx", "model_not_onnx"),
    "raw deflate bomb": (deflate_bomb, "model.onnx", "model_not_onnx"),
    "gzip bomb": (gzip_bomb, "model.onnx.gz", "model_not_onnx"),
    "ONNX cut in half": (lambda: MODEL[: len(MODEL) // 2], "model.onnx", None),
    "ONNX cut to its first bytes": (lambda: MODEL[:7], "model.onnx", None),
    "HTML page named .onnx": (lambda: b"<!doctype html><script>alert(1)</script>" + MODEL, "model.onnx", None),
    "ONNX then an HTML page": (lambda: MODEL + b"<html><script>alert(1)</script></html>", "model.onnx", None),
    "external data ../../etc/passwd": (lambda: external_data_model("../../etc/passwd"), "m.onnx", "external_data"),
    "external data /etc/passwd": (lambda: external_data_model("/etc/passwd"), "m.onnx", "model_external_data"),
    "external data C:\\secrets": (lambda: external_data_model("C:\\Windows\\win.ini"), "m.onnx", "external_data"),
}


@SQLITE_ONLY
@pytest.mark.parametrize("case", list(HOSTILE_MODELS))
def test_a_hostile_model_is_refused_through_the_api_and_nothing_is_kept(app, api, filing_in, case):
    make, name, code = HOSTILE_MODELS[case]
    filing_id = filing_in("draft")
    before = leftovers(app)
    response = api_upload(api("zhengzhou"), filing_id, make(), name=name)
    body = assert_problem(response, (413, 415, 422), "/file")
    if code:
        assert code in body["type"], body
    assert "root:" not in response.get_data(as_text=True)  # nothing was read from the named path
    assert leftovers(app) == before


@pytest.mark.parametrize(
    "case", ["zip bomb named .onnx", "ONNX cut in half", "ONNX then an HTML page", "external data ../../etc/passwd"]
)
def test_a_hostile_model_is_refused_on_the_page_and_nothing_is_kept(app, browser_as, filing_in, case):
    make, name, _code = HOSTILE_MODELS[case]
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    before = leftovers(app)
    response = page_upload(client, filing_id, make(), name=name)
    html = response.get_data(as_text=True)
    assert response.status_code in (413, 415, 422), html[:500]
    assert response.mimetype == "text/html" and "ONNX" in html  # the page says what it accepts
    assert "root:" not in html
    assert leftovers(app) == before


def test_external_data_is_refused_end_to_end_and_the_named_file_is_never_opened(app, api, filing_in, monkeypatch):
    """The model check refuses before anything could read the path: prove no file outside the upload is opened."""
    filing_id = filing_in("draft")
    target = Path(app.config["INSTANCE_PATH"]).parent / "outside-secret.bin"
    target.write_bytes(b"SECRET-OUTSIDE" * 4)
    opened: list[str] = []
    real_open = open

    def watching_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watching_open)
    before = leftovers(app)
    for location in (str(target), f"../../{target.name}", f"../{target.name}"):
        response = api_upload(api("zhengzhou"), filing_id, external_data_model(location), name="m.onnx")
        assert_problem(response, 422, "/file", "model_external_data")
        assert "SECRET-OUTSIDE" not in response.get_data(as_text=True)
    assert not [path for path in opened if "outside-secret" in path]
    assert leftovers(app) == before


def test_a_valid_model_full_of_markup_is_kept_and_shown_inert(app, api, browser_as, filing_in):
    filing_id = filing_in("draft")
    response = api_upload(api("zhengzhou"), filing_id, model_with_markup(), name="<img src=x onerror=alert(1)>.onnx")
    assert response.status_code == 201, response.get_json()
    assert response.mimetype == "application/json"  # the name is data here, shown escaped on the pages
    for who in ("zhengzhou", "admin"):
        html = browser_as(who).get(f"/filings/{filing_id}").get_data(as_text=True)
        assert live_markup(html) == [], f"the filing page shows the model's markup live to {who}"


# --- huge: refused by the size the request declares, before its body is read -----------------------------------


class CountingStream(io.RawIOBase):
    """A request body of ``size`` zero bytes that counts how many of them the app reads (the test client seeks to
    measure it, which reads nothing)."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"\0" * n
        self.position += n
        self.read_bytes += n
        return n


@pytest.mark.parametrize("where", ["api-model", "page-model", "api-dataset"])
def test_a_body_over_the_limit_is_a_413_before_it_is_read(app, api, browser_as, filing_in, token_for, where):
    filing_id = filing_in("draft")
    before = leftovers(app)
    size = 64 * 1024 * 1024
    body = CountingStream(size)
    headers = {}
    if where == "api-model":
        url, client = f"/api/v1/filings/{filing_id}/attachments", app.test_client()
        headers["Authorization"] = f"Bearer {token_for('zhengzhou')}"
    elif where == "page-model":
        url, client = f"/filings/{filing_id}/attachments", browser_as("zhengzhou")
    else:
        app.config["MAX_DATASET_BYTES"] = 1024 * 1024
        url, client = "/api/v1/reference-datasets", app.test_client()
        headers["Authorization"] = f"Bearer {token_for('admin')}"
    response = client.post(
        url,
        input_stream=body,
        content_length=size,
        content_type="multipart/form-data; boundary=hostile",
        headers=headers,
    )
    assert response.status_code == 413, response.get_data(as_text=True)[:500]
    if where.startswith("api"):
        assert_problem(response, 413, "/data" if where == "api-dataset" else "/file")
    else:
        assert response.mimetype == "text/html" and "MB" in response.get_data(as_text=True)
    assert body.read_bytes <= 1024 * 1024, f"{body.read_bytes} bytes were read of a body refused by its length"
    assert leftovers(app) == before


def test_a_file_over_its_kinds_limit_is_a_413_naming_the_file(app, api, filing_in):
    filing_id = filing_in("draft")
    app.config["MAX_DOCUMENT_BYTES"] = 1000  # supporting documents may be 10× this through the API
    before = leftovers(app)
    pdf = b"%PDF-1.7\n" + b"%" * 20_000 + b"\n%%EOF\n"
    assert_problem(api_upload(api("zhengzhou"), filing_id, pdf, "doc.pdf", "document"), 413, "/file", "too_large")
    app.config["MAX_MODEL_BYTES"] = len(MODEL) - 1
    assert_problem(api_upload(api("zhengzhou"), filing_id, MODEL), 413, "/file", "too_large")
    assert leftovers(app) == before


# --- supporting documents: truncated, polyglots, scripts ------------------------------------------------------------

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
MARKER = b"HOSTILE-PDF-MARKER"


def _zip_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


ACCEPTED_DOCUMENTS = {
    "PDF with JavaScript": b"%PDF-1.7\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.alert('"
    + MARKER
    + b"'))>>>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
    "PDF that is also HTML": b"%PDF-1.4\n<html><body><script>alert('" + MARKER + b"')</script></body></html>\n%%EOF\n",
    "PDF that is also a ZIP": PDF.replace(b"%%EOF", MARKER + b"\n%%EOF") + _zip_of("x.html", b"<script>1</script>"),
}
REFUSED_DOCUMENTS = {
    "a PDF cut off": (PDF[: len(PDF) // 2], 422, "pdf_truncated"),
    "an HTML page named .pdf": (b"<html><script>alert(1)</script></html>", 415, "not_pdf"),
    "a ZIP named .pdf": (_zip_of("doc.pdf", PDF), 415, "not_pdf"),
    "an empty file": (b"", 415, "not_pdf"),
}


@SQLITE_ONLY
@pytest.mark.parametrize("case", list(REFUSED_DOCUMENTS))
def test_a_truncated_or_disguised_document_is_refused_and_nothing_is_kept(app, api, filing_in, case):
    data, status, code = REFUSED_DOCUMENTS[case]
    filing_id = filing_in("draft")
    before = leftovers(app)
    assert_problem(api_upload(api("zhengzhou"), filing_id, data, "doc.pdf", "document"), status, "/file", code)
    assert leftovers(app) == before


def test_a_polyglot_document_is_kept_for_the_record_but_no_route_ever_serves_it(app, api, browser_as, filing_in):
    """Every GET route of the app, as a caller it admits, with the filing that holds the polyglots: no answer
    carries their bytes, so no browser can be made to render them from this site."""
    values = build_world(app, api, filing_in)
    draft = filing_in("draft")
    for name, data in ACCEPTED_DOCUMENTS.items():
        response = api_upload(api("zhengzhou"), draft, data, f"{name}.pdf", "document")
        assert response.status_code == 201, (name, response.get_json())
        kept = app.extensions["registry"].content.path(response.get_json()["sha256"])
        assert kept.read_bytes() == data  # kept as sent, under its sha256
    values["<int:filing_id>"] = str(draft)
    tokens: dict[str, str] = {}
    browsers: dict = {}
    for rule, endpoint in get_routes(app):
        who = caller_for(app, endpoint)
        url = fill(rule, values)
        if url.startswith("/api/"):
            token = tokens.setdefault(who, api(who).token) if who else None
            response = app.test_client().get(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        else:
            browser = browsers[who] if who in browsers else browsers.setdefault(who, browser_as(who))
            response = browser.get(url)
        assert MARKER not in response.get_data(), f"GET {url} serves an uploaded document's bytes"
        response.close()


# --- names that try to climb out of the store -------------------------------------------------------------------

BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f"}
HOSTILE_NAMES = [
    "../../x.onnx",
    "..\\..\\x.onnx",
    "/etc/cron.d/x.onnx",
    "C:\\Windows\\System32\\x.onnx",
    "x\x00.onnx",
    "x.onnx\x00.html",
    "..",
    ".htaccess",
    "model\u202egnp.onnx",
    "\u2067evil\u2069.onnx",
    "line\r\nbreak.onnx",
    "a" * 5000 + ".onnx",
    "模型" * 300 + ".onnx",
]


def assert_plain_name(name: str) -> None:
    assert name and len(name) <= 255, name
    assert not set(name) & ({"/", "\\", "\x00", "\r", "\n"} | BIDI), repr(name)
    assert not name.startswith("."), repr(name)
    assert all(unicodedata.category(ch)[0] != "C" for ch in name), repr(name)


@SQLITE_ONLY
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n[:24]) for n in HOSTILE_NAMES])
def test_a_hostile_file_name_is_shown_as_a_plain_name_and_nothing_is_written_outside_the_store(
    app, api, filing_in, name
):
    filing_id = filing_in("draft")
    store = app.extensions["registry"].content.root
    top = Path(app.config["INSTANCE_PATH"]).parent
    before = disk(app)
    cwd_before = set(os.listdir(os.getcwd()))
    response = api_upload(api("zhengzhou"), filing_id, MODEL, name=name)
    assert response.status_code in (201, 400, 413, 422), response.get_data(as_text=True)[:300]
    if response.status_code != 201:
        assert response.mimetype == "application/problem+json"
        assert disk(app) == before
        return
    shown = response.get_json()["filename"]
    assert_plain_name(shown)
    new = disk(app) - before
    for path in new:
        assert (top / path).resolve().is_relative_to(store.resolve()), f"{path} written outside the content store"
        assert (top / path).name == hashlib.sha256(MODEL).hexdigest() or (top / path).name.startswith("upload-")
    assert set(os.listdir(os.getcwd())) == cwd_before
    assert not list(top.rglob("x.onnx")) and not list(store.parent.parent.glob("x.onnx"))
    listed = api("zhengzhou").get(f"/api/v1/filings/{filing_id}").get_json()
    assert shown in json.dumps(listed, ensure_ascii=False) or "attachments" not in listed


@pytest.mark.parametrize("name", ["../../x.onnx", "..\\..\\x.onnx", "model\u202egnp.onnx", "<script>x</script>.onnx"])
def test_a_hostile_file_name_on_the_page_is_shown_plain_and_inert(app, browser_as, filing_in, name):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    before = disk(app)
    response = page_upload(client, filing_id, MODEL, name=name)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    html = client.get(f"/filings/{filing_id}").get_data(as_text=True)
    assert live_markup(html) == []
    assert "../" not in html.split("<main", 1)[-1] and "\u202e" not in html
    with Session(app.extensions["registry"].engine) as s:
        shown = s.exec(select(Attachment.filename).where(Attachment.filing_id == filing_id)).all()
    for each in shown:
        assert_plain_name(each)
    store = app.extensions["registry"].content.root.resolve()
    top = Path(app.config["INSTANCE_PATH"]).parent
    assert all((top / p).resolve().is_relative_to(store) for p in disk(app) - before)


# --- reference data sets: Parquet bombs, archives, huge -----------------------------------------------------------


def _parquet(columns: dict[str, pa.Array]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="zstd")
    return buffer.getvalue()


def _dataset_descriptor(sample_descriptor: dict, data: bytes, rows: int, fmt: str = "parquet") -> dict:
    return (
        sample_descriptor
        | {
            "format": fmt,
            "file": f"bomb.{fmt}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": rows,
        }
        | ({} if fmt == "csv" else {"csv": None})
    )


def _constant_columns(rows: int) -> dict[str, pa.Array]:
    """The sample's columns, each one value repeated: a few KB of Parquet that unpacks to hundreds of MB."""
    return {
        "income": pa.repeat(pa.scalar(50, pa.int64()), rows),
        "debt": pa.repeat(pa.scalar(10, pa.int64()), rows),
        "years": pa.repeat(pa.scalar(5, pa.int64()), rows),
        "sex": pa.repeat(pa.scalar("female"), rows),
        "age": pa.repeat(pa.scalar(40, pa.int64()), rows),
        "note": pa.repeat(pa.scalar("n"), rows),
        "decision": pa.repeat(pa.scalar("approved"), rows),
    }


def _without_none(descriptor: dict) -> dict:
    return {k: v for k, v in descriptor.items() if v is not None}


@pytest.fixture
def never_parsed(monkeypatch):
    """Fails the test if the engine is asked to parse the data file (the bomb must be refused before)."""

    def parse(*_args, **_kwargs):
        raise AssertionError("the data file was handed to the parser")

    monkeypatch.setattr(reference_service.reference, "load_file", parse)


def test_a_parquet_whose_rows_unpack_past_the_limit_is_refused_before_it_is_read(app, api, sample, never_parsed):  # noqa: F811
    app.config["MAX_DATASET_BYTES"] = 1024 * 1024
    rows = 3_000_000
    data = _parquet(_constant_columns(rows))
    assert len(data) < 200 * 1024  # a small file …
    before = leftovers(app)
    response = post_upload(api("admin"), _without_none(_dataset_descriptor(sample["descriptor"], data, rows)), data)
    assert_problem(response, 422, "/data", "dataset_too_large")
    assert leftovers(app) == before


def test_a_parquet_with_more_rows_than_its_descriptor_is_refused_before_it_is_read(app, api, sample, never_parsed):  # noqa: F811
    rows = 2_000_000
    data = _parquet(_constant_columns(rows))
    before = leftovers(app)
    descriptor = _without_none(_dataset_descriptor(sample["descriptor"], data, 400))
    response = post_upload(api("admin"), descriptor, data)
    assert_problem(response, 422, "/descriptor/rows")
    assert leftovers(app) == before


def test_a_parquet_with_one_huge_compressed_cell_is_refused(app, api, sample, never_parsed):  # noqa: F811
    app.config["MAX_DATASET_BYTES"] = 1024 * 1024
    columns = _constant_columns(1)
    columns["note"] = pa.array(["n" * (32 * 1024 * 1024)])  # 32 MiB of one letter: some KB compressed
    data = _parquet(columns)
    assert len(data) < 200 * 1024
    before = leftovers(app)
    response = post_upload(api("admin"), _without_none(_dataset_descriptor(sample["descriptor"], data, 1)), data)
    assert_problem(response, 422, "/data", "dataset_too_large")
    assert leftovers(app) == before


@SQLITE_ONLY
@pytest.mark.parametrize("wrapper", ["gzip", "zip", "zlib"])
def test_a_csv_inside_an_archive_is_refused_not_unpacked(app, api, sample, wrapper):  # noqa: F811
    csv = sample["data"] + b"\n".join([b"50,10,5,female,40,n,approved"] * 200_000)
    packed = {
        "gzip": lambda: gzip.compress(csv),
        "zip": lambda: _zip_of("data.csv", csv),
        "zlib": lambda: zlib.compress(csv),
    }[wrapper]()
    descriptor = _dataset_descriptor(sample["descriptor"], packed, 400, fmt="csv")
    before = leftovers(app)
    response = post_upload(api("admin"), _without_none(descriptor), packed)
    assert_problem(response, 422, "/data")
    assert leftovers(app) == before
