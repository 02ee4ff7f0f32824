"""Pages for filings: a city team's list, form, model upload, submission and thread; reviewers read and review.

Views parse the request, call the service and render; who may do what is declared with ``@allow`` (route level)
and checked by the service (``registry.authz``, object level). Domain errors the reader can fix (a form error, a
refused model, an incomplete submission, a missing reason) are shown on the page they came from; the rest go to
the error page (``registry.web.render_error``) with their status.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf import FlaskForm
from werkzeug.exceptions import NotFound as HTTPNotFound

from registry import authz
from registry.access import allow, current_actor
from registry.accounts import service as accounts
from registry.accounts.models import Role
from registry.cities import service as cities
from registry.db import utcnow
from registry.errors import (
    DomainError,
    Forbidden,
    IllegalTransition,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    ValidationFailed,
)
from registry.filings import forms, lifecycle, risk
from registry.filings import service as filings
from registry.filings.models import Filing
from registry.i18n import is_chinese
from registry.library import concerns as public_concerns
from registry.request_db import db
from registry.web import labels

bp = Blueprint("filings", __name__)


@bp.record_once
def _register_labels(state) -> None:
    labels.register(state.app)
    state.app.jinja_env.globals.update(field_label=forms.field_label)


class PostForm(FlaskForm):
    """A form with only its CSRF token: the page forms' fields are read by registry.filings.forms."""


# --- list ----------------------------------------------------------------------------------------------------------


@bp.get("/filings")
@allow("city", "reviewer", "admin")
def dashboard():
    actor = current_actor()
    city_list = cities.list_cities(session=db())
    known = {
        "state": set(labels.STATES),
        "city": {c.code for c in city_list},
        "scenario": set(filings.scenarios()),
        "tier": set(risk.TIERS),
        "sort": set(filings.SORTS),
    }
    # An unknown filter value is ignored (the list shows everything for it) rather than an error page.
    chosen = {name: value if (value := request.args.get(name) or None) in known[name] else None for name in known}
    page = filings.list_filings(session=db(), actor=actor, **chosen, page=1, per_page=200)
    now = utcnow()
    return render_template(
        "filings/dashboard.html",
        page=page,
        filters=chosen,
        cities=city_list if actor.role != Role.CITY else [],
        city_names={c.code: (c.name_zh, c.name_en) for c in city_list},
        waited={f.id: _waited(now - page.in_state_since[f.id]) for f in page.items},
        tiers=risk.TIERS,
        sorts=_sort_labels(),
        may_create=actor.role == Role.CITY,
    )


def _sort_labels() -> dict[str, str]:
    return {
        filings.WAITING: _("Waiting longest first"),
        filings.BRIEFEST_WAIT: _("Waiting shortest first"),
        filings.UPDATED: _("Most recently updated first"),
    }


def _waited(span: timedelta) -> dict[str, str]:
    """How long a filing has been in its state, for reading (days, or hours under a day) and as an ISO duration."""
    seconds = max(int(span.total_seconds()), 0)
    days, hours = seconds // 86400, seconds // 3600
    if days:
        return {"text": ngettext("%(num)d day", "%(num)d days", days), "iso": f"P{days}D"}
    if hours:
        return {"text": ngettext("%(num)d hour", "%(num)d hours", hours), "iso": f"PT{hours}H"}
    return {"text": _("less than an hour"), "iso": f"PT{seconds // 60}M"}


# --- one filing ----------------------------------------------------------------------------------------------------


def _viewer_actions(filing: Filing) -> list[lifecycle.Transition]:
    try:
        who = authz.lifecycle_actor(current_actor(), filing)
    except Forbidden:  # administrators and other cities read but take no step
        return []
    return [
        lifecycle.TRANSITIONS[lifecycle.Action(a)]
        for a in lifecycle.allowed_actions(filing.state, who)
        if a in lifecycle.PERSON_ACTIONS
    ]


def _usernames(user_ids) -> dict[int, str]:
    return accounts.display_names(session=db(), ids=user_ids)


def _message(error: DomainError) -> str:
    """The error's message in the reader's language, when the domain gives a Chinese one."""
    if is_chinese():
        zh = error.extra.get("detail_zh") if error.extra else None
        if zh:
            return zh
        if isinstance(error, PayloadTooLarge):
            return _("The file is larger than this registry accepts.")
    return error.message


