"""schemas.validation: validation against the schemas, with JSON Pointers and bilingual messages; and the demo data."""

import copy
import json
import pathlib
import re

import pytest

from schemas import validation as contracts
from schemas.validation import FieldError

DEMO = pathlib.Path(__file__).resolve().parent.parent / "registry" / "demo_data"
DOCS = json.loads((DEMO / "technical_documents.json").read_text(encoding="utf-8"))
REPORTS = json.loads((DEMO / "test_reports.json").read_text(encoding="utf-8"))
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def doc():
    return copy.deepcopy(DOCS[0])


def pointers(errors):
    return [(e.pointer, e.keyword) for e in errors]


# ------------------------------------------------------------------------------------------- valid documents


def test_a_valid_technical_document_has_no_errors(doc):
    assert contracts.validate("technical-document", doc) == []


def test_a_filing_envelope_resolves_refs_to_the_other_schemas():
    envelope = {"technical_document": DOCS[1], "test_report": REPORTS[1], "supersedes_filing_id": None}
    assert contracts.validate("filing", envelope) == []
    envelope["test_report"] = {"schema_version": "1"}
    assert ("/test_report/tester", "required") in pointers(contracts.validate("filing", envelope))


def test_schema_and_schema_id_return_the_named_schema():
    assert contracts.schema_id("test-report") == "urn:algorithm-registry:schema:test-report:1"
    assert contracts.schema("decision")["$id"] == contracts.schema_id("decision")
    with pytest.raises(KeyError):
        contracts.schema_id("nope")
    with pytest.raises(KeyError):
        contracts.validate("nope", {})


# ------------------------------------------------------------------------------------------- pointers


def test_missing_nested_property_points_at_the_missing_property(doc):
    del doc["algorithm"]["name_zh"]
    errors = contracts.validate("technical-document", doc)
    assert pointers(errors) == [("/algorithm/name_zh", "required")]
    assert "name_zh" in errors[0].message and "name_zh" in errors[0].message_zh


def test_unknown_property_points_at_the_unknown_property(doc):
    doc["algorithm"]["nickname"] = "x"
    assert pointers(contracts.validate("technical-document", doc)) == [("/algorithm/nickname", "additionalProperties")]


def test_unknown_top_level_property_is_reported(doc):
    doc["colour"] = "red"
    assert pointers(contracts.validate("technical-document", doc)) == [("/colour", "additionalProperties")]


def test_wrong_type_points_at_the_value_and_names_both_types(doc):
    doc["city_code"] = 410100
    errors = contracts.validate("technical-document", doc)
    assert pointers(errors) == [("/city_code", "type")]
    assert "string" in errors[0].message and "integer" in errors[0].message
    assert "字符串" in errors[0].message_zh and "整数" in errors[0].message_zh


def test_errors_inside_arrays_point_at_the_item_index(doc):
    doc["model"]["inputs"][1]["type"] = "video"
    doc["contacts"][1]["email"] = "not-an-address"
    doc["legal_basis"].append("")
    got = pointers(contracts.validate("technical-document", doc))
    assert got == [
        ("/contacts/1/email", "format"),
        ("/legal_basis/" + str(len(doc["legal_basis"]) - 1), "minLength"),
        ("/model/inputs/1/type", "enum"),
    ]


def test_pointer_tokens_escape_tilde_and_slash(doc):
    doc["algorithm"]["a/b~c"] = 1
    assert pointers(contracts.validate("technical-document", doc)) == [("/algorithm/a~1b~0c", "additionalProperties")]


def test_pointer_prefix_is_put_in_front_of_every_pointer(doc):
    del doc["department"]
    doc["scenario"] = "lottery"
    got = pointers(contracts.validate("technical-document", doc, pointer_prefix="/technical_document"))
    assert got == [("/technical_document/department", "required"), ("/technical_document/scenario", "enum")]


def test_errors_in_the_envelope_point_into_the_nested_document(doc):
    del doc["algorithm"]["name_zh"]
    got = pointers(contracts.validate("filing", {"technical_document": doc}))
    assert got == [("/technical_document/algorithm/name_zh", "required")]


def test_a_non_object_document_gets_an_error_at_the_root_pointer():
    assert pointers(contracts.validate("technical-document", [])) == [("", "type")]


