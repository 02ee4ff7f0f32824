"""Translated labels for the domain's codes (states, scenarios, roles, actions…), for pages only.

Codes stay in English in the database and the API; a page shows ``label(STATES, filing.state)``. Each text is a
lazy gettext string, so it is translated in the reader's language when it is rendered.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

STATES = {
    "draft": _l("Draft"),
    "submitted": _l("Submitted"),
    "under_review": _l("Under review"),
    "changes_requested": _l("Changes requested"),
    "resubmitted": _l("Resubmitted"),
    "approved": _l("Approved"),
    "approved_with_conditions": _l("Approved with conditions"),
    "rejected": _l("Rejected"),
    "suspended": _l("Suspended"),
    "revoked": _l("Revoked"),
    "expired": _l("Expired"),
    "superseded": _l("Superseded"),
    "withdrawn": _l("Withdrawn"),
}

ACTIONS = {
    "create": _l("Create draft"),
    "submit": _l("Submit"),
    "withdraw": _l("Withdraw"),
    "start_review": _l("Start review"),
    "request_changes": _l("Request changes"),
    "resubmit": _l("Resubmit"),
    "approve": _l("Approve"),
    "approve_with_conditions": _l("Approve with conditions"),
    "reject": _l("Reject"),
    "suspend": _l("Suspend"),
    "revoke": _l("Revoke"),
    "expire": _l("Expire"),
    "supersede": _l("Supersede"),
}

SCENARIOS = {
    "eligibility_determination": _l("Eligibility determination"),
    "credit_evaluation": _l("Credit evaluation"),
    "licence_approval": _l("Licence approval"),
    "benefit_or_claim_review": _l("Benefit or claim review"),
    "inspection_targeting": _l("Inspection targeting"),
    "other": _l("Other"),
}

DECISION_ROLES = {
    "decides_automatically": _l("Decides automatically"),
    "recommends_to_person": _l("Recommends to a person"),
    "assists_person": _l("Only assists a person"),
}

ROLES = {
    "city": _l("City team"),
    "reviewer": _l("Provincial reviewer"),
    "admin": _l("Administrator"),
    "system": _l("The registry"),
    "public": _l("The public"),
}

INPUT_TYPES = {
    "numeric": _l("Numeric"),
    "categorical": _l("Categorical"),
    "text": _l("Text"),
    "image": _l("Image"),
    "date": _l("Date"),
    "boolean": _l("Yes/no"),
}

TESTER_KINDS = {
    "in_house": _l("In-house test"),
    "third_party": _l("Third-party test"),
}

ATTACHMENT_KINDS = {
    "model": _l("Model (ONNX)"),
    "document": _l("Supporting document (PDF)"),
}


def label(table: dict, code: str | None) -> str:
    """The translated label of ``code`` in ``table``; the code itself when it is unknown, a dash when empty."""
    if code is None or code == "":
        return "—"
    text = table.get(code)
    return str(text) if text is not None else str(code)


_TABLES = (STATES, ACTIONS, SCENARIOS, DECISION_ROLES, ROLES, INPUT_TYPES, TESTER_KINDS, ATTACHMENT_KINDS)
_TRANSLATED: dict[tuple[int, str], dict[str, str]] = {}  # (id of one of _TABLES, locale) → its labels translated


def page_label(locale: str) -> Callable[[dict, str | None], str]:
    """:func:`label` for one page in ``locale`` (the request's): each of the tables above is translated once per
    process and language, not at every label (a page of the library shows a few hundred)."""

    def page_label(table: dict, code: str | None) -> str:
        if code is None or code == "":
            return "—"
        translated = _TRANSLATED.get((id(table), locale))
        if translated is None:
            if not any(table is known for known in _TABLES):
                return label(table, code)
            translated = _TRANSLATED[(id(table), locale)] = {key: str(text) for key, text in table.items()}
        text = translated.get(code)
        return text if text is not None else str(code)

    return page_label


def register(app) -> None:
    """Make the tables and :func:`label` available in every template (each page's ``label`` bound to its
    language)."""
    app.context_processor(lambda: {"label": page_label(str(get_locale()))})
    app.jinja_env.globals.update(
        label=label,
        STATES=STATES,
        ACTIONS=ACTIONS,
        SCENARIOS=SCENARIOS,
        DECISION_ROLES=DECISION_ROLES,
        ROLES=ROLES,
        INPUT_TYPES=INPUT_TYPES,
        TESTER_KINDS=TESTER_KINDS,
        ATTACHMENT_KINDS=ATTACHMENT_KINDS,
    )