def _render_filing(filing: Filing, *, status: int = 200, **extra):
    actor = current_actor()
    history = filings.history(session=db(), filing=filing)
    thread = filings.comments(session=db(), actor=actor, filing=filing)
    city = cities.get_city(session=db(), code=filing.city_code)
    is_own_city = actor.role == Role.CITY and actor.city_code == filing.city_code
    context = dict(
        filing=filing,
        city=city,
        td=filing.technical_document or {},
        tr=filing.test_report,
        assessment=filing.risk_assessment,
        questionnaire=risk.questionnaire(),
        attachments=filings.attachments(session=db(), filing=filing),
        history=history,
        thread=thread,
        names=_usernames([h.actor_id for h in history] + [c.author_id for c in thread]),
        actions=_viewer_actions(filing),
        may_edit=is_own_city and filing.state in lifecycle.EDITABLE,
        may_comment=filing.submitted_at is not None and (is_own_city or actor.role == Role.REVIEWER),
        is_reviewer=actor.role in (Role.REVIEWER, Role.ADMIN),
        form=PostForm(),
        max_model_mb=round(int(current_app.config["MAX_MODEL_BYTES"]) / (1024 * 1024), 1),
        errors=[],
        upload_error=None,
        comment_error=None,
        action_error=None,
        values={},
        concerns=public_concerns.for_filing(session=db(), actor=actor, filing=filing),  # None: not for this reader
        may_handle_concerns=actor.role == Role.REVIEWER,
    )
    context.update(extra)
    return render_template("filings/detail.html", **context), status


@bp.get("/filings/<int:filing_id>")
@allow("city", "reviewer", "admin")
def detail(filing_id: int):
    filing = filings.get_filing(session=db(), actor=current_actor(), filing_id=filing_id)
    return _render_filing(filing)


# --- create and edit -----------------------------------------------------------------------------------------------


def _read_upload(name: str, pointer: str) -> tuple[dict | None, list]:
    upload = request.files.get(name)
    if upload is None or not upload.filename:
        return None, []
    limit = int(current_app.config["MAX_DOCUMENT_BYTES"])
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        return None, [
            forms.FieldError(
                pointer,
                "maxLength",
                f"The file is larger than {limit} bytes.",
                f"文件超过 {limit} 字节的上限。",
            )
        ]
    return forms.parse_upload(data, pointer=pointer)


def _form_page(*, filing: Filing | None, values: dict, input_rows: int, contact_rows: int, errors=(), status=200):
    row_ids = {forms.field_id(f"{forms.TD}/model/inputs/{i}") for i in range(input_rows)}
    row_ids |= {forms.field_id(f"{forms.TD}/contacts/{i}") for i in range(contact_rows)}
    row_ids |= {forms.field_id(f"{forms.ANSWERS}/{q['id']}") for q in risk.questionnaire()["questions"]}
    row_ids |= {
        forms.field_id(f"{forms.TD}/model/inputs/{i}/{c}")
        for i in range(input_rows)
        for c, _l, _k in forms.INPUT_COLUMNS
    }
    row_ids |= {
        forms.field_id(f"{forms.TD}/contacts/{i}/{c}")
        for i in range(contact_rows)
        for c, _l, _k in forms.CONTACT_COLUMNS
    }
    shown = []
    by_field: dict[str, list[str]] = {}
    for error in errors:
        target = forms.error_target(error.pointer, row_ids)
        if target is None:
            target = forms.TR_FILE if error.pointer.startswith(forms.TR) else forms.TD_FILE
        text = error.message_zh if is_chinese() else error.message
        by_field.setdefault(target, []).append(text)
        shown.append(
            {"target": target, "label": forms.field_label(error.pointer), "text": text, "pointer": error.pointer}
        )
    return (
        render_template(
            "filings/edit.html",
            filing=filing,
            form=PostForm(),
            values=values,
            input_rows=input_rows,
            contact_rows=contact_rows,
            errors=shown,
            field_errors=by_field,
            document_fields=forms.DOCUMENT_FIELDS,
            report_fields=forms.REPORT_FIELDS,
            input_columns=forms.INPUT_COLUMNS,
            contact_columns=forms.CONTACT_COLUMNS,
            questions=risk.questionnaire()["questions"],
            forms=forms,
        ),
        status,
    )


def _save(filing: Filing | None):
    """Handle a POST of the filing form: add a row, or save (create or update) and go to the filing page."""
    form = request.form
    input_rows = forms.row_count(form, "input_rows", forms.MIN_INPUT_ROWS)
    contact_rows = forms.row_count(form, "contact_rows", forms.MIN_CONTACT_ROWS)
    if "add_input_row" in form:
        return _form_page(filing=filing, values=form, input_rows=input_rows + 1, contact_rows=contact_rows)
    if "add_contact_row" in form:
        return _form_page(filing=filing, values=form, input_rows=input_rows, contact_rows=contact_rows + 1)

    errors: list = []
    uploaded_td, td_errors = _read_upload(forms.TD_FILE, forms.TD)
    uploaded_tr, tr_errors = _read_upload(forms.TR_FILE, forms.TR)
    errors += td_errors + tr_errors
    form_td, form_tr = forms.documents_from_form(
        form,
        technical_document=filing.technical_document if filing else None,
        test_report=filing.test_report if filing else None,
        input_rows=input_rows,
        contact_rows=contact_rows,
    )
    technical_document = uploaded_td if uploaded_td is not None else form_td
    test_report = uploaded_tr if uploaded_tr is not None else form_tr
    if not errors:
        try:
            if filing is None:
                filing = filings.create_draft(
                    session=db(), actor=current_actor(), technical_document=technical_document, test_report=test_report
                )
            else:
                filing = filings.update_documents(
                    session=db(),
                    actor=current_actor(),
                    filing_id=filing.id,
                    technical_document=technical_document,
                    test_report=test_report,
                )
        except ValidationFailed as exc:
            errors = list(exc.errors)
    if errors:
        db().rollback()
        return _form_page(
            filing=filing, values=form, input_rows=input_rows, contact_rows=contact_rows, errors=errors, status=422
        )
    db().commit()
    flash(_("The draft is saved."))
    return redirect(url_for("filings.detail", filing_id=filing.id), 303)


