"""The lifecycle table: legal steps move the filing, illegal ones are refused with the state and the way on."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import Forbidden, IllegalTransition, Unprocessable
from registry.filings import lifecycle
from registry.filings.lifecycle import Action, State

# The lifecycle of DESIGN.md written out independently of the module's table: (state, action, actor) → next state.
EXPECTED = {
    ("draft", "submit", "city"): "submitted",
    ("draft", "withdraw", "city"): "withdrawn",
    ("submitted", "withdraw", "city"): "withdrawn",
    ("changes_requested", "withdraw", "city"): "withdrawn",
    ("submitted", "start_review", "reviewer"): "under_review",
    ("resubmitted", "start_review", "reviewer"): "under_review",
    ("under_review", "request_changes", "reviewer"): "changes_requested",
    ("changes_requested", "resubmit", "city"): "resubmitted",
    # Decisions are taken only as a decision (registry.decisions: four eyes on tiers III and IV), never by a reviewer.
    ("under_review", "approve", "decision"): "approved",
    ("under_review", "approve_with_conditions", "decision"): "approved_with_conditions",
    ("under_review", "reject", "decision"): "rejected",
    ("approved", "suspend", "reviewer"): "suspended",
    ("approved_with_conditions", "suspend", "reviewer"): "suspended",
    ("approved", "revoke", "reviewer"): "revoked",
    ("approved_with_conditions", "revoke", "reviewer"): "revoked",
    ("suspended", "revoke", "reviewer"): "revoked",
    ("approved", "expire", "system"): "expired",
    ("approved_with_conditions", "expire", "system"): "expired",
    ("suspended", "expire", "system"): "expired",
    ("approved", "supersede", "system"): "superseded",
    ("approved_with_conditions", "supersede", "system"): "superseded",
    ("suspended", "supersede", "system"): "superseded",
}
ACTORS = ("city", "reviewer", "system", "decision")


@pytest.mark.parametrize(("state", "action", "actor"), sorted(EXPECTED))
def test_every_legal_step_reaches_the_state_design_md_names(state, action, actor):
    assert lifecycle.next_state(state, action, actor=actor, reason="because") == EXPECTED[(state, action, actor)]


@pytest.mark.parametrize("state", [s.value for s in State])
@pytest.mark.parametrize("action", [a.value for a in Action])
def test_a_step_not_in_the_lifecycle_is_refused_with_the_current_state_and_the_allowed_steps(state, action):
    legal_from_here = {a for (s, a, _actor) in EXPECTED if s == state}
    if action in legal_from_here:
        return
    with pytest.raises(IllegalTransition) as caught:
        lifecycle.next_state(state, action, actor="reviewer", reason="x")
    assert caught.value.current_state == state
    assert set(caught.value.allowed_actions) == legal_from_here
    assert caught.value.status == 409


def test_the_wrong_kind_of_actor_is_forbidden_even_when_the_step_exists():
    with pytest.raises(Forbidden):
        lifecycle.next_state("draft", "submit", actor="reviewer")
    with pytest.raises(Forbidden):
        lifecycle.next_state("under_review", "request_changes", actor="city", reason="x")
    with pytest.raises(Forbidden):
        lifecycle.next_state("approved", "expire", actor="reviewer", reason="x")


@pytest.mark.parametrize("action", ["approve", "approve_with_conditions", "reject"])
@pytest.mark.parametrize("actor", ["city", "reviewer", "system"])
def test_no_person_decides_a_filing_by_a_lifecycle_step_alone(action, actor):
    with pytest.raises(Forbidden) as caught:
        lifecycle.next_state("under_review", action, actor=actor, reason="because")
    assert caught.value.code == "decision_required"


def test_suspend_and_revoke_are_steps_a_person_takes_and_decisions_are_not():
    assert {"suspend", "revoke"} <= lifecycle.PERSON_ACTIONS
    assert not {"approve", "approve_with_conditions", "reject"} & lifecycle.PERSON_ACTIONS


@pytest.mark.parametrize(
    ("action", "actor"),
    [("request_changes", "reviewer"), ("reject", "decision"), ("approve_with_conditions", "decision")],
)
def test_steps_that_need_a_reason_refuse_a_blank_one(action, actor):
    with pytest.raises(Unprocessable) as caught:
        lifecycle.next_state("under_review", action, actor=actor, reason="   ")
    assert caught.value.pointer == "/reason"


def test_terminal_states_allow_no_step():
    for state in ("rejected", "revoked", "expired", "superseded", "withdrawn"):
        assert lifecycle.allowed_actions(state) == ()


def test_an_unknown_action_is_an_illegal_transition_not_a_crash():
    with pytest.raises(IllegalTransition):
        lifecycle.next_state("draft", "teleport", actor="city")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([a.value for a in Action]), st.sampled_from(ACTORS)), max_size=25))
def test_any_sequence_of_steps_only_ever_follows_the_table(steps):
    """Random sequences from a draft: each step either follows EXPECTED exactly or is refused and changes nothing."""
    state = "draft"
    for action, actor in steps:
        expected = EXPECTED.get((state, action, actor))
        try:
            new_state = lifecycle.next_state(state, action, actor=actor, reason="r")
        except (IllegalTransition, Forbidden):
            assert expected is None
            continue
        assert new_state == expected
        state = new_state
    assert state in {s.value for s in State}
