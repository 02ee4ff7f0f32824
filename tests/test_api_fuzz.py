"""Hostile input against the REST API: schemathesis generates requests for every operation the app's own
/api/v1/openapi.json describes — valid ones and deliberately broken ones — as the public and with a token of each
role, and checks every answer: never a 5xx, a status code the document lists, a content type it lists for that
status, and a body that conforms to the documented schema (problem+json included).

The published document refers to the JSON Schemas by their URLs (``/schemas/filing.json``). schemathesis cannot
fetch those from an in-process app, so the fixture fetches each one from the app itself and bundles it into the
document under ``x-bundled-schemas``; the references are rewritten to the schemas' own ``$id`` (which the schemas
also use between themselves). What is tested is therefore exactly what the app serves.

SQLite only, a fixed number of examples per operation and derandomized generation: CI sees the same requests every
run. The database holds filings of both cities in several states, so identifiers and lifecycle steps hit real rows.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry import create_app

pytestmark = pytest.mark.slow

CALLERS = {"public": None, "city": "zhengzhou", "reviewer": "reviewer1", "admin": "admin"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SEEDED_STATES = ("draft", "submitted", "under_review", "changes_requested", "approved", "rejected")


@pytest.fixture(params=list(CALLERS))
def caller(request, app, token_for) -> dict:
    """The headers of one caller: none for the public, else a fresh bearer token of that role's account."""
    username = CALLERS[request.param]
    return {"Authorization": f"Bearer {token_for(username)}"} if username else {}


def bundled_document(client) -> dict:
    """The app's OpenAPI document with every ``/schemas/<name>.json`` reference resolved from the app itself."""
    document = client.get("/api/v1/openapi.json").get_json()
    published = {}
    for url in document["x-json-schemas"].values():
        response = client.get(url)
        assert response.status_code == 200, url
        published[url] = response.get_json()

    def rewrite(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.partition("#")[0] in published:
                url, hash_, fragment = ref.partition("#")
                node = {**node, "$ref": published[url]["$id"] + hash_ + fragment}
            return {key: rewrite(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rewrite(value) for value in node]
        return node

    bundled = rewrite(document)
    bundled["x-bundled-schemas"] = {schema["$id"]: schema for schema in published.values()}
    return bundled


def _served_document() -> dict:
    """The document as the app serves it (a throwaway app on an in-memory database: nothing is read from it)."""
    app = create_app({"INSTANCE_PATH": "/tmp/registry-api-fuzz", "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    return bundled_document(app.test_client())


schema = schemathesis.openapi.from_dict(
    _served_document(),
    config=schemathesis.Config.from_dict(
        {"generation": {"max-examples": 25, "deterministic": True, "database": "none"}}
    ),
)


@pytest.fixture
def seeded(app, filing_in) -> None:
    """Filings of both cities in several states, so identifiers, lifecycle steps and lists hit real rows."""
    for state in SEEDED_STATES:
        filing_in(state)
    filing_in("submitted", city_user="luoyang")


@schema.parametrize()
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the fuzzing is heavy and about HTTP
@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_documented_contract(case, app, seeded, caller):
    case.call_and_validate(app=app, headers=caller, checks=CHECKS)


def test_the_fuzzed_document_is_the_one_the_app_serves(app):
    served = bundled_document(app.test_client())
    assert served == schema.raw_schema


def test_every_operation_documents_its_errors_as_problem_json():
    components = schema.raw_schema["components"]["responses"]
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            assert {"400", "404", "422", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    resolved = components[response["$ref"].rsplit("/", 1)[-1]] if "$ref" in response else response
                    assert list(resolved["content"]) == ["application/problem+json"], (method, path, status)


# What the fuzzing found, kept as plain examples (on SQLite and PostgreSQL: PostgreSQL's INTEGER is narrower).

HUGE = "16821855342918836306095266273951744"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"/api/v1/filings/{HUGE}"),
        ("PATCH", f"/api/v1/filings/{HUGE}"),
        ("POST", f"/api/v1/filings/{HUGE}/comments"),
        ("POST", f"/api/v1/filings/{HUGE}/actions/suspend"),
        ("POST", "/api/v1/filings/2147483648/decisions"),
        ("GET", "/api/v1/decisions/2147483648"),
        ("GET", f"/api/v1/audits/{HUGE}"),
        ("POST", f"/api/v1/notifications/{HUGE}/read"),
        ("GET", f"/api/v1/log/entries/{HUGE}/proof"),
        ("GET", "/api/v1/filings/2147483647"),  # the largest identifier: simply not there
    ],
)
def test_an_identifier_beyond_any_column_is_a_404_problem(api, filing_in, method, url):
    filing_in("approved")
    response = api("reviewer1").open(method, url, json={"body": "x", "reason": "x", "outcome": "approved"})
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"


def test_a_filing_page_with_a_huge_identifier_is_not_found(browser_as):
    assert browser_as("reviewer1").get(f"/filings/{HUGE}").status_code == 404


@pytest.mark.parametrize("url", [f"/api/v1/filings?page={HUGE}", f"/api/v1/notifications?unread=true&page={HUGE}"])
def test_a_huge_page_number_is_refused_naming_the_parameter(api, url):
    response = api("zhengzhou").get(url)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/query/page"


def test_there_is_no_consistency_proof_from_the_empty_tree(api, filing_in):
    filing_in("approved")
    public = api(None)
    assert len(public.get("/api/v1/log/entries").get_json()) >= 1
    response = public.get("/api/v1/log/proof/consistency?first=0")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/query/first"
    same = public.get("/api/v1/log/proof/consistency?first=0&second=0")
    assert same.status_code == 200
    assert same.get_json()["hashes"] == []
