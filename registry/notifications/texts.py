"""What a notification says, in Chinese or English, rendered when it is shown (no Flask here).

An inbox row stores its ``kind`` and the parameters of its text; the text itself is looked up in the registry's
translation catalog at read time, so one row reads right in either language, and a corrected translation
corrects old notifications too. The e-mail outbox renders both languages when the e-mail is written.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
ZH, EN = "zh", "en"
LANGUAGES = (ZH, EN)
CATALOGS = {ZH: "zh_Hans_CN"}  # English texts are the msgids themselves


def N_(message: str) -> str:
    """Mark a text for the catalog (pybabel's default keyword) without translating it now."""
    return message


class Kind(StrEnum):
    COMMENT = "comment"
    REVIEWER_NOTE = "reviewer_note"
    DECISION_PROPOSED = "decision_proposed"
    DECISION_EFFECTIVE = "decision_effective"
    DECISION_WITHDRAWN = "decision_withdrawn"
    DECISION_REFUSED = "decision_refused"
    AUDIT_DONE = "audit_done"
    AUDIT_FAILED = "audit_failed"
    REAUDIT_QUEUED = "reaudit_queued"
    REAUDIT_FAILED = "reaudit_failed"
    FILING_EXPIRED = "filing_expired"
    CONCERN_RAISED = "concern_raised"


TITLES = {
    Kind.COMMENT: N_("New comment"),
    Kind.REVIEWER_NOTE: N_("New reviewer-only note"),
    Kind.DECISION_PROPOSED: N_("A decision awaits countersignature"),
    Kind.DECISION_EFFECTIVE: N_("Decision effective"),
    Kind.DECISION_WITHDRAWN: N_("Proposed decision withdrawn"),
    Kind.DECISION_REFUSED: N_("Countersignature refused"),
    Kind.AUDIT_DONE: N_("Audit finished"),
    Kind.AUDIT_FAILED: N_("Audit failed"),
    Kind.REAUDIT_QUEUED: N_("Periodic re-audit due"),
    Kind.REAUDIT_FAILED: N_("Re-audit needs attention"),
    Kind.FILING_EXPIRED: N_("Filing expired"),
    Kind.CONCERN_RAISED: N_("A concern from the public"),
}

TEXTS = {
    Kind.COMMENT: N_("%(author)s commented on %(filing)s: %(excerpt)s"),
    Kind.REVIEWER_NOTE: N_("%(author)s wrote a reviewer-only note on %(filing)s: %(excerpt)s"),
    Kind.DECISION_PROPOSED: N_(
        "%(author)s proposed a decision on %(filing)s (%(outcome)s). It takes effect once another reviewer "
        "countersigns it."
    ),
    Kind.DECISION_EFFECTIVE: N_("The decision on %(filing)s is effective: %(outcome)s."),
    Kind.DECISION_WITHDRAWN: N_("%(author)s withdrew the proposed decision on %(filing)s: %(reason)s"),
    Kind.DECISION_REFUSED: N_("%(author)s refused to countersign the proposed decision on %(filing)s: %(reason)s"),
    Kind.AUDIT_DONE: N_("Audit %(audit)s of %(filing)s is done: %(verdict)s."),
    Kind.AUDIT_FAILED: N_("Audit %(audit)s of %(filing)s failed: %(error)s"),
    Kind.REAUDIT_QUEUED: N_("The periodic re-audit of %(filing)s fell due on %(due)s; audit %(audit)s is queued."),
    Kind.REAUDIT_FAILED: N_(
        "The periodic re-audit %(audit)s of %(filing)s failed or did not meet the audit policy; the filing needs "
        "a reviewer's attention."
    ),
    Kind.FILING_EXPIRED: N_(
        "Expired: %(filing)s. Its re-audit was due on %(due)s and is overdue beyond the grace period."
    ),
    Kind.CONCERN_RAISED: N_("A member of the public raised a concern (%(reference)s) about %(filing)s: %(excerpt)s"),
}
NUMBER_ISSUED = N_("Filing number: %(number)s.")
FILING = N_("filing “%(name)s” (%(ref)s)")
OUTCOMES = {
    "approved": N_("Approved"),
    "approved_with_conditions": N_("Approved with conditions"),
    "rejected": N_("Rejected"),
}
VERDICTS = {"meets": N_("Meets the policy"), "does_not_meet": N_("Does not meet the policy")}
NO_VERDICT = N_("No verdict")


@cache
def _catalog(language: str) -> NullTranslations:
    if language in CATALOGS:
        return Translations.load(str(TRANSLATIONS), locales=[CATALOGS[language]], domain="messages")
    return NullTranslations()


def gettext(message: str, language: str) -> str:
    return _catalog(language).gettext(message)


class _Values(dict):
    """Parameters for ``%`` formatting; a placeholder with no value shows a dash rather than failing."""

    def __missing__(self, key: str) -> str:
        return "—"


def _format(message: str, language: str, values: dict) -> str:
    try:
        return gettext(message, language) % _Values(values)
    except (TypeError, ValueError):  # a broken translation: the English text is better than nothing
        return message % _Values(values)


def filing_label(params: dict, language: str) -> str:
    """“name” (filing number, or #id) in ``language``, the name falling back to the other language's."""
    if language == ZH:
        name = params.get("name_zh") or params.get("name_en") or ""
    else:
        name = params.get("name_en") or params.get("name_zh") or ""
    ref = params.get("number") or f"#{params.get('filing_id', '?')}"
    return _format(FILING, language, {"name": name, "ref": ref})


def title(kind: str, language: str) -> str:
    """The notification's short title (an e-mail's subject, a heading in the inbox)."""
    message = TITLES.get(kind)
    return gettext(message, language) if message else kind


def render(kind: str, params: dict, language: str) -> str:
    """The notification's sentence in ``language`` (``zh`` or ``en``), from its kind and stored parameters."""
    message = TEXTS.get(kind)
    if message is None:
        return title(kind, language)
    values = {key: value for key, value in params.items() if isinstance(value, str | int | float)}
    values["filing"] = filing_label(params, language)
    if "outcome" in params:
        values["outcome"] = gettext(OUTCOMES.get(params["outcome"], params["outcome"]), language)
    if kind == Kind.AUDIT_DONE:
        verdict = VERDICTS.get(params.get("verdict") or "", NO_VERDICT)
        values["verdict"] = gettext(verdict, language)
    text = _format(message, language, values)
    if kind == Kind.DECISION_EFFECTIVE and params.get("number"):
        text += " " + _format(NUMBER_ISSUED, language, {"number": params["number"]})
    return text
