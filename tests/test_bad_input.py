"""Bad input always gets a clear 4xx problem+json naming the field, never a 500, and leaves nothing half-written."""

import copy
import io
import json
import zipfile

import pytest
from sqlmodel import Session, func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from registry.demo import tiny_model_bytes
from registry.filings.models import Attachment, Filing, FilingTransition
from registry.storage.models import StoredFile


def counts(app) -> tuple[int, int, int, int]:
    with Session(app.extensions["registry"].engine) as s:
        return tuple(
            s.exec(select(func.count()).select_from(model)).one()
            for model in (Filing, FilingTransition, Attachment, StoredFile)
        )


def stored_files(app) -> set:
    root = app.extensions["registry"].content.root
    return {p.name for p in root.rglob("*") if p.is_file()}


def assert_problem(response, status, pointer=None):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    if pointer is not None:
        assert pointer in [e["pointer"] for e in body.get("errors", [])], body
    return body


def test_malformed_json_is_a_400_problem_and_files_nothing(app, api):
    before = counts(app)
    response = api("zhengzhou").post(
        "/api/v1/filings", data='{"technical_document": {', content_type="application/json"
    )
    assert "not valid JSON" in assert_problem(response, 400)["detail"]
    assert counts(app) == before


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_not_json(api, constant):
    response = api("zhengzhou").post(
        "/api/v1/filings",
        data='{"technical_document": {"model": {"output": {"decision_threshold": ' + constant + "}}}}",
        content_type="application/json",
    )
    assert_problem(response, 400)


def test_deeply_nested_json_is_refused_cleanly(api):
    body = '{"technical_document": ' + "[" * 100000 + "]" * 100000 + "}"
    assert_problem(api("zhengzhou").post("/api/v1/filings", data=body, content_type="application/json"), 400)


def test_a_wrong_content_type_is_a_415_problem(api, documents):
    response = api("zhengzhou").post(
        "/api/v1/filings",
        data=json.dumps({"technical_document": documents.technical_document}),
        content_type="text/plain",
    )
    assert_problem(response, 415)


def test_a_body_that_is_not_an_object_is_a_422(api):
    assert_problem(api("zhengzhou").post("/api/v1/filings", json=[1, 2]), 422, pointer="")


def test_an_unknown_top_level_field_is_named(app, api, documents):
    before = counts(app)
    response = api("zhengzhou").post(
        "/api/v1/filings", json={"technical_document": documents.technical_document, "colour": "red"}
    )
    assert_problem(response, 422, pointer="/colour")
    assert counts(app) == before


def test_every_schema_violation_is_reported_with_its_pointer(app, api, documents):
    document = copy.deepcopy(documents.technical_document)
    document["scenario"] = "fortune_telling"
    document["affected_population"]["estimated_decisions_per_year"] = "many"
    document["contacts"][0]["email"] = "not-an-email"
    document["model"]["inputs"][0]["surprise"] = True
    before = counts(app)
    body = assert_problem(api("zhengzhou").post("/api/v1/filings", json={"technical_document": document}), 422)
    pointers = {e["pointer"] for e in body["errors"]}
    assert {
        "/technical_document/scenario",
        "/technical_document/affected_population/estimated_decisions_per_year",
        "/technical_document/contacts/0/email",
        "/technical_document/model/inputs/0/surprise",
    } <= pointers
    assert all(e["detail"] and e["detail_zh"] for e in body["errors"])
    assert counts(app) == before


def test_a_draft_may_be_incomplete_but_submitting_it_lists_everything_missing(app, api):
    city = api("zhengzhou")
    created = city.post(
        "/api/v1/filings",
        json={
            "technical_document": {
                "algorithm": {"name_zh": "试验", "name_en": "Trial", "version": "0.1", "purpose": "试验"}
            }
        },
    )
    assert created.status_code == 201, created.get_json()
    filing_id = created.get_json()["id"]
    body = assert_problem(city.post(f"/api/v1/filings/{filing_id}/submit"), 422)
    pointers = {e["pointer"] for e in body["errors"]}
    assert {"/technical_document/scenario", "/test_report", "/model"} <= pointers
    assert city.get(f"/api/v1/filings/{filing_id}").get_json()["state"] == "draft"


