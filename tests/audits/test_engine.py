"""Whole audits of real scikit-learn models, exported to ONNX, on the shipped Adult and German credit data.

Every figure is checked against fairlearn and scikit-learn computed here, independently, from the scikit-learn
model's own predictions (to 1e-9), intersections included; the report validates against its schema; the same
inputs give the same report; hostile models are refused or stopped and the caller survives.
"""

import copy
import hashlib
import json
import subprocess
import sys
from functools import partial

import numpy as np
import onnx
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from onnx import TensorProto, helper
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, precision_score, roc_auc_score

from audits import engine, policy, reference, runner
from schemas import validation
from tests.audits.hostile_models import endless_loop
from tests.audits.sklearn_models import adult_logistic, export

ADULT_CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex"]
ADULT_NUM = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
GERMAN_NUM = [
    "duration",
    "credit_amount",
    "installment_rate",
    "present_residence_since",
    "age",
    "number_of_existing_credits",
]


@pytest.fixture(scope="module")
def adult_model(tmp_path_factory):
    """A logistic regression trained on Adult (train), one ONNX input per column, string labels."""
    return adult_logistic(ADULT_CAT, ADULT_NUM, max_iter=300, path=tmp_path_factory.mktemp("models") / "adult_lr.onnx")


@pytest.fixture(scope="module")
def german_model(tmp_path_factory):
    """Gradient boosting on German credit's numeric columns, one tensor input, integer labels 1/2."""
    data = reference.load("german-credit")
    X = data.features[GERMAN_NUM].to_numpy(np.float32)
    y = np.where(data.y_true, 1, 2)
    gbc = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(X, y)
    return gbc, export(
        gbc, [("X", FloatTensorType([None, len(GERMAN_NUM)]))], tmp_path_factory.mktemp("models") / "german_gb.onnx"
    )


@pytest.fixture(scope="module")
def adult_audit(adult_model):
    _pipe, path = adult_model
    return engine.run_audit(
        model_path=path, data=reference.load("adult-test"), policy=policy.load(), tier="III", replicates=200
    )


def _group_labels(data, attributes):
    return np.array(["|".join(parts) for parts in zip(*(data.sensitive[a] for a in attributes), strict=True)])


def _key(group: dict, attributes) -> str:
    return "|".join(group[a] for a in attributes)


def test_adult_report_validates_and_names_what_was_audited(adult_audit, adult_model):
    assert validation.validate("audit-report", adult_audit) == []
    data = reference.load("adult-test")
    assert adult_audit["dataset"] == {
        "name": "adult-test",
        "version": data.version,
        "sha256": data.sha256,
        "rows": 16281,
        "favourable_value": ">50K",
    }
    assert adult_audit["sensitive_attributes"] == ["sex", "race"]
    assert adult_audit["model"]["sha256"] == hashlib.sha256(adult_model[1].read_bytes()).hexdigest()
    assert adult_audit["model"]["gives_probabilities"] is True
    assert adult_audit["policy"]["tier"] == "III"


def test_adult_figures_equal_fairlearn_and_sklearn_per_intersection(adult_audit, adult_model):
    pipe, _ = adult_model
    data = reference.load("adult-test")
    X = data.features[ADULT_CAT + ADULT_NUM]
    y_true = np.where(data.y_true, ">50K", "<=50K")
    y_pred = pipe.predict(X)
    proba = pipe.predict_proba(X)[:, list(pipe.classes_).index(">50K")]
    attributes = ["sex", "race"]
    groups = _group_labels(data, attributes)
    frame = MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "balanced_accuracy": balanced_accuracy_score,
        },
        # the favourable label ">50K" as the positive class 1, as fairlearn's pos_label does
        y_true=(y_true == ">50K").astype(int),
        y_pred=(y_pred == ">50K").astype(int),
        sensitive_features=groups,
    )
    measured = {_key(row["group"], attributes): row for row in adult_audit["by_group"]}
    assert set(measured) == set(np.unique(groups))
    for label, expected in frame.by_group.iterrows():
        row = measured[label]
        mask = groups == label
        assert row["n"] == mask.sum()
        for figure in ("accuracy", "selection_rate", "tpr", "fpr", "balanced_accuracy"):
            assert row[figure] == pytest.approx(expected[figure], abs=1e-9), (label, figure)
        prec = precision_score(y_true[mask], y_pred[mask], pos_label=">50K", zero_division=np.nan)
        assert row["precision"] is None and np.isnan(prec) or row["precision"] == pytest.approx(prec, abs=1e-9)
        assert row["brier"] == pytest.approx(brier_score_loss(y_true[mask] == ">50K", proba[mask]), abs=1e-6)
        if len(set(y_true[mask])) == 2:
            assert row["roc_auc"] == pytest.approx(roc_auc_score(y_true[mask] == ">50K", proba[mask]), abs=1e-6)
    overall = adult_audit["overall"]
    assert overall["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-9)
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(y_true == ">50K", proba), abs=1e-6)


