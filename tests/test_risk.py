"""registry.filings.risk: the impact questionnaire and the risk tier it gives (after Canada's AIA)."""

import json
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from registry.filings import risk

Q = risk.questionnaire()
QUESTIONS = Q["questions"]
RISK = [q for q in QUESTIONS if q["kind"] == "risk"]
MITIGATION = [q for q in QUESTIONS if q["kind"] == "mitigation"]
CJK = re.compile(r"[\u4e00-\u9fff]")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
TIER_INDEX = {t: i for i, t in enumerate(risk.TIERS)}


def lowest():
    """Every question answered with its lowest-scoring option: 0 risk points, 0 mitigation points."""
    return {q["id"]: min(q["options"], key=lambda o: o["points"])["id"] for q in QUESTIONS}


# ------------------------------------------------------------------------------------------- questionnaire


def test_questionnaire_has_the_agreed_shape():
    assert Q["version"] == "1"
    assert Q["mitigation_bar"] == 0.8 and Q["mitigation_reduction"] == 0.15
    assert Q["tier_cuts"] == [0.25, 0.5, 0.75]
    assert len(RISK) == 12 and len(MITIGATION) == 6
    assert len({q["id"] for q in QUESTIONS}) == len(QUESTIONS)
    for q in QUESTIONS:
        assert SNAKE.match(q["id"]) and q["kind"] in ("risk", "mitigation")
        assert CJK.search(q["text_zh"]) and q["text_zh"].endswith("？") and q["text_en"].endswith("?")
        assert len(q["options"]) >= 2 and len({o["id"] for o in q["options"]}) == len(q["options"])
        assert min(o["points"] for o in q["options"]) == 0
        for o in q["options"]:
            assert SNAKE.match(o["id"]) and CJK.search(o["text_zh"]) and o["text_en"]
            assert isinstance(o["points"], int) and o["points"] >= 0


def test_questionnaire_maxima_are_40_risk_and_15_mitigation_points():
    assert sum(max(o["points"] for o in q["options"]) for q in RISK) == 40
    assert sum(max(o["points"] for o in q["options"]) for q in MITIGATION) == 15


def test_technical_document_schema_lists_exactly_the_questionnaire_questions_and_options():
    ia = schemas.load("technical-document")["properties"]["impact_assessment"]
    assert ia["properties"]["questionnaire_version"]["const"] == Q["version"]
    answers = ia["properties"]["answers"]
    assert answers["additionalProperties"] is False
    assert list(answers["properties"]) == [q["id"] for q in QUESTIONS]
    assert sorted(answers["required"]) == sorted(q["id"] for q in QUESTIONS)
    for q in QUESTIONS:
        assert answers["properties"][q["id"]]["enum"] == [o["id"] for o in q["options"]], q["id"]


def test_questionnaire_returns_the_file_contents():
    path = pathlib.Path(risk.__file__).with_name("impact_questionnaire.json")
    assert risk.questionnaire() == json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- known answers


def test_lowest_answers_give_tier_i_with_zero_score():
    a = risk.assess(lowest())
    assert (a.tier, a.raw_score, a.max_raw_score, a.mitigation_score, a.max_mitigation_score) == ("I", 0, 40, 0, 15)
    assert a.percent == 0.0 and a.mitigation_applied is False


def test_highest_risk_without_mitigation_gives_tier_iv_at_100_percent():
    answers = lowest()
    for q in RISK:
        answers[q["id"]] = max(q["options"], key=lambda o: o["points"])["id"]
    a = risk.assess(answers)
    assert (a.tier, a.raw_score, a.score, a.percent) == ("IV", 40, 40.0, 1.0)


def test_highest_risk_with_full_mitigation_is_still_tier_iv():
    answers = {q["id"]: max(q["options"], key=lambda o: o["points"])["id"] for q in QUESTIONS}
    a = risk.assess(answers)
    # 40 * 0.85 = 34; 34 / 40 = 0.85 > 0.75
    assert (a.tier, a.mitigation_score, a.mitigation_applied, a.score, a.percent) == ("IV", 15, True, 34.0, 0.85)


# Raw points of the overrides below, by hand:
#   decides_automatically 4 + basic_livelihood 4 + reversible_with_effort 1 + medium_term 1            = 10
TEN = {
    "decision_automation": "decides_automatically",
    "consequence_area": "basic_livelihood",
    "reversibility": "reversible_with_effort",
    "impact_duration": "medium_term",
}


