"""The administrators' page of reference data sets: the list (shipped and uploaded), the upload form, retiring.

Views parse, call the service and render; a refused upload is shown on the page, each error beside its field.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from registry.access import allow, current_actor
from registry.errors import (
    Conflict,
    DomainError,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    ValidationFailed,
)
from registry.i18n import is_chinese
from registry.reference_data import service, upload_parts
from registry.request_db import db
from registry.web import csrf

bp = Blueprint("reference_data", __name__, url_prefix="/admin/reference-datasets")

FIELDS = ("descriptor", "data")  # the form's two file inputs; an error belongs to the one its pointer names


def _field_of(pointer: str | None) -> str:
    return "data" if pointer == service.DATA else "descriptor"


def _errors(exc: DomainError) -> dict[str, list[dict]]:
    """Each error as {where, text} under the field it belongs to; ``where`` is the place inside the descriptor."""
    found: dict[str, list[dict]] = {name: [] for name in FIELDS}
    if isinstance(exc, ValidationFailed):
        items = [(e.pointer, e.message_zh if is_chinese() else e.message) for e in exc.errors]
    else:
        text = exc.extra.get("detail_zh", exc.message) if is_chinese() else exc.message
        items = [(exc.pointer, text)]
    for pointer, text in items:
        where = (pointer or "").removeprefix(service.DESCRIPTOR) if _field_of(pointer) == "descriptor" else ""
        found[_field_of(pointer)].append({"where": where, "text": text})
    return found


def _page(errors: dict[str, list[dict]] | None = None, status: int = 200):
    limit_mb = round(upload_parts.data_limit() / (1024 * 1024), 1)
    return (
        render_template(
            "reference_data/index.html",
            datasets=service.admin_listing(db()),
            errors=errors or {},
            limit_mb=limit_mb,
        ),
        status,
    )


@bp.get("")
@allow("admin")
def index():
    return _page()


@bp.post("")
@allow("admin")
@csrf.exempt  # checked below, once this request may be as large as a data file
def upload():
    upload_parts.raise_request_limits()
    csrf.protect()
    try:
        upload_parts.require_multipart()
        data = upload_parts.data_part()
        record = service.upload(
            session=db(),
            content=current_app.extensions["registry"].content,
            actor=current_actor(),
            descriptor=service.parse_descriptor(upload_parts.descriptor_part()),
            data_stream=data.stream if data is not None else None,
            max_bytes=upload_parts.data_limit(),
        )
    except (Unprocessable, Conflict, PayloadTooLarge, UnsupportedMediaType) as exc:  # the name taken: Conflict
        db().rollback()
        return _page(_errors(exc), exc.status)
    db().commit()
    flash(_("The reference data set %(name)s is uploaded; reviewers can now choose it.", name=record.name))
    return redirect(url_for("reference_data.index"), 303)


@bp.post("/<name>/retire")
@allow("admin")
def retire(name: str):
    record = service.retire(session=db(), actor=current_actor(), name=name)
    db().commit()
    flash(_("The reference data set %(name)s is retired: new audits can no longer choose it.", name=record.name))
    return redirect(url_for("reference_data.index"), 303)