def test_filing_for_another_city_is_refused_at_the_city_code(app, api, documents):
    document = copy.deepcopy(documents.technical_document)
    document["city_code"] = "410300"
    before = counts(app)
    assert_problem(
        api("zhengzhou").post("/api/v1/filings", json={"technical_document": document}),
        422,
        pointer="/technical_document/city_code",
    )
    assert counts(app) == before


def _upload(client, filing_id, data, name="model.onnx", kind="model"):
    # Encoded in memory: werkzeug's test client spools big bodies to a temporary file it never closes.
    boundary, body = encode_multipart(MultiDict({"kind": kind, "file": FileStorage(io.BytesIO(data), filename=name)}))
    return client.post(
        f"/api/v1/filings/{filing_id}/attachments",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", tiny_model_bytes())
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "model_empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "model_not_onnx"),
        (b"just some text, not a model", "model_not_onnx"),
        (b"\x80\x04\x95" + b"cos\nsystem\n", "model_not_onnx"),  # a pickle: never unpickled, refused as not ONNX
        (_zip_bytes(), "model_not_onnx"),
    ],
)
def test_a_file_that_is_not_an_onnx_model_is_refused_clearly_and_not_stored(app, api, filing_in, data, code):
    filing_id = filing_in("draft")
    before = counts(app)
    files_before = stored_files(app)
    body = assert_problem(_upload(api("zhengzhou"), filing_id, data), 422, pointer="/file")
    assert body["type"].endswith(code)
    assert counts(app) == before
    assert stored_files(app) == files_before


def test_an_oversized_model_is_a_413_and_nothing_is_kept(app, api, filing_in):
    filing_id = filing_in("draft")
    before = counts(app)
    files_before = stored_files(app)
    limit = app.config["MAX_MODEL_BYTES"]
    response = _upload(api("zhengzhou"), filing_id, b"\0" * (limit + 10))
    assert_problem(response, 413)
    assert counts(app) == before
    assert stored_files(app) == files_before


def test_a_request_larger_than_any_upload_is_a_413_problem(app, api, filing_in):
    filing_id = filing_in("draft")
    response = _upload(api("zhengzhou"), filing_id, b"\0" * (app.config["MAX_CONTENT_LENGTH"] + 10))
    assert_problem(response, 413)


def test_a_path_in_the_upload_name_is_reduced_to_a_plain_name(api, filing_in):
    filing_id = filing_in("draft")
    response = _upload(api("zhengzhou"), filing_id, tiny_model_bytes(), name="../../etc/passwd")
    assert response.status_code == 201
    assert response.get_json()["filename"] == "passwd"


def test_a_supporting_document_must_be_a_pdf(api, filing_in):
    filing_id = filing_in("draft")
    assert_problem(_upload(api("zhengzhou"), filing_id, b"MZ\x90\x00", name="doc.pdf", kind="document"), 415)
    ok = _upload(api("zhengzhou"), filing_id, b"%PDF-1.7\n%%EOF\n", name="doc.pdf", kind="document")
    assert ok.status_code == 201


def test_an_illegal_transition_is_a_409_with_the_state_and_the_allowed_steps(api, filing_in):
    filing_id = filing_in("draft")
    body = assert_problem(api("reviewer1").post(f"/api/v1/filings/{filing_id}/actions/start_review"), 404)
    filing_id = filing_in("under_review")
    body = assert_problem(api("zhengzhou").post(f"/api/v1/filings/{filing_id}/submit"), 409)
    assert body["current_state"] == "under_review"
    assert set(body["allowed_actions"]) == {"request_changes", "approve", "approve_with_conditions", "reject"}