@pytest.mark.parametrize(
    ("overrides", "raw", "tier"),
    [
        (TEN, 10, "I"),  # 10/40 = 0.25, exactly on the first cut: still I
        (TEN | {"annual_decisions": "up_to_10000"}, 11, "II"),  # 11/40 = 0.275
        # 10 + severe 4 + mainly 4 + up_to_100000 2 = 20
        (
            TEN | {"consequence_severity": "severe", "vulnerable_groups": "mainly", "annual_decisions": "up_to_100000"},
            20,
            "II",
        ),  # 20/40 = 0.5, exactly on the second cut
        # 10 + severe 4 + mainly 4 + over_100000 3 = 21
        (
            TEN | {"consequence_severity": "severe", "vulnerable_groups": "mainly", "annual_decisions": "over_100000"},
            21,
            "III",
        ),  # 21/40 = 0.525
        # 21 + directly 4 + interpretable_model 1 + sensitive (personal data) 3 + vendor_with_access 1 = 30
        (
            TEN
            | {
                "consequence_severity": "severe",
                "vulnerable_groups": "mainly",
                "annual_decisions": "over_100000",
                "sensitive_attributes": "directly",
                "model_opacity": "interpretable_model",
                "personal_data": "sensitive",
                "vendor_dependence": "vendor_with_access",
            },
            30,
            "III",
        ),  # 30/40 = 0.75, exactly on the last cut: still III
        (
            TEN
            | {
                "consequence_severity": "severe",
                "vulnerable_groups": "mainly",
                "annual_decisions": "over_100000",
                "sensitive_attributes": "directly",
                "model_opacity": "interpretable_model",
                "personal_data": "sensitive",
                "vendor_dependence": "vendor_closed",
            },
            31,
            "IV",
        ),  # vendor_closed 2 instead of 1: 31/40 = 0.775
    ],
)
def test_known_answers_without_mitigation_give_the_tier_computed_by_hand(overrides, raw, tier):
    a = risk.assess(lowest() | overrides)
    assert (a.raw_score, a.mitigation_applied, a.tier) == (raw, False, tier)
    assert a.percent == pytest.approx(raw / 40)


# Mitigation points, by hand: every_adverse_decision 3 + dedicated_channel 3 + third_party 3 + main_factors 2 = 11
ELEVEN = {
    "human_review_of_adverse_decisions": "every_adverse_decision",
    "appeal_channel": "dedicated_channel",
    "independent_testing": "third_party",
    "explanation_to_person": "main_factors",
}
# Risk points: decides_automatically 4 + basic_livelihood 4 + severe 4 + hard_to_reverse 3 + mainly 4 + over_100000 3
#              = 22 -> 22/40 = 0.55 (III); with mitigation 22 * 0.85 = 18.7 -> 18.7/40 = 0.4675 (II)
TWENTY_TWO = {
    "decision_automation": "decides_automatically",
    "consequence_area": "basic_livelihood",
    "consequence_severity": "severe",
    "reversibility": "hard_to_reverse",
    "vulnerable_groups": "mainly",
    "annual_decisions": "over_100000",
}


def test_mitigation_just_below_the_80_percent_bar_is_not_applied():
    # 11 of 15 = 73.3 %, the highest total below 12 = 0.8 * 15
    a = risk.assess(lowest() | TWENTY_TWO | ELEVEN)
    assert (a.raw_score, a.mitigation_score, a.mitigation_applied) == (22, 11, False)
    assert (a.score, a.percent, a.tier) == (22.0, 0.55, "III")


def test_mitigation_exactly_at_the_80_percent_bar_is_applied():
    a = risk.assess(lowest() | TWENTY_TWO | ELEVEN | {"ongoing_monitoring": "accuracy_only"})  # 11 + 1 = 12 = 0.8 * 15
    assert (a.raw_score, a.mitigation_score, a.max_mitigation_score, a.mitigation_applied) == (22, 12, 15, True)
    assert a.score == pytest.approx(18.7) and a.percent == pytest.approx(0.4675)
    assert a.tier == "II"