@bp.route("/filings/new", methods=["GET", "POST"])
@allow("city")
def new():
    if request.method == "POST":
        return _save(None)
    values, input_rows, contact_rows = forms.values_from_documents(None, None)
    return _form_page(filing=None, values=values, input_rows=input_rows, contact_rows=contact_rows)


@bp.route("/filings/<int:filing_id>/edit", methods=["GET", "POST"])
@allow("city")
def edit(filing_id: int):
    actor = current_actor()
    filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
    filings.require_editable(filing)
    if request.method == "POST":
        return _save(filing)
    values, input_rows, contact_rows = forms.values_from_documents(filing.technical_document, filing.test_report)
    return _form_page(filing=filing, values=values, input_rows=input_rows, contact_rows=contact_rows)


# --- model upload, lifecycle steps, comments -----------------------------------------------------------------------


@bp.post("/filings/<int:filing_id>/attachments")
@allow("city")
def upload_attachment(filing_id: int):
    actor = current_actor()
    filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_filing(filing, status=422, upload_error=_("Choose an ONNX model file to upload."))
    try:
        attachment = filings.attach_file(
            session=db(),
            content=current_app.extensions["registry"].content,
            actor=actor,
            filing_id=filing_id,
            kind=filings.MODEL,
            stream=upload.stream,
            filename=upload.filename,
            max_bytes=int(current_app.config["MAX_MODEL_BYTES"]),
        )
    except (Unprocessable, UnsupportedMediaType, PayloadTooLarge) as exc:
        db().rollback()
        filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
        return _render_filing(filing, status=exc.status, upload_error=_message(exc))
    db().commit()
    flash(_("The model %(name)s is attached.", name=attachment.filename))
    return redirect(url_for("filings.detail", filing_id=filing_id, _anchor="attachments"), 303)


@bp.post("/filings/<int:filing_id>/actions/<action>")
@allow("city", "reviewer")
def take_action(filing_id: int, action: str):
    if action not in lifecycle.PERSON_ACTIONS:
        raise HTTPNotFound()
    actor = current_actor()
    reason = (request.form.get("reason") or "").strip()
    try:
        filing = filings.transition(
            session=db(),
            actor=actor,
            filing_id=filing_id,
            action=action,
            reason=reason,
            province=current_app.config["PROVINCE_ABBREVIATION"],
        )
    except IllegalTransition as exc:
        db().rollback()
        return render_template("filings/illegal.html", error=exc, filing_id=filing_id, action=action), 409
    except ValidationFailed as exc:
        db().rollback()
        filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
        missing = [
            {
                "label": forms.field_label(e.pointer),
                "text": e.message_zh if is_chinese() else e.message,
                "pointer": e.pointer,
            }
            for e in exc.errors
        ]
        return _render_filing(filing, status=422, errors=missing, failed_action=action)
    except Unprocessable as exc:  # a reason is required
        db().rollback()
        filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
        text = _("Give a reason for this step.") if exc.code == "reason_required" else _message(exc)
        return _render_filing(filing, status=422, action_error={"action": action, "text": text})
    db().commit()
    flash(
        _(
            "Done: %(action)s. The filing is now: %(state)s.",
            action=labels.label(labels.ACTIONS, action),
            state=labels.label(labels.STATES, filing.state),
        )
    )
    return redirect(url_for("filings.detail", filing_id=filing_id), 303)


@bp.post("/filings/<int:filing_id>/comments")
@allow("city", "reviewer")
def add_comment(filing_id: int):
    actor = current_actor()
    body = request.form.get("body") or ""
    reviewer_only = bool(request.form.get("reviewer_only")) and actor.role == Role.REVIEWER
    try:
        filings.add_comment(session=db(), actor=actor, filing_id=filing_id, body=body, reviewer_only=reviewer_only)
    except Unprocessable:
        db().rollback()
        filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
        return _render_filing(
            filing,
            status=422,
            comment_error=_("Write a comment of 1 to 10,000 characters."),
            values={"body": body, "reviewer_only": reviewer_only},
        )
    db().commit()
    flash(_("Your comment is added."))
    return redirect(url_for("filings.detail", filing_id=filing_id, _anchor="comments"), 303)