# ------------------------------------------------------------------------------------------- all errors


def test_all_errors_are_reported_not_just_the_first(doc):
    del doc["algorithm"]["name_en"]
    del doc["vendor"]
    doc["city_code"] = "010100"
    doc["affected_population"]["estimated_decisions_per_year"] = -1
    doc["impact_assessment"]["answers"]["reversibility"] = "sometimes"
    doc["training_data"]["period"]["end"] = "2024-13-01"
    got = pointers(contracts.validate("technical-document", doc))
    assert got == [
        ("/affected_population/estimated_decisions_per_year", "minimum"),
        ("/algorithm/name_en", "required"),
        ("/city_code", "pattern"),
        ("/impact_assessment/answers/reversibility", "enum"),
        ("/training_data/period/end", "format"),
        ("/vendor", "required"),
    ]


def test_several_missing_properties_of_one_object_are_each_reported_once():
    errors = contracts.validate("technical-document", {"schema_version": "1"})
    missing = [e.pointer for e in errors if e.keyword == "required"]
    assert len(missing) == len(set(missing)) == 14
    assert "/impact_assessment" in missing


def test_order_is_deterministic_and_sorted_by_pointer_then_keyword(doc):
    doc["algorithm"] = {"name_zh": 1, "extra": True}
    doc["city_code"] = None
    first = contracts.validate("technical-document", doc)
    assert first == contracts.validate("technical-document", copy.deepcopy(doc))
    assert [(e.pointer, e.keyword) for e in first] == sorted((e.pointer, e.keyword) for e in first)


# ------------------------------------------------------------------------------------------- drafts


def test_draft_mode_ignores_missing_properties_and_short_lists():
    draft = {"schema_version": "1", "algorithm": {"name_zh": "草稿"}, "contacts": [], "legal_basis": []}
    assert contracts.validate_draft("technical-document", draft) == []
    assert {e.keyword for e in contracts.validate("technical-document", draft)} == {"required", "minItems"}


def test_draft_mode_still_reports_wrong_types_unknown_fields_bad_formats_and_bad_values():
    draft = {
        "algorithm": {"name_zh": 5, "colour": "red"},
        "contacts": [{"email": "nobody"}],
        "scenario": "lottery",
        "algorithm_extra": 1,
    }
    got = pointers(contracts.validate_draft("technical-document", draft, pointer_prefix="/technical_document"))
    assert got == [
        ("/technical_document/algorithm/colour", "additionalProperties"),
        ("/technical_document/algorithm/name_zh", "type"),
        ("/technical_document/algorithm_extra", "additionalProperties"),
        ("/technical_document/contacts/0/email", "format"),
        ("/technical_document/scenario", "enum"),
    ]


# ------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("bad", ["2024-02-30", "2024/01/01", "20240101", "2024-1-1", "yesterday"])
def test_a_bad_date_is_caught(doc, bad):
    doc["training_data"]["period"]["start"] = bad
    assert pointers(contracts.validate("technical-document", doc)) == [("/training_data/period/start", "format")]


@pytest.mark.parametrize(
    "bad", ["wang.li", "wang.li@", "@zzmz.example.cn", "wang li@zzmz.example.cn", "a@b", "a..b@c.cn"]
)
def test_a_bad_email_is_caught(doc, bad):
    doc["contacts"][0]["email"] = bad
    assert pointers(contracts.validate("technical-document", doc)) == [("/contacts/0/email", "format")]


def _decision(**changes):
    d = {
        "schema_version": "1",
        "filing_id": 7,
        "outcome": "approved",
        "conditions": [],
        "reasons": ["审计结果符合三级风险的要求。"],
        "audit_report_sha256": ["0" * 64],
        "decided_at": "2026-03-01T10:15:00+08:00",
        "filing_number": "豫算备410100-2026-0001",
    }
    d.update(changes)
    return d


def test_a_valid_decision_has_no_errors():
    assert contracts.validate("decision", _decision()) == []
    assert (
        contracts.validate(
            "decision", _decision(outcome="rejected", filing_number=None, decided_at="2026-03-01T02:15:00.5Z")
        )
        == []
    )


