"""Pages for decisions: the decisions panel on a filing's page, its forms (propose, countersign, withdraw or
refuse), and the decision letter (HTML and PDF, both from ``registry.decisions.letter``).

The panel is ``templates/decisions/_filing_panel.html``, included by the filing page; its data comes from the
``decision_panel(filing)`` template global registered here. Errors a reviewer can fix are shown in the panel on
the filing's page, with the status they carry; unknown or unreadable decisions go to the error page (404).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from registry.access import allow, current_actor
from registry.accounts import service as accounts
from registry.decisions import letter as letters
from registry.decisions import letter_pdf as pdf
from registry.decisions import service as decisions
from registry.decisions.models import DecisionState, Outcome
from registry.errors import Conflict, Forbidden, Unprocessable
from registry.filings import service as filings
from registry.filings.lifecycle import State
from registry.filings.models import Filing
from registry.i18n import is_chinese
from registry.request_db import db

bp = Blueprint("decisions", __name__)

DECISION_STATES = {
    DecisionState.PROPOSED.value: _l("Proposed, awaiting countersignature"),
    DecisionState.EFFECTIVE.value: _l("Effective"),
    DecisionState.WITHDRAWN.value: _l("Withdrawn"),
}
OUTCOMES = {
    Outcome.APPROVED.value: _l("Approved"),
    Outcome.APPROVED_WITH_CONDITIONS.value: _l("Approved with conditions"),
    Outcome.REJECTED.value: _l("Rejected"),
}


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def decision_panel(filing: Filing) -> dict:
    """What the decisions panel of ``filing``'s page shows to the current reader."""
    actor = current_actor()
    items = decisions.list_for_filing(session=db(), actor=actor, filing_id=filing.id)
    is_reviewer = actor.role == "reviewer"
    open_proposal = next((d for d in items if d.state == DecisionState.PROPOSED), None)
    return {
        "decisions": items,
        "names": accounts.display_names(
            session=db(),
            ids=[i for d in items for i in (d.proposed_by_id, d.countersigned_by_id, d.withdrawn_by_id)],
        ),
        "show_notes": decisions.may_see_note(actor),
        "may_propose": is_reviewer and filing.state == State.UNDER_REVIEW and open_proposal is None,
        "may_countersign": lambda d: (
            is_reviewer and d.state == DecisionState.PROPOSED and d.proposed_by_id != actor.user_id
        ),
        "may_withdraw": lambda d: is_reviewer and d.state == DecisionState.PROPOSED,
        "viewer_id": actor.user_id,
        "audits": decisions.done_audits(session=db(), filing_id=filing.id) if is_reviewer else [],
        "error": g.get("decision_error"),
        "entered": g.get("decision_values") or {},
        "states": DECISION_STATES,
        "outcomes": OUTCOMES,
    }


@bp.record_once
def _register(state) -> None:
    state.app.jinja_env.globals.update(decision_panel=decision_panel)


def _show_error(filing_id: int, error, values: dict | None = None):
    """Roll back, and show the filing's page with the error in the decisions panel (status of the error)."""
    from registry.filings.views import _render_filing  # the filing page's own renderer: one page, one layout

    db().rollback()
    g.decision_error = {"text": error.message, "pointer": error.pointer, "code": error.code}
    g.decision_values = values or {}
    filing = filings.get_filing(session=db(), actor=current_actor(), filing_id=filing_id)
    return _render_filing(filing, status=error.status)


@bp.post("/filings/<int:filing_id>/decisions")
@allow("reviewer")
def propose(filing_id: int):
    form = request.form
    values = {
        "outcome": form.get("outcome", ""),
        "conditions": form.get("conditions", ""),
        "reasons": form.get("reasons", ""),
        "note": form.get("note", ""),
        "audit_job_ids": form.getlist("audit_job_ids"),
    }
    try:
        job_ids = [int(v) for v in values["audit_job_ids"]]
    except ValueError:
        job_ids = [-1]
    try:
        decision = decisions.propose(
            session=db(),
            actor=current_actor(),
            filing_id=filing_id,
            outcome=values["outcome"],
            conditions=_lines(values["conditions"]),
            reasons=_lines(values["reasons"]),
            audit_job_ids=job_ids,
            note=values["note"],
            province=current_app.config["PROVINCE_ABBREVIATION"],
        )
    except (Unprocessable, Conflict, Forbidden) as exc:
        return _show_error(filing_id, exc, values)
    db().commit()
    if decision.state == DecisionState.EFFECTIVE:
        flash(_("The decision is effective: %(outcome)s.", outcome=OUTCOMES[decision.outcome]))
    else:
        flash(_("The decision is proposed. A second reviewer must countersign it before it takes effect."))
    return redirect(url_for("filings.detail", filing_id=filing_id, _anchor="decisions"), 303)


@bp.post("/decisions/<int:decision_id>/countersign")
@allow("reviewer")
def countersign(decision_id: int):
    actor = current_actor()
    decision = decisions.get(session=db(), actor=actor, decision_id=decision_id)
    filing_id = decision.filing_id
    try:
        decision = decisions.countersign(
            session=db(),
            actor=actor,
            decision_id=decision_id,
            province=current_app.config["PROVINCE_ABBREVIATION"],
        )
    except (Unprocessable, Conflict, Forbidden) as exc:
        return _show_error(filing_id, exc)
    db().commit()
    flash(_("You countersigned the decision; it is effective: %(outcome)s.", outcome=OUTCOMES[decision.outcome]))
    return redirect(url_for("filings.detail", filing_id=filing_id, _anchor="decisions"), 303)


@bp.post("/decisions/<int:decision_id>/withdraw")
@allow("reviewer")
def withdraw(decision_id: int):
    actor = current_actor()
    decision = decisions.get(session=db(), actor=actor, decision_id=decision_id)
    filing_id = decision.filing_id
    try:
        decisions.withdraw(session=db(), actor=actor, decision_id=decision_id, reason=request.form.get("reason", ""))
    except (Unprocessable, Conflict, Forbidden) as exc:
        return _show_error(filing_id, exc, {"withdraw_decision_id": decision_id})
    db().commit()
    flash(_("The proposed decision is withdrawn; the filing stays under review."))
    return redirect(url_for("filings.detail", filing_id=filing_id, _anchor="decisions"), 303)


@bp.get("/decisions/<int:decision_id>/letter")
@allow("city", "reviewer", "admin")
def letter(decision_id: int):
    """The decision letter (HTML, printable) of an effective decision, in the reader's language."""
    source = letters.load(session=db(), actor=current_actor(), decision_id=decision_id)
    return render_template(
        "decisions/letter.html",
        letter=letters.compose(source, gettext=_, chinese=is_chinese()),
        decision=source.decision,
        filing=source.filing,
    )


@bp.get("/decisions/<int:decision_id>/letter.pdf")
@allow("city", "reviewer", "admin")
def letter_pdf(decision_id: int):
    """The same letter as PDF, in the reader's language (``?lang=en`` or the language switch)."""
    source = letters.load(session=db(), actor=current_actor(), decision_id=decision_id)
    letter = letters.compose(source, gettext=_, chinese=is_chinese())
    return Response(pdf.render(letter), mimetype=pdf.MEDIA_TYPE, headers=pdf.headers(decision_id))
