"""What a log entry says: the decision record of one lifecycle step, as a dict whose canonical JSON is the leaf.

One function builds it, from the filing, the step of its trail and (for a decision) the decision row; the log
appends it, and ``registry log verify`` builds it again from the rows as they are now and compares — so a decision
row edited behind the app's back no longer matches its leaf. Roles only, never a person (no names, no ids of
accounts). No Flask here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from registry.filings.lifecycle import Action

SCHEMA_VERSION = "1"  # of schemas/decision-log-entry.json

# The lifecycle steps that are decisions about a filing, and the event each is logged as.
LOGGED = {
    Action.APPROVE: "approved",
    Action.APPROVE_WITH_CONDITIONS: "approved_with_conditions",
    Action.REJECT: "rejected",
    Action.SUSPEND: "suspended",
    Action.REVOKE: "revoked",
    Action.EXPIRE: "expired",
    Action.SUPERSEDE: "superseded",
}
DECISION_EVENTS = frozenset({"approved", "approved_with_conditions", "rejected"})


def _time(value: datetime) -> str:
    """RFC 3339, UTC, microseconds: the same text every time it is rebuilt from the database."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(*, filing, transition, decision=None, city_name_zh: str = "") -> dict:
    """The decision record of ``transition`` (a step in ``LOGGED``) of ``filing``.

    ``decision`` is the decision row for approve / approve with conditions / reject (it carries the conditions or
    reasons, the tier, the audit reports the decision rests on and who signed it); other steps carry their reason.
    """
    event = LOGGED[transition.action]
    body: dict = {
        "schema_version": SCHEMA_VERSION,
        "event": event,
        "filing_number": filing.filing_number,
        "filing_id": filing.id,
        "algorithm": {
            "name_zh": filing.algorithm_name_zh,
            "name_en": filing.algorithm_name_en,
            "version": filing.algorithm_version,
        },
        "city": {"code": filing.city_code, "name_zh": city_name_zh},
        "time": _time(transition.at),
        "from_state": transition.from_state,
        "to_state": transition.to_state,
    }
    if event in DECISION_EVENTS:
        if decision is None:
            raise ValueError(f"a {event} entry needs its decision row")
        body |= {
            "decision_id": decision.id,
            "outcome": decision.outcome,
            "tier": decision.tier,
            "conditions": list(decision.conditions or []),
            "reasons": list(decision.reasons or []),
            "audit_report_sha256": sorted(decision.audit_report_sha256 or []),
            "decided_by": ["reviewer", "reviewer"] if decision.countersigned_by_id is not None else ["reviewer"],
        }
    else:
        body |= {
            "tier": filing.risk_tier,
            "reasons": [transition.reason] if transition.reason else [],
            "decided_by": [transition.actor_role],
        }
    return body
