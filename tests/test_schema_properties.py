"""Property tests for every JSON Schema in ``schemas/`` (parametrized over the directory, so a new schema is covered
as soon as its file exists — and fails here until it is registered in ``schemas.NAMES``).

For each schema, instances are generated from the schema itself:

- valid ones must (a) validate with jsonschema (Draft 2020-12, its format checker) and with the app's own validator
  (``schemas.validation``, which checks ``date``, ``date-time`` and ``email`` strictly), and (b) where the app reads
  that kind of document, be accepted by it or refused as a 4xx problem naming JSON Pointers — never an exception;
- mutated (invalid) ones must be refused by the validator with pointers that name a real place in the instance, and
  by the app's reader with those pointers.

The readers: filing, technical document and test report → ``POST /api/v1/filings`` as a city team (and what is
filed reads back unchanged); audit policy → ``audits.policy.from_document`` and the re-audit schedule built on
it; reference data set descriptor → ``POST /api/v1/reference-datasets`` with a data file made to fit it;
decision-log entry → its RFC 8785 canonical leaf, parsed back; library entry and audit report → the library's
CSV of an entry. The decision document has no reader in the app (it is written, never read): validator only.

Generation: hypothesis-jsonschema 0.23.1 (the latest release) cannot generate any object with the Hypothesis this
project runs (6.170: ``hypothesis.internal.conjecture.utils.many`` lost the ``more()`` its object strategy calls;
every schema here is an object). So instances come from schemathesis's JSON Schema engine (a maintained fork of
hypothesis-jsonschema) through its public API: each schema is the request body of a one-operation OpenAPI document;
``GenerationMode.POSITIVE`` gives valid instances and ``GenerationMode.NEGATIVE`` mutated ones. Cross-file
``$ref``s (``urn:algorithm-registry:schema:…``) resolve to the schemas embedded in that document by their ``$id``.
Bounded: a fixed number of examples per schema, derandomized, no example database; API parts on SQLite only.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import pathlib
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, event, given, settings
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode

import schemas
from audits import policy as policies
from registry.audit_jobs import schedule
from registry.ledger import canonical, merkle
from registry.library import opendata
from schemas import validation

SCHEMA_DIR = pathlib.Path(schemas.__file__).resolve().parent
NAMES = sorted(path.stem for path in SCHEMA_DIR.glob("*.json"))
DOCUMENTS = {name: json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8")) for name in NAMES}
HEAVY = {"audit-report": 10, "library-entry": 8}  # 50 and 25 kB schemas: each example is large and slow to draw
EXAMPLES = 25
DRAFT_IGNORED = {"required", "minItems"}  # a draft may be incomplete (schemas.validation.validate_draft)


def bounded(name: str) -> settings:
    """Hypothesis settings for schema ``name``: a fixed number of examples, reproducible, no example database."""
    return settings(
        max_examples=HEAVY.get(name, EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


def instances(name: str, mode: GenerationMode):
    """Instances of schema ``name`` (valid for POSITIVE, mutated to be invalid for NEGATIVE)."""
    document = {
        "openapi": "3.1.0",
        "info": {"title": name, "version": "1"},
        "paths": {
            "/instance": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": DOCUMENTS[name]["$id"]}}},
                    },
                    "responses": {"200": {"description": "accepted"}},
                }
            }
        },
        "x-bundled-schemas": {schema["$id"]: schema for schema in DOCUMENTS.values()},
    }
    operation = schemathesis.openapi.from_dict(document)["/instance"]["POST"]
    # Negative generation also makes raw byte payloads (a broken request body): not an instance of anything here.
    return operation.as_strategy(mode).map(lambda case: case.body).filter(lambda body: not isinstance(body, bytes))


def jsonschema_validator(name: str) -> Draft202012Validator:
    """A plain jsonschema Draft 2020-12 validator with its own format checker; other schemas found by ``$id``."""
    registry = Registry().with_resources(
        (schema["$id"], DRAFT202012.create_resource(schema)) for schema in DOCUMENTS.values()
    )
    return Draft202012Validator(DOCUMENTS[name], registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def resolves(instance, pointer: str) -> bool:
    """Whether the RFC 6901 ``pointer`` names a value inside ``instance``."""
    node = instance
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def names_a_place(instance, error) -> bool:
    """A missing property is named where it should be (its parent exists); any other error names the value."""
    if error.keyword == "required":
        return resolves(instance, error.pointer.rsplit("/", 1)[0])
    return resolves(instance, error.pointer)


def problem_pointers(response) -> set[str]:
    assert response.content_type == "application/problem+json", response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["status"] == response.status_code
    return {error["pointer"] for error in body.get("errors", [])}


def test_every_schema_file_is_registered():
    assert NAMES == sorted(schemas.NAMES)


# --- (a) valid instances are valid, (c) mutated ones are refused with pointers: every schema ---------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_generated_instances_validate_with_jsonschema_and_the_app(name):
    validator = jsonschema_validator(name)

    @bounded(name)
    @given(instance=instances(name, GenerationMode.POSITIVE))
    def check(instance):
        assert [e.message for e in validator.iter_errors(instance)] == []
        assert validation.validate(name, instance) == []

    check()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_mutated_instances_are_refused_naming_real_places(name):
    validator = jsonschema_validator(name)

    @bounded(name)
    @given(instance=instances(name, GenerationMode.NEGATIVE))
    def check(instance):
        assume(not validator.is_valid(instance))
        errors = validation.validate(name, instance)
        assert errors, instance
        for error in errors:
            assert error.pointer == "" or error.pointer.startswith("/")
            assert names_a_place(instance, error), (error.pointer, error.keyword)

    check()


# --- (b) the app's readers: filing, technical document, test report → the filing API ------------------------------


def _filing_body(name: str, instance, documents) -> tuple[object, str]:
    """The request body that carries ``instance``, and the pointer under which it sits in that body."""
    if name == "filing":
        return instance, ""
    if name == "technical-document":
        return {"technical_document": instance}, "/technical_document"
    return {"technical_document": documents.technical_document, "test_report": instance}, "/test_report"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", ["filing", "technical-document", "test-report"])
def test_valid_documents_are_filed_and_read_back_unchanged(api, documents, name):
    city = api("zhengzhou")

    @bounded(name)
    @given(instance=instances(name, GenerationMode.POSITIVE))
    def check(instance):
        body, _ = _filing_body(name, instance, documents)
        filed = body.get("technical_document", {})
        response = city.post("/api/v1/filings", json=body)
        event(f"status {response.status_code}")
        if response.status_code == 201:
            stored = city.get(response.headers["Location"]).get_json()
            expected = {**filed, "city_code": "410100"}
            assert stored["technical_document"] == expected
            assert stored["test_report"] == body.get("test_report")
            return
        # The only refusals a schema-valid filing may get: another city's code, or a filing to supersede that is
        # not one of this city's decided filings.
        assert response.status_code == 422, response.get_data(as_text=True)[:500]
        pointers = problem_pointers(response)
        allowed = set()
        if filed.get("city_code") not in (None, "410100"):
            allowed.add("/technical_document/city_code")
        if body.get("supersedes_filing_id") is not None:
            allowed.add("/supersedes_filing_id")
        assert pointers and pointers <= allowed, pointers

    check()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", ["filing", "technical-document", "test-report"])
def test_invalid_documents_are_refused_naming_the_fields(api, documents, name):
    city = api("zhengzhou")
    validator = jsonschema_validator(name)

    @bounded(name)
    @given(instance=instances(name, GenerationMode.NEGATIVE))
    def check(instance):
        assume(not validator.is_valid(instance))
        body, prefix = _filing_body(name, instance, documents)
        response = city.post("/api/v1/filings", json=body)
        errors = validation.validate(name, instance, pointer_prefix=prefix)
        if response.status_code == 201:  # a draft may lack what the finished filing needs, and nothing else
            assert {e.keyword for e in errors} <= DRAFT_IGNORED, errors
            assert all(e.pointer.count("/") > 1 or name != "filing" for e in errors), errors
            return
        assert response.status_code in (400, 422), response.get_data(as_text=True)[:500]
        pointers = problem_pointers(response)
        assert pointers, "a refusal names the fields at fault"
        assert all(resolves(body, p) or resolves(body, p.rsplit("/", 1)[0]) for p in pointers), pointers

    check()


# --- audit policy → the policy loader and the re-audit schedule built on it -----------------------------------------


@pytest.mark.slow
def test_valid_policies_load_and_drive_the_reaudit_schedule():
    decided = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)

    @bounded("audit-policy")
    @given(document=instances("audit-policy", GenerationMode.POSITIVE))
    def check(document):
        policy = policies.from_document(document)
        assert 0 < policy.level < 1 and policy.replicates >= 0
        for tier in policies.TIERS:
            due = schedule.next_due(decided_at=decided, tier=tier, policy=policy)
            assert due is None or due > decided
            assert schedule.grace_period(tier=tier, policy=policy).total_seconds() >= 0

    check()


@pytest.mark.slow
def test_invalid_policies_are_refused_naming_every_field():
    validator = jsonschema_validator("audit-policy")

    @bounded("audit-policy")
    @given(document=instances("audit-policy", GenerationMode.NEGATIVE))
    def check(document):
        assume(not validator.is_valid(document))
        with pytest.raises(policies.PolicyError) as refused:
            policies.from_document(document)
        for error in validation.validate("audit-policy", document):
            assert f"{error.pointer or '/'}: " in str(refused.value)

    check()


# --- reference data set descriptor → the upload API, with a data file made to fit the descriptor -----------------


LABEL, CATEGORY, NUMBER = "fit_label", "fit_category", "fit_number"


def _fitted_upload(descriptor: dict) -> tuple[dict, bytes]:
    """The descriptor made to agree with itself, and a small data file that fits it, so the upload reaches the
    parsers: three columns are added (a label, a categorical and a numeric one) and the label and every attribute
    refer to them (bins to the numeric one, code maps and plain attributes to the categorical one); names are made
    unique, bins increasing with a label each, ``default_sensitive`` names attributes; ``rows`` and ``sha256``
    describe the file. The rest — names, edges, labels, maps, CSV options, format — is as generated.
    """
    fitted = copy.deepcopy(descriptor)
    columns = [
        *fitted["columns"],
        *({"name": n, "type": t} for n, t in ((LABEL, "categorical"), (CATEGORY, "categorical"), (NUMBER, "numeric"))),
    ]
    seen: set[str] = set()
    for index, column in enumerate(columns):  # unique names: the generated ones may repeat
        if column["name"] in seen:
            column["name"] = f"{column['name']}_{index}"
        seen.add(column["name"])
    fitted["columns"] = columns
    fitted["label"]["column"] = LABEL
    names: list[str] = []
    number, categories = "0", []
    for index, attribute in enumerate(fitted["sensitive_attributes"]):
        if attribute["name"] in names:
            attribute["name"] = f"{attribute['name']}_{index}"
        names.append(attribute["name"])
        derived = attribute.get("derived")
        if derived is None:
            attribute["column"] = CATEGORY
        elif "bins" in derived:
            derived["from"] = NUMBER
            edges = sorted(set(derived["bins"])) if len(set(derived["bins"])) > 1 else [0, 10]
            derived["bins"] = edges
            derived["labels"] = [*derived["labels"], *(f"bin{i}" for i in range(len(edges)))][: len(edges) - 1]
            number = repr(float(edges[0]))  # in the first bin of the first binned attribute
        else:
            derived["from"] = CATEGORY
            categories = categories or list(derived["map"])  # codes the first code map knows
    if "default_sensitive" in fitted:
        fitted["default_sensitive"] = [n for n in dict.fromkeys(fitted["default_sensitive"]) if n in names]
        if not fitted["default_sensitive"]:
            del fitted["default_sensitive"]
    rows = []
    for row in range(4):
        values = {
            LABEL: str(fitted["label"]["favourable_value"]) if row % 2 == 0 else "other",
            CATEGORY: (categories or list("abcd"))[row % len(categories or "abcd")],
        }
        values[NUMBER] = number
        rows.append([values.get(c["name"], str(row) if c["type"] == "numeric" else "xyzw"[row]) for c in columns])
    if fitted["format"] == "parquet":
        import pandas as pd

        frame = pd.DataFrame(rows, columns=[c["name"] for c in columns])
        for column in columns:
            if column["type"] == "numeric":
                frame[column["name"]] = frame[column["name"]].astype(float)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    else:
        options = fitted.get("csv") or {}
        out = io.StringIO()
        writer = csv.writer(out, delimiter=options.get("delimiter", ","), lineterminator="\n")
        out.write("# skipped\n" * int(options.get("skip_rows", 0)))
        if options.get("header", True):
            writer.writerow([column["name"] for column in columns])
        writer.writerows(rows)
        data = out.getvalue().encode(options.get("encoding", "utf-8"), errors="replace")
    fitted.update(rows=4, sha256=hashlib.sha256(data).hexdigest())
    return fitted, data


def _upload(admin, descriptor, data: bytes):
    return admin.post(
        "/api/v1/reference-datasets",
        data={"descriptor": json.dumps(descriptor, ensure_ascii=False), "data": (io.BytesIO(data), "data.csv")},
        content_type="multipart/form-data",
    )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_valid_descriptors_are_uploaded_or_refused_naming_the_field(api):
    admin = api("admin")

    @bounded("reference-dataset")
    @given(descriptor=instances("reference-dataset", GenerationMode.POSITIVE))
    def check(descriptor):
        fitted, data = _fitted_upload(descriptor)
        response = _upload(admin, fitted, data)
        event(
            f"status {response.status_code}: {sorted(problem_pointers(response)) if response.status_code >= 400 else ''}"
        )
        if response.status_code == 201:
            assert response.get_json()["name"] == fitted["name"]
            return
        # What the schema cannot say: bins that do not increase or labels that do not match them, attribute names
        # used twice, a name already taken (409), a file the parsers refuse (values outside the bins, options that
        # do not read it).
        assert response.status_code in (409, 422), response.get_data(as_text=True)[:500]
        pointers = problem_pointers(response)
        assert pointers, "a refusal names the field at fault"
        for pointer in pointers:
            assert pointer == "/data" or resolves({"descriptor": fitted}, pointer), pointer

    check()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_invalid_descriptors_are_refused_naming_every_field(api):
    admin = api("admin")
    validator = jsonschema_validator("reference-dataset")

    @bounded("reference-dataset")
    @given(descriptor=instances("reference-dataset", GenerationMode.NEGATIVE))
    def check(descriptor):
        assume(not validator.is_valid(descriptor))
        response = _upload(admin, descriptor, b"a,b\n1,2\n")
        assert response.status_code == 422, response.get_data(as_text=True)[:500]
        expected = {
            e.pointer for e in validation.validate("reference-dataset", descriptor, pointer_prefix="/descriptor")
        }
        assert problem_pointers(response) == expected

    check()


# --- decision-log entry → its canonical leaf, parsed back ------------------------------------------------------------


@pytest.mark.slow
def test_valid_log_entries_make_canonical_leaves_that_parse_back_to_themselves():
    @bounded("decision-log-entry")
    @given(entry=instances("decision-log-entry", GenerationMode.POSITIVE))
    def check(entry):
        try:
            leaf = canonical.canonical_json(entry)
        except canonical.CanonicalJSONError as refused:  # beyond I-JSON (e.g. an integer past 2^53): named
            assert resolves(entry, refused.pointer), refused.pointer
            return
        parsed = json.loads(leaf.decode("utf-8"))
        assert parsed == entry
        assert canonical.canonical_json(parsed) == leaf  # canonical: one entry, one byte string
        assert validation.validate("decision-log-entry", parsed) == []
        assert len(merkle.leaf_hash(leaf)) == 32

    check()


# --- library entry and audit report → the library's CSV of an entry ----------------------------------------------


def _csv_rows(text: str) -> list[list[str]]:
    assert text.startswith(opendata.BOM)
    rows = list(csv.reader(io.StringIO(text[len(opendata.BOM) :], newline="")))
    assert rows[0] == [name for name, _ in opendata.ENTRY_CSV_COLUMNS]
    assert all(len(row) == len(rows[0]) for row in rows)
    return rows


@pytest.mark.slow
def test_valid_library_entries_serialise_as_csv():
    @bounded("library-entry")
    @given(entry=instances("library-entry", GenerationMode.POSITIVE))
    def check(entry):
        rows = _csv_rows(opendata.entry_csv(entry))
        assert len(rows) > 1

    check()


@pytest.mark.slow
def test_valid_audit_reports_serialise_as_csv_rows_of_an_entry():
    entry = {"city": {"code": "410100", "name_zh": "郑州市", "name_en": "Zhengzhou"}, "audits": []}

    @bounded("audit-report")
    @given(report=instances("audit-report", GenerationMode.POSITIVE))
    def check(report):
        audit = {"id": 1, "verdict": report.get("verdict"), "report": report}
        rows = _csv_rows(opendata.entry_csv({**entry, "audits": [audit]}))
        assert any(row[0] == "audit" for row in rows)

    check()


@pytest.mark.parametrize("delimiter", ["é", "\n"])
def test_a_delimiter_the_csv_parser_cannot_split_on_is_refused_naming_it(api, delimiter):
    """Found by the property above: a one-character delimiter that is not one byte (or is a line end) was a 500."""
    descriptor = json.loads((pathlib.Path(policies.__file__).parent / "datasets" / "german-credit.json").read_text())
    descriptor["name"] = "german-credit-copy"
    descriptor["csv"]["delimiter"] = delimiter
    response = _upload(api("admin"), descriptor, b"a,b\n1,2\n")
    assert response.status_code == 422
    assert problem_pointers(response) == {"/descriptor/csv/delimiter"}