def test_breakdown_has_one_entry_per_question_summing_to_the_scores():
    answers = lowest() | TWENTY_TWO | ELEVEN
    a = risk.assess(answers)
    assert [b["question_id"] for b in a.breakdown] == [q["id"] for q in QUESTIONS]
    assert all(b["answer"] == answers[b["question_id"]] for b in a.breakdown)
    assert sum(b["points"] for b in a.breakdown if b["kind"] == "risk") == a.raw_score
    assert sum(b["max_points"] for b in a.breakdown if b["kind"] == "risk") == a.max_raw_score
    assert sum(b["points"] for b in a.breakdown if b["kind"] == "mitigation") == a.mitigation_score
    assert set(a.breakdown[0]) == {"question_id", "kind", "answer", "points", "max_points"}


def test_to_json_is_serialisable_and_complete():
    a = risk.assess(lowest() | TWENTY_TWO)
    data = json.loads(json.dumps(a.to_json()))
    assert data["tier"] == a.tier and data["questionnaire_version"] == "1"
    assert set(data) == {
        "tier",
        "raw_score",
        "max_raw_score",
        "mitigation_score",
        "max_mitigation_score",
        "mitigation_applied",
        "score",
        "percent",
        "questionnaire_version",
        "breakdown",
    }
    assert data["breakdown"] == list(a.breakdown)


def test_demo_documents_cover_all_four_tiers():
    path = pathlib.Path(risk.__file__).resolve().parent.parent / "demo_data" / "technical_documents.json"
    docs = json.loads(path.read_text(encoding="utf-8"))
    tiers = {risk.assess(d["impact_assessment"]["answers"]).tier for d in docs}
    assert tiers == set(risk.TIERS)


# ------------------------------------------------------------------------------------------- errors


def test_unknown_answer_raises_value_error_naming_the_question():
    with pytest.raises(ValueError, match="reversibility"):
        risk.assess(lowest() | {"reversibility": "sometimes"})


def test_unknown_question_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="favourite_colour"):
        risk.assess(lowest() | {"favourite_colour": "blue"})


def test_missing_answer_raises_value_error_naming_the_question():
    answers = lowest()
    del answers["appeal_channel"]
    with pytest.raises(ValueError, match="appeal_channel"):
        risk.assess(answers)


@pytest.mark.parametrize("bad", [None, ["decision_automation"], "decides_automatically"])
def test_answers_that_are_not_a_mapping_raise_value_error(bad):
    with pytest.raises(ValueError):
        risk.assess(bad)


def test_a_non_string_answer_raises_value_error_naming_the_question():
    with pytest.raises(ValueError, match="model_opacity"):
        risk.assess(lowest() | {"model_opacity": 4})


# ------------------------------------------------------------------------------------------- properties

answers_strategy = st.fixed_dictionaries({q["id"]: st.sampled_from([o["id"] for o in q["options"]]) for q in QUESTIONS})


@settings(max_examples=300, database=None, deadline=None)
@given(answers=answers_strategy, data=st.data())
def test_raising_a_risk_answer_never_lowers_the_tier(answers, data):
    question = data.draw(st.sampled_from(RISK))
    points = {o["id"]: o["points"] for o in question["options"]}
    higher = [o for o in points if points[o] > points[answers[question["id"]]]]
    if not higher:
        higher = [answers[question["id"]]]
    raised = answers | {question["id"]: data.draw(st.sampled_from(higher))}
    before, after = risk.assess(answers), risk.assess(raised)
    assert after.raw_score >= before.raw_score
    assert TIER_INDEX[after.tier] >= TIER_INDEX[before.tier]


@settings(max_examples=300, database=None, deadline=None)
@given(answers=answers_strategy)
def test_tier_follows_the_cuts_and_mitigation_rule(answers):
    a = risk.assess(answers)
    expected_applied = a.mitigation_score * 5 >= a.max_mitigation_score * 4
    assert a.mitigation_applied is expected_applied
    expected_score = a.raw_score * (0.85 if expected_applied else 1)
    assert a.score == pytest.approx(expected_score)
    # compare in exact integers: percent <= cut  <=>  score * 100 <= cut% * 40
    score_x100 = a.raw_score * (85 if expected_applied else 100)
    expected = (
        "I" if score_x100 <= 25 * 40 else "II" if score_x100 <= 50 * 40 else "III" if score_x100 <= 75 * 40 else "IV"
    )
    assert a.tier == expected
