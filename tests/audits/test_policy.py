"""The audit policy: the shipped default is valid; each criterion passes, fails or lacks data as its figure says."""

import copy

import pytest

from audits import policy


def _explained(undeclared=0, technical_document=True):
    """The explainability section as the criteria see it: its summary."""
    return {
        "technical_document": technical_document,
        "summary": {
            "top_inputs": ["income"],
            "flagged_proxies": 2,
            "undeclared_proxies": undeclared if technical_document else None,
            "inputs": {"undeclared_proxies": ["relationship"][:undeclared]},
        },
    }


def _figures(accuracy=0.9, ratio=0.85, lowest_group_accuracy=0.8, small=False, explained=None):
    groups = [
        {"group": {"sex": "F"}, "n": 500, "accuracy": lowest_group_accuracy, "insufficient_data": False},
        {"group": {"sex": "M"}, "n": 500, "accuracy": 0.95, "insufficient_data": False},
        {"group": {"sex": "X"}, "n": 3, "accuracy": 0.1, "insufficient_data": True},
    ]
    if small:
        for g in groups:
            g["insufficient_data"] = True
    return {
        "explainability": _explained() if explained is None else explained,
        "overall": {"accuracy": accuracy},
        "by_group": groups,
        "disparities": {
            "demographic_parity_ratio": {"value": None if small else ratio, "groups": [{"sex": "M"}, {"sex": "F"}]},
            "equalized_odds_difference": {"value": 0.05, "groups": []},
            "equal_opportunity_difference": {"value": 0.02, "groups": []},
            "predictive_parity_difference": {"value": 0.03, "groups": []},
        },
    }


def test_the_shipped_policy_is_valid_and_names_the_source_of_every_threshold():
    shipped = policy.load()
    for tier in policy.TIERS:
        for criterion in shipped.tier(tier)["criteria"]:
            assert criterion["source"] and criterion["title_zh"] and criterion["title_en"]
    assert shipped.tier("IV")["reaudit_interval_months"] == 6
    assert shipped.tier("I")["reaudit_interval_months"] is None


def test_thresholds_tighten_with_the_tier():
    shipped = policy.load()
    accuracy = [
        next(c["threshold"] for c in shipped.tier(t)["criteria"] if c["id"] == "accuracy") for t in policy.TIERS
    ]
    assert accuracy == sorted(accuracy)
    sizes = [shipped.tier(t)["min_group_size"] for t in policy.TIERS]
    assert sizes == sorted(sizes)


def test_each_criterion_is_judged_on_its_figure():
    criteria, verdict = policy.judge(policy.load(), "III", _figures(), None)
    status = {c["id"]: c["status"] for c in criteria}
    assert status == {
        "accuracy": "pass",
        "min_group_accuracy": "pass",
        "impact_ratio": "pass",
        "equalized_odds": "pass",
        "equal_opportunity": "pass",
        "undeclared_proxies": "pass",
    }
    assert verdict == "meets"


def test_an_undeclared_proxy_fails_tiers_iii_and_iv_and_names_the_input():
    for tier in ("III", "IV"):
        criteria, verdict = policy.judge(policy.load(), tier, _figures(explained=_explained(undeclared=1)), None)
        proxies = next(c for c in criteria if c["id"] == "undeclared_proxies")
        assert proxies["status"] == "fail" and proxies["value"] == 1 and proxies["inputs"] == ["relationship"]
        assert proxies["source"] and proxies["title_zh"] == "未声明的代理变量"
        assert verdict == "does_not_meet"
    for tier in ("I", "II"):  # shown as a finding only
        criteria, verdict = policy.judge(policy.load(), tier, _figures(explained=_explained(undeclared=1)), None)
        assert "undeclared_proxies" not in {c["id"] for c in criteria} and verdict == "meets"


def test_an_explainability_criterion_lacks_data_without_the_step_or_a_technical_document():
    for explained, note in (
        ({}, "the explainability step was not run"),
        (_explained(technical_document=False), "no technical document to compare with"),
    ):
        criteria, verdict = policy.judge(policy.load(), "IV", _figures(explained=explained), None)
        proxies = next(c for c in criteria if c["id"] == "undeclared_proxies")
        assert proxies["status"] == "insufficient_data" and proxies["value"] is None and proxies["note"] == note
        assert verdict == "meets"


def test_a_policy_may_judge_any_count_of_the_explainability_summary_but_not_a_list():
    document = copy.deepcopy(policy.load().document)
    document["tiers"]["I"]["criteria"] = [
        {"id": "proxies", "figure": "explainability.flagged_proxies", "op": "<=", "threshold": 1},
        {"id": "names", "figure": "explainability.top_inputs", "op": "<=", "threshold": 1},
    ]
    criteria, verdict = policy.judge(policy.from_document(document), "I", _figures(), None)
    assert [(c["status"], c["value"]) for c in criteria] == [("fail", 2), ("insufficient_data", None)]
    assert verdict == "does_not_meet"
    document["tiers"]["I"]["criteria"][0]["figure"] = "explanations.flagged_proxies"
    with pytest.raises(policy.PolicyError, match="/tiers/I/criteria/0/figure"):
        policy.from_document(document)


def test_the_shipped_explainability_settings_have_their_source():
    settings = policy.load().explainability
    assert settings["enabled"] is True and settings["sample_rows"] == 20_000 and settings["proxy_auc_threshold"] == 0.7
    assert "Hosmer" in settings["source"]


def test_a_threshold_is_met_exactly_on_the_edge():
    criteria, _ = policy.judge(policy.load(), "III", _figures(ratio=0.8), None)
    assert next(c for c in criteria if c["id"] == "impact_ratio")["status"] == "pass"


def test_one_failed_criterion_fails_the_verdict_and_names_the_groups():
    criteria, verdict = policy.judge(policy.load(), "III", _figures(ratio=0.79), None)
    failed = next(c for c in criteria if c["id"] == "impact_ratio")
    assert failed["status"] == "fail" and failed["value"] == 0.79
    assert failed["groups"] == [{"sex": "M"}, {"sex": "F"}]
    assert verdict == "does_not_meet"


def test_the_lowest_group_is_judged_and_small_groups_are_not():
    criteria, _ = policy.judge(policy.load(), "III", _figures(lowest_group_accuracy=0.6), None)
    lowest = next(c for c in criteria if c["id"] == "min_group_accuracy")
    assert lowest["status"] == "fail" and lowest["groups"] == [{"sex": "F"}]  # not the 3-row group at 0.1


def test_figures_without_enough_data_are_insufficient_never_passed_or_failed():
    criteria, verdict = policy.judge(policy.load(), "III", _figures(small=True), None)
    status = {c["id"]: c["status"] for c in criteria}
    assert status["impact_ratio"] == "insufficient_data"
    assert status["min_group_accuracy"] == "insufficient_data"
    assert verdict == "meets"  # nothing failed


def test_the_interval_is_carried_beside_the_value():
    intervals = {"overall": {"accuracy": [0.88, 0.92]}, "disparities": {"demographic_parity_ratio": [0.8, 0.9]}}
    criteria, _ = policy.judge(policy.load(), "II", _figures(), intervals)
    assert next(c for c in criteria if c["id"] == "accuracy")["interval"] == [0.88, 0.92]


def test_an_unknown_tier_is_refused():
    with pytest.raises(policy.PolicyError):
        policy.load().tier("V")


def test_a_policy_missing_a_tier_is_refused_with_the_pointer():
    broken = copy.deepcopy(policy.load().document)
    del broken["tiers"]["II"]
    with pytest.raises(policy.PolicyError, match="/tiers"):
        policy.from_document(broken)