def test_an_unknown_action_is_a_400(api, filing_in):
    filing_id = filing_in("submitted")
    assert_problem(api("reviewer1").post(f"/api/v1/filings/{filing_id}/actions/approve"), 400)
    assert_problem(api("reviewer1").post(f"/api/v1/filings/{filing_id}/actions/teleport"), 400)


def test_request_changes_without_a_reason_is_a_422_naming_reason(api, filing_in):
    filing_id = filing_in("under_review")
    assert_problem(
        api("reviewer1").post(f"/api/v1/filings/{filing_id}/actions/request_changes"), 422, pointer="/reason"
    )


def test_a_retried_create_with_the_same_idempotency_key_files_once(app, api, documents):
    city = api("zhengzhou")
    body = {"technical_document": documents.technical_document, "test_report": documents.test_report}
    first = city.post("/api/v1/filings", json=body, headers={"Idempotency-Key": "abc-123"})
    second = city.post("/api/v1/filings", json=body, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] == second.get_json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert city.get("/api/v1/filings").get_json()["total"] == 1


def test_a_replayed_key_with_a_different_body_is_refused(api, documents):
    city = api("zhengzhou")
    city.post(
        "/api/v1/filings", json={"technical_document": documents.technical_document}, headers={"Idempotency-Key": "k1"}
    )
    other = copy.deepcopy(documents.technical_document)
    other["algorithm"]["version"] = "9.9"
    response = city.post("/api/v1/filings", json={"technical_document": other}, headers={"Idempotency-Key": "k1"})
    assert_problem(response, 422, pointer="/headers/Idempotency-Key")
    assert city.get("/api/v1/filings").get_json()["total"] == 1


def test_a_retried_submit_with_the_same_key_submits_once(api, filing_in):
    filing_id = filing_in("draft")
    city = api("zhengzhou")
    first = city.post(f"/api/v1/filings/{filing_id}/submit", headers={"Idempotency-Key": "s-1"})
    second = city.post(f"/api/v1/filings/{filing_id}/submit", headers={"Idempotency-Key": "s-1"})
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    history = city.get(f"/api/v1/filings/{filing_id}/history").get_json()["items"]
    assert [h["action"] for h in history].count("submit") == 1
    # Without the key, a repeated submit is an illegal transition, not a second submission.
    assert_problem(city.post(f"/api/v1/filings/{filing_id}/submit"), 409)


def test_keys_belong_to_their_account(api, documents):
    body = {"technical_document": documents.technical_document}
    api("zhengzhou").post("/api/v1/filings", json=body, headers={"Idempotency-Key": "shared"})
    luoyang_doc = copy.deepcopy(documents.technical_document)
    luoyang_doc["city_code"] = "410300"
    response = api("luoyang").post(
        "/api/v1/filings", json={"technical_document": luoyang_doc}, headers={"Idempotency-Key": "shared"}
    )
    assert response.status_code == 201
    assert response.get_json()["city_code"] == "410300"


@pytest.mark.parametrize("header", ["Bearer", "Bearer rgt_not-a-real-token", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_bad_or_unknown_token_is_a_401_problem(app, header):
    response = app.test_client().get("/api/v1/filings", headers={"Authorization": header})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_api_paths_and_methods_are_problems(api):
    assert_problem(api("zhengzhou").get("/api/v1/nothing-here"), 404)
    response = api("zhengzhou").delete("/api/v1/filings")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("query", ["state=flying", "page=0", "per_page=1000", "page=abc"])
def test_bad_list_queries_are_422s(api, query):
    assert_problem(api("zhengzhou").get(f"/api/v1/filings?{query}"), 422)


def test_an_unknown_schema_is_a_404_problem(app):
    assert_problem(app.test_client().get("/schemas/horoscope.json"), 404)


def test_every_unknown_top_level_field_is_named_at_once(api, documents):
    response = api("zhengzhou").post(
        "/api/v1/filings", json={"technical_document": documents.technical_document, "colour": 1, "size/x": 2}
    )
    body = assert_problem(response, 422)
    assert {e["pointer"] for e in body["errors"]} == {"/colour", "/size~1x"}
