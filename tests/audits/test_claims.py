"""Claimed vs measured: a difference is flagged only beyond the tolerance and outside the interval."""

from audits import claims

FIGURES = {
    "overall": {"accuracy": 0.80, "selection_rate": 0.30},
    "by_group": [{"group": {"sex": "Female", "race": "White"}, "accuracy": 0.78}],
    "by_attribute": {
        "sex": [{"group": {"sex": "Female"}, "accuracy": 0.79}, {"group": {"sex": "Male"}, "accuracy": 0.81}]
    },
}
INTERVALS = {
    "overall": {"accuracy": [0.78, 0.82], "selection_rate": [0.28, 0.32]},
    "by_group": [{"group": {"sex": "Female", "race": "White"}, "accuracy": [0.70, 0.86]}],
    "by_attribute": {"sex": [{"group": {"sex": "Female"}, "accuracy": [0.77, 0.81]}]},
}


def _report(overall, groups=()):
    return {"overall": overall, "groups": list(groups)}


def _row(result, scope, figure):
    return next(r for r in result["rows"] if r["scope"] == scope and r["figure"] == figure)


def test_an_inflated_claim_is_flagged_with_its_difference():
    result = claims.compare(_report({"accuracy": 0.90}), FIGURES, INTERVALS, tolerance=0.02)
    row = _row(result, {"overall": True}, "accuracy")
    assert row["flagged"] and row["status"] == "differs"
    assert abs(row["difference"] - 0.10) < 1e-12
    assert result["flagged"] == 1


def test_a_difference_within_tolerance_is_not_flagged():
    result = claims.compare(_report({"accuracy": 0.815}), FIGURES, None, tolerance=0.02)
    assert not _row(result, {"overall": True}, "accuracy")["flagged"]


def test_a_difference_the_interval_explains_is_not_flagged():
    # 0.85 is 0.07 above the measured 0.78 for this small group, but inside its wide interval [0.70, 0.86]
    claimed = _report(
        {}, [{"grouping": ["sex", "race"], "group": {"sex": "female", "race": "white"}, "figures": {"accuracy": 0.85}}]
    )
    result = claims.compare(claimed, FIGURES, INTERVALS, tolerance=0.02)
    row = _row(result, {"group": {"sex": "Female", "race": "White"}}, "accuracy")
    assert row["flagged"] is False and row["status"] == "consistent"


def test_groups_match_single_attributes_case_insensitively_and_unknown_groups_are_listed():
    claimed = _report(
        {},
        [
            {"grouping": ["sex"], "group": {"SEX": "MALE"}, "figures": {"accuracy": 0.95}},
            {"grouping": ["sex"], "group": {"sex": "其他"}, "figures": {"accuracy": 0.5}},
        ],
    )
    result = claims.compare(claimed, FIGURES, INTERVALS, tolerance=0.02)
    assert _row(result, {"group": {"sex": "Male"}}, "accuracy")["flagged"] is True
    assert result["not_comparable_groups"] == [{"sex": "其他"}]


def test_a_claimed_figure_that_was_not_measured_is_said_so():
    result = claims.compare(_report({"roc_auc": 0.9}), FIGURES, INTERVALS, tolerance=0.02)
    row = _row(result, {"overall": True}, "roc_auc")
    assert row["status"] == "not_measured" and row["flagged"] is False
