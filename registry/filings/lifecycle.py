"""The lifecycle of a filing (DESIGN.md), in one table: every transition the registry allows, and who may take it.

draft → submitted → under review → (changes requested → resubmitted → under review)* → approved |
approved with conditions | rejected; an approved filing can be suspended, revoked, expire or be superseded.
Pure: no database, no web. The service applies a transition and appends it to the trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from registry.errors import Forbidden, IllegalTransition, Unprocessable


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    CHANGES_REQUESTED = "changes_requested"
    RESUBMITTED = "resubmitted"
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


class Action(StrEnum):
    SUBMIT = "submit"
    WITHDRAW = "withdraw"
    START_REVIEW = "start_review"
    REQUEST_CHANGES = "request_changes"
    RESUBMIT = "resubmit"
    APPROVE = "approve"
    APPROVE_WITH_CONDITIONS = "approve_with_conditions"
    REJECT = "reject"
    SUSPEND = "suspend"
    REVOKE = "revoke"
    EXPIRE = "expire"
    SUPERSEDE = "supersede"


# Who takes an action: the filing's own city team, a provincial reviewer, the registry itself, or a decision.
CITY = "city"
REVIEWER = "reviewer"
SYSTEM = "system"
# A decision made effective by registry.decisions.service, the only code that acts as this kind: it applies the
# four-eyes rule (tiers III and IV need a second reviewer's countersignature), so no single reviewer can approve
# or reject a filing through any other route, the filing service included.
DECISION = "decision"

DECIDED = frozenset({State.APPROVED, State.APPROVED_WITH_CONDITIONS})
# States a city team may still change the documents and model in.
EDITABLE = frozenset({State.DRAFT, State.CHANGES_REQUESTED})
# States in which a filing waits for, or is in, provincial review.
IN_REVIEW = frozenset({State.SUBMITTED, State.UNDER_REVIEW, State.RESUBMITTED})
TERMINAL = frozenset({State.REJECTED, State.REVOKED, State.EXPIRED, State.SUPERSEDED, State.WITHDRAWN})


@dataclass(frozen=True)
class Transition:
    action: Action
    sources: frozenset[State]
    target: State
    actors: frozenset[str]
    reason_required: bool = False


TRANSITIONS: dict[Action, Transition] = {
    t.action: t
    for t in (
        Transition(Action.SUBMIT, frozenset({State.DRAFT}), State.SUBMITTED, frozenset({CITY})),
        Transition(
            Action.WITHDRAW,
            frozenset({State.DRAFT, State.SUBMITTED, State.CHANGES_REQUESTED}),
            State.WITHDRAWN,
            frozenset({CITY}),
        ),
        Transition(
            Action.START_REVIEW,
            frozenset({State.SUBMITTED, State.RESUBMITTED}),
            State.UNDER_REVIEW,
            frozenset({REVIEWER}),
        ),
        Transition(
            Action.REQUEST_CHANGES,
            frozenset({State.UNDER_REVIEW}),
            State.CHANGES_REQUESTED,
            frozenset({REVIEWER}),
            reason_required=True,
        ),
        Transition(Action.RESUBMIT, frozenset({State.CHANGES_REQUESTED}), State.RESUBMITTED, frozenset({CITY})),
        Transition(Action.APPROVE, frozenset({State.UNDER_REVIEW}), State.APPROVED, frozenset({DECISION})),
        Transition(
            Action.APPROVE_WITH_CONDITIONS,
            frozenset({State.UNDER_REVIEW}),
            State.APPROVED_WITH_CONDITIONS,
            frozenset({DECISION}),
            reason_required=True,
        ),
        Transition(
            Action.REJECT, frozenset({State.UNDER_REVIEW}), State.REJECTED, frozenset({DECISION}), reason_required=True
        ),
        Transition(Action.SUSPEND, DECIDED, State.SUSPENDED, frozenset({REVIEWER}), reason_required=True),
        Transition(
            Action.REVOKE, DECIDED | {State.SUSPENDED}, State.REVOKED, frozenset({REVIEWER}), reason_required=True
        ),
        Transition(
            Action.EXPIRE, DECIDED | {State.SUSPENDED}, State.EXPIRED, frozenset({SYSTEM}), reason_required=True
        ),
        Transition(Action.SUPERSEDE, DECIDED | {State.SUSPENDED}, State.SUPERSEDED, frozenset({SYSTEM})),
    )
}

# Actions a person takes directly through the web or the API. Decisions (approve, approve with conditions, reject)
# are taken through registry.decisions (propose, countersign); expiry and supersession by the registry itself.
PERSON_ACTIONS = frozenset(
    {
        Action.SUBMIT,
        Action.WITHDRAW,
        Action.START_REVIEW,
        Action.REQUEST_CHANGES,
        Action.RESUBMIT,
        Action.SUSPEND,
        Action.REVOKE,
    }
)
DECISION_ACTIONS = frozenset({Action.APPROVE, Action.APPROVE_WITH_CONDITIONS, Action.REJECT})
# A decision's outcome is the state its step leads to: approved → approve, rejected → reject, …
OUTCOME_ACTIONS = {t.target.value: t.action for t in TRANSITIONS.values() if t.action in DECISION_ACTIONS}
# Risk tiers one reviewer may decide alone; any other tier (III, IV, or none assessed yet) needs a countersignature.
SINGLE_REVIEWER_TIERS = frozenset({"I", "II"})


def needs_countersignature(tier: str | None) -> bool:
    """True when a decision on a filing of ``tier`` needs a second reviewer (four eyes): tiers III, IV and none."""
    return tier not in SINGLE_REVIEWER_TIERS


def allowed_actions(state: str, actor: str | None = None) -> tuple[str, ...]:
    """The actions possible from ``state`` (for ``actor`` when given), in a stable order."""
    return tuple(
        t.action.value for t in TRANSITIONS.values() if state in t.sources and (actor is None or actor in t.actors)
    )


def next_state(state: str, action: str, *, actor: str, reason: str = "") -> State:
    """The state a filing in ``state`` moves to when ``actor`` takes ``action``.

    Raises IllegalTransition (the action is unknown or not possible from this state), Forbidden (this kind of
    actor may not take it) or Unprocessable (a reason is required and missing).
    """
    transition = TRANSITIONS.get(action)  # StrEnum keys match plain strings
    if transition is None or state not in transition.sources:
        raise IllegalTransition(
            f"Cannot {action} a filing that is {state}.",
            code="illegal_transition",
            current_state=str(state),
            allowed_actions=allowed_actions(state),
        )
    if actor not in transition.actors:
        if DECISION in transition.actors:
            raise Forbidden(
                f"A filing is not {transition.target.value.replace('_', ' ')} by a single step: propose a decision "
                "(tiers III and IV need a second reviewer's countersignature).",
                code="decision_required",
            )
        raise Forbidden(f"Only {' or '.join(sorted(transition.actors))} may {action} a filing.", code="not_your_step")
    if transition.reason_required and not reason.strip():
        raise Unprocessable(f"A reason is required to {action} a filing.", code="reason_required", pointer="/reason")
    return transition.target