def test_adult_disparities_equal_fairlearn_over_intersections_with_enough_data(adult_audit, adult_model):
    pipe, _ = adult_model
    data = reference.load("adult-test")
    y_true = np.where(data.y_true, ">50K", "<=50K")
    y_pred = pipe.predict(data.features[ADULT_CAT + ADULT_NUM])
    groups = _group_labels(data, ["sex", "race"])
    minimum = adult_audit["policy"]["min_group_size"]
    labels, sizes = np.unique(groups, return_counts=True)
    keep = np.isin(groups, labels[sizes >= minimum])
    # fairlearn on the rows of the groups with enough data (the others are reported, not judged)
    t, p, g = (y_true[keep] == ">50K").astype(int), (y_pred[keep] == ">50K").astype(int), groups[keep]
    disparities = adult_audit["disparities"]
    assert disparities["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(t, p, sensitive_features=g), abs=1e-9
    )
    assert disparities["demographic_parity_ratio"]["value"] == pytest.approx(
        demographic_parity_ratio(t, p, sensitive_features=g), abs=1e-9
    )
    assert disparities["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(t, p, sensitive_features=g), abs=1e-9
    )
    left_out = {_key(x["group"], ["sex", "race"]) for x in disparities["demographic_parity_ratio"]["left_out"]}
    assert left_out == set(labels[sizes < minimum])


def test_adult_criteria_follow_the_policy_and_the_figures(adult_audit):
    rules = policy.load().tier("III")["criteria"]
    assert [c["id"] for c in adult_audit["criteria"]] == [r["id"] for r in rules]
    by_id = {c["id"]: c for c in adult_audit["criteria"]}
    assert by_id["accuracy"]["value"] == adult_audit["overall"]["accuracy"]
    assert by_id["impact_ratio"]["value"] == adult_audit["disparities"]["demographic_parity_ratio"]["value"]
    # The Adult model selects women far less often than men: the four-fifths rule fails, and so does the verdict.
    assert by_id["impact_ratio"]["status"] == "fail"
    assert adult_audit["verdict"] == "does_not_meet"
    lo, hi = by_id["accuracy"]["interval"]
    assert lo <= by_id["accuracy"]["value"] <= hi


def test_german_credit_single_tensor_model_by_column_order(german_model):
    gbc, path = german_model
    data = reference.load("german-credit")
    report = engine.run_audit(
        model_path=path, data=data, policy=policy.load(), tier="II", input_order=GERMAN_NUM, replicates=100
    )
    assert validation.validate("audit-report", report) == []
    y_pred = gbc.predict(data.features[GERMAN_NUM].to_numpy(np.float32))
    groups = _group_labels(data, ["sex", "age_band"])
    frame = MetricFrame(
        metrics={"accuracy": accuracy_score, "selection_rate": partial(selection_rate, pos_label=1)},
        y_true=np.where(data.y_true, 1, 2),
        y_pred=y_pred,
        sensitive_features=groups,
    )
    measured = {_key(row["group"], ["sex", "age_band"]): row for row in report["by_group"]}
    for label, expected in frame.by_group.iterrows():
        assert measured[label]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
        assert measured[label]["selection_rate"] == pytest.approx(expected["selection_rate"], abs=1e-9)
    by_sex = {row["group"]["sex"]: row for row in report["by_attribute"]["sex"]}
    female = data.sensitive["sex"] == "female"
    assert by_sex["female"]["n"] == female.sum()
    assert by_sex["female"]["accuracy"] == pytest.approx(
        accuracy_score(np.where(data.y_true, 1, 2)[female], y_pred[female]), abs=1e-9
    )


