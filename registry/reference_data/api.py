"""REST API for reference data sets (administrators): upload one, retire one. Listing stays with audit jobs
(``GET /api/v1/reference-datasets``, reviewers and administrators). No route serves a row of data."""

from __future__ import annotations

from flask import Blueprint, current_app

from registry.access import allow, current_actor
from registry.api_support import json_response
from registry.reference_data import service, upload_parts
from registry.request_db import db

bp = Blueprint("reference_data_api", __name__, url_prefix="/api/v1")


def dataset_json(item: dict) -> dict:
    """An administrator's view of a data set (see service.describe), with timestamps in ISO 8601."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in item.items()}


@bp.post("/reference-datasets")
@allow("admin")
def upload():
    """Add a reference data set: multipart parts descriptor (JSON) and data (CSV or Parquet) → 201 with its summary."""
    upload_parts.raise_request_limits()
    upload_parts.require_multipart()
    raw = upload_parts.descriptor_part()
    data = upload_parts.data_part()
    record = service.upload(
        session=db(),
        content=current_app.extensions["registry"].content,
        actor=current_actor(),
        descriptor=service.parse_descriptor(raw),
        data_stream=data.stream if data is not None else None,
        max_bytes=upload_parts.data_limit(),
    )
    db().commit()
    return json_response(dataset_json(service.describe(db(), record)), 201)


@bp.post("/reference-datasets/<name>/retire")
@allow("admin")
def retire(name: str):
    """Hide an uploaded data set from new audits; audits that used it still read it."""
    record = service.retire(session=db(), actor=current_actor(), name=name)
    db().commit()
    return json_response(dataset_json(service.describe(db(), record)))