@pytest.mark.parametrize(
    "bad",
    [
        "2026-03-01",
        "2026-03-01 10:15:00+08:00",
        "2026-03-01T10:15:00",
        "2026-02-30T10:15:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:15:00+25:00",
    ],
)
def test_a_bad_date_time_is_caught(bad):
    assert pointers(contracts.validate("decision", _decision(decided_at=bad))) == [("/decided_at", "format")]


def test_approval_with_conditions_needs_at_least_one_condition():
    assert pointers(contracts.validate("decision", _decision(outcome="approved_with_conditions"))) == [
        ("/conditions", "minItems")
    ]


def test_filing_number_must_follow_the_numbering_scheme():
    assert pointers(contracts.validate("decision", _decision(filing_number="410100-2026-1"))) == [
        ("/filing_number", "pattern")
    ]


# ------------------------------------------------------------------------------------------- messages


def test_every_error_has_an_english_and_a_chinese_message():
    broken = {
        "schema_version": "2",
        "algorithm": {"name_zh": "", "name_en": "x" * 201, "zz": 1},
        "city_code": 1,
        "contacts": [],
        "scenario": "x",
        "training_data": {"period": {"start": "2024-02-30"}},
    }
    errors = contracts.validate("technical-document", broken)
    assert len(errors) > 10
    for e in errors:
        assert e.message.endswith(".") and e.message[0].isupper()
        assert CJK.search(e.message_zh), e
        assert e.message_zh.endswith("。")


def test_to_json_has_the_four_fields(doc):
    doc["city_code"] = "abc"
    (error,) = contracts.validate("technical-document", doc)
    assert isinstance(error, FieldError)
    assert error.to_json() == {
        "pointer": "/city_code",
        "keyword": "pattern",
        "message": error.message,
        "message_zh": error.message_zh,
    }
    json.dumps(error.to_json())


# ------------------------------------------------------------------------------------------- other schemas