def test_the_same_inputs_give_the_same_report_timings_aside(adult_model):
    _pipe, path = adult_model
    runs = [
        engine.run_audit(
            model_path=path, data=reference.load("adult-test"), policy=policy.load(), tier="II", replicates=50, seed=7
        )
        for _ in range(2)
    ]
    for report in runs:
        report["provenance"].pop("timings")
    assert json.dumps(runs[0], sort_keys=True) == json.dumps(runs[1], sort_keys=True)


def test_claimed_figures_are_compared_and_inflated_ones_flagged(adult_model, adult_audit):
    _pipe, path = adult_model
    overall = adult_audit["overall"]
    n = overall["n"]
    claimed = {
        "schema_version": "1",
        "tester": {"kind": "in_house", "organisation": "City"},
        "tested_on": "2026-01-01",
        "data": {"description": "Own data", "size": n, "period": {"start": "2025-01-01", "end": "2025-12-31"}},
        "favourable_label": ">50K",
        "overall": {
            "n": n,
            "accuracy": min(overall["accuracy"] + 0.1, 1.0),
            "selection_rate": overall["selection_rate"],
            "confusion": {"tp": 1, "fp": 1, "tn": 1, "fn": n - 3},
        },
        "groups": [
            {
                "grouping": ["sex"],
                "group": {"sex": "female"},
                "figures": {"n": 10, "accuracy": 0.5, "confusion": {"tp": 1, "fp": 1, "tn": 1, "fn": 7}},
            },
            {
                "grouping": ["sex"],
                "group": {"sex": "nonbinary"},
                "figures": {"n": 10, "accuracy": 0.5, "confusion": {"tp": 1, "fp": 1, "tn": 1, "fn": 7}},
            },
        ],
    }
    report = engine.run_audit(
        model_path=path,
        data=reference.load("adult-test"),
        policy=policy.load(),
        tier="III",
        replicates=100,
        claimed=claimed,
    )
    rows = {(json.dumps(r["scope"], sort_keys=True), r["figure"]): r for r in report["claims"]["rows"]}
    inflated = rows[('{"overall": true}', "accuracy")]
    assert inflated["flagged"] is True and inflated["difference"] == pytest.approx(0.1, abs=1e-9)
    honest = rows[('{"overall": true}', "selection_rate")]
    assert honest["flagged"] is False and honest["difference"] == pytest.approx(0.0, abs=1e-12)
    female = rows[('{"group": {"sex": "Female"}}', "accuracy")]  # matched case-insensitively
    assert female["flagged"] is True
    assert report["claims"]["not_comparable_groups"] == [{"sex": "nonbinary"}]


def _custom_op_model(path):
    node = helper.make_node("Evil", ["X"], ["Y"], domain="com.evil")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 6])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)])
    path.write_bytes(model.SerializeToString())
    return path


