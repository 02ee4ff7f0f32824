"""The README's example filing is valid, and its curl flow works as written against the API."""

import io
import json
from pathlib import Path

from registry.demo import tiny_model_bytes
from schemas import validation as contracts

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "filing.json"


def test_the_example_filing_is_valid_against_the_filing_schema():
    assert contracts.validate("filing", json.loads(EXAMPLE.read_text("utf-8"))) == []


def test_the_readme_flow_files_and_submits_the_example(api):
    city = api("zhengzhou")
    created = city.post(
        "/api/v1/filings",
        data=EXAMPLE.read_bytes(),
        content_type="application/json",
        headers={"Idempotency-Key": "7d1c"},
    )
    assert created.status_code == 201, created.get_json()
    filing_id = created.get_json()["id"]
    uploaded = city.post(
        f"/api/v1/filings/{filing_id}/attachments",
        data={"kind": "model", "file": (io.BytesIO(tiny_model_bytes()), "model.onnx")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201
    submitted = city.post(f"/api/v1/filings/{filing_id}/submit", headers={"Idempotency-Key": "9e2f"})
    assert submitted.get_json()["state"] == "submitted"