def test_reference_dataset_attribute_needs_a_column_or_a_derivation_but_not_both():
    descriptor = {
        "schema_version": "1",
        "name": "zhengzhou-dibao",
        "version": "2025.1",
        "description": "郑州市低保审核参考数据。",
        "licence": "仅限省级审计使用",
        "source": "河南省民政厅",
        "file": "zhengzhou-dibao-2025.1.csv",
        "sha256": "a" * 64,
        "format": "csv",
        "columns": [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical"}],
        "label": {"column": "eligible", "favourable_value": 1},
        "sensitive_attributes": [
            {"name": "sex", "column": "sex"},
            {
                "name": "age_band",
                "derived": {"from": "age", "bins": [0, 40, 60, 200], "labels": ["18-39", "40-59", "60+"]},
            },
        ],
        "rows": 5000,
    }
    assert contracts.validate("reference-dataset", descriptor) == []
    descriptor["sensitive_attributes"][0]["derived"] = descriptor["sensitive_attributes"][1]["derived"]
    assert pointers(contracts.validate("reference-dataset", descriptor)) == [("/sensitive_attributes/0", "oneOf")]


def _minimal_audit_report() -> dict:
    disparity = {"value": 0.9, "figure": "selection_rate", "groups": [], "reference_group": None, "left_out": []}
    names = (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
        "equal_opportunity_difference",
        "predictive_parity_difference",
    )
    return {
        "schema_version": "1",
        "model": {"sha256": "b" * 64, "size": 100},
        "dataset": {
            "name": "adult-test",
            "version": "1996",
            "sha256": "c" * 64,
            "rows": 10,
            "favourable_value": ">50K",
        },
        "sensitive_attributes": ["sex"],
        "policy": {"version": "2026.1", "tier": "III", "min_group_size": 50},
        "overall": {"n": 10, "accuracy": 0.9, "selection_rate": 0.3},
        "by_group": [{"group": {"sex": "Female"}, "n": 4, "accuracy": None, "insufficient_data": True}],
        "by_attribute": {},
        "disparities": {name: dict(disparity) for name in names},
        "intervals": None,
        "criteria": [
            {
                "id": "accuracy",
                "figure": "overall.accuracy",
                "op": ">=",
                "threshold": 0.8,
                "value": 0.9,
                "interval": None,
                "status": "pass",
            }
        ],
        "verdict": "meets",
        "provenance": {"engine_version": "1", "libraries": {}, "seed": 0, "bootstrap_replicates": 0, "timings": {}},
    }


def test_an_audit_report_validates_and_a_broken_one_is_named_by_pointer():
    report = _minimal_audit_report()
    assert contracts.validate("audit-report", report) == []
    report["overall"]["accuracy"] = "high"
    report["criteria"][0]["status"] = "maybe"
    assert pointers(contracts.validate("audit-report", report)) == [
        ("/criteria/0/status", "enum"),
        ("/overall/accuracy", "type"),
    ]


def test_audit_policy_needs_all_four_tiers():
    tier = {
        "min_group_size": 30,
        "claim_tolerance": 0.03,
        "reaudit_interval_months": 12,
        "grace_period_days": 30,
        "criteria": [{"id": "accuracy", "figure": "overall.accuracy", "op": ">=", "threshold": 0.8}],
    }
    policy = {"schema_version": "1", "version": "2026.1", "tiers": {t: copy.deepcopy(tier) for t in ("I", "II", "III")}}
    assert pointers(contracts.validate("audit-policy", policy)) == [("/tiers/IV", "required")]
    policy["tiers"]["IV"] = copy.deepcopy(tier) | {"reaudit_interval_months": None}
    assert contracts.validate("audit-policy", policy) == []
    policy["tiers"]["IV"]["criteria"][0]["figure"] = "horoscope.luck"
    assert pointers(contracts.validate("audit-policy", policy)) == [("/tiers/IV/criteria/0/figure", "pattern")]


# ------------------------------------------------------------------------------------------- demo data


def test_there_are_eight_paired_demo_documents():
    assert len(DOCS) == len(REPORTS) == 8
    assert {d["city_code"] for d in DOCS} == {"410100", "410300", "410500", "411000", "410581", "410225"}


@pytest.mark.parametrize("index", range(8))
def test_demo_technical_document_validates(index):
    assert contracts.validate("technical-document", DOCS[index]) == []


@pytest.mark.parametrize("index", range(8))
def test_demo_test_report_validates_and_is_paired_with_its_document(index):
    assert contracts.validate("test-report", REPORTS[index]) == []
    assert contracts.validate("filing", {"technical_document": DOCS[index], "test_report": REPORTS[index]}) == []
    assert REPORTS[index]["favourable_label"] == DOCS[index]["model"]["output"]["favourable_label"]


def _check_figures(f):
    c = f["confusion"]
    n = c["tp"] + c["fp"] + c["tn"] + c["fn"]
    assert f["n"] == n
    expected = {
        "accuracy": (c["tp"] + c["tn"]) / n,
        "selection_rate": (c["tp"] + c["fp"]) / n,
        "tpr": c["tp"] / (c["tp"] + c["fn"]),
        "recall": c["tp"] / (c["tp"] + c["fn"]),
        "fnr": c["fn"] / (c["tp"] + c["fn"]),
        "fpr": c["fp"] / (c["fp"] + c["tn"]),
        "precision": c["tp"] / (c["tp"] + c["fp"]),
    }
    for key, value in expected.items():
        assert f[key] == pytest.approx(value, abs=5e-5), key
    assert f["balanced_accuracy"] == pytest.approx((expected["tpr"] + 1 - expected["fpr"]) / 2, abs=5e-5)
    p, r = expected["precision"], expected["recall"]
    assert f["f1"] == pytest.approx(2 * p * r / (p + r), abs=5e-5)


@pytest.mark.parametrize("index", range(8))
def test_demo_test_report_figures_agree_with_their_confusion_counts(index):
    report = REPORTS[index]
    _check_figures(report["overall"])
    assert report["data"]["size"] == report["overall"]["n"]
    by_grouping = {}
    for g in report["groups"]:
        _check_figures(g["figures"])
        assert sorted(g["group"]) == sorted(g["grouping"])
        by_grouping.setdefault(tuple(g["grouping"]), []).append(g["figures"]["confusion"])
    assert any(len(k) > 1 for k in by_grouping)  # at least one intersection of groups
    for grouping, confusions in by_grouping.items():
        for key in ("tp", "fp", "tn", "fn"):
            assert sum(c[key] for c in confusions) == report["overall"]["confusion"][key], (grouping, key)