def test_hostile_models_are_refused_with_a_clear_error(tmp_path, german_model):
    data = reference.load("german-credit")
    with pytest.raises(engine.AuditError, match="com.evil"):
        engine.run_audit(model_path=_custom_op_model(tmp_path / "evil.onnx"), data=data, policy=policy.load(), tier="I")
    external = onnx.load_model_from_string(german_model[1].read_bytes())
    tensor = external.graph.initializer[0] if external.graph.initializer else None
    if tensor is None:  # tree ensembles keep their numbers in attributes: add an initializer that points outside
        external.graph.initializer.append(helper.make_tensor("W", TensorProto.FLOAT, [1], [1.0]))
        tensor = external.graph.initializer[-1]  # the stored copy, not the one appended
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("float_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    (tmp_path / "external.onnx").write_bytes(external.SerializeToString())
    with pytest.raises(engine.AuditError, match="external"):
        engine.run_audit(
            model_path=tmp_path / "external.onnx", data=data, policy=policy.load(), tier="I", input_order=GERMAN_NUM
        )
    with pytest.raises(engine.AuditError, match="larger"):
        engine.run_audit(
            model_path=german_model[1],
            data=data,
            policy=policy.load(),
            tier="I",
            input_order=GERMAN_NUM,
            limits=runner.Limits(max_model_bytes=100),
        )


def test_a_model_that_runs_too_long_is_stopped_and_the_caller_survives(tmp_path):
    with pytest.raises(runner.ModelRunError) as caught:
        engine.run_audit(
            model_path=endless_loop(tmp_path / "slow.onnx", width=len(GERMAN_NUM)),
            data=reference.load("german-credit"),
            policy=policy.load(),
            tier="I",
            input_order=GERMAN_NUM,
            limits=runner.Limits(timeout_seconds=3),
        )
    assert caught.value.code == "timeout"


def test_unknown_sensitive_attributes_are_named(german_model):
    with pytest.raises(engine.AuditError, match="religion"):
        engine.run_audit(
            model_path=german_model[1],
            data=reference.load("german-credit"),
            policy=policy.load(),
            tier="I",
            sensitive=["religion"],
            input_order=GERMAN_NUM,
        )


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m audits ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "audits", *args], capture_output=True, text=True, timeout=180)


def test_the_command_line_writes_a_valid_report_and_fails_in_one_line(tmp_path, german_model):
    out = tmp_path / "report.json"
    done = _cli(
        "run",
        "--model",
        str(german_model[1]),
        "--dataset",
        "german-credit",
        "--tier",
        "II",
        "--input-order",
        ",".join(GERMAN_NUM),
        "--bootstrap",
        "50",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text("utf-8"))
    assert validation.validate("audit-report", report) == []
    assert report["provenance"]["seed"] == 3 and report["intervals"]["replicates"] == 50
    failed = _cli("run", "--model", str(german_model[1]), "--dataset", "no-such-data", "--out", str(out))
    assert failed.returncode != 0
    assert failed.stderr.strip().count("\n") == 0 and failed.stderr.startswith("error: ")


def test_the_dataset_listing_never_shows_rows():
    done = _cli("datasets")
    assert done.returncode == 0
    listed = [json.loads(line) for line in done.stdout.splitlines()]
    assert {d["name"] for d in listed} >= {"adult", "adult-test", "german-credit"}
    raw = (reference.library_folder() / "german.data").read_text().splitlines()[0]
    assert raw not in done.stdout


def test_a_policy_that_breaks_its_schema_is_refused(tmp_path):
    broken = copy.deepcopy(policy.load().document)
    del broken["tiers"]["IV"]
    (tmp_path / "p.json").write_text(json.dumps(broken))
    with pytest.raises(policy.PolicyError, match="/tiers"):
        policy.load(tmp_path / "p.json")


def test_the_command_line_audits_an_ad_hoc_csv(tmp_path, german_model):
    data = reference.load("german-credit")
    table = data.features[GERMAN_NUM].copy()
    table["sex"] = data.sensitive["sex"]
    table["credit"] = np.where(data.y_true, "1", "2")
    table.to_csv(tmp_path / "mine.csv", index=False)
    out = tmp_path / "report.json"
    done = _cli(
        "run",
        "--model",
        str(german_model[1]),
        "--data",
        str(tmp_path / "mine.csv"),
        "--label",
        "credit",
        "--favorable",
        "1",
        "--sensitive",
        "sex",
        "--input-order",
        ",".join(GERMAN_NUM),
        "--bootstrap",
        "20",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text("utf-8"))
    assert report["sensitive_attributes"] == ["sex"]
    assert {row["group"]["sex"] for row in report["by_group"]} == {"female", "male"}
    assert report["dataset"]["rows"] == 1000
