"""The explainability step: permutation importance, likely proxies, flip tests of sensitive inputs, findings.

The figures are proven equal to scikit-learn computed here, independently: ``permutation_importance`` on the
scikit-learn model itself (the audit runs the same model exported to ONNX in the sandboxed runner), and
``cross_val_score(..., scoring="roc_auc")`` for the proxies. The shuffles are proven to be scikit-learn's by
watching what ``permutation_importance`` hands its scorer. The sample is the one the engine documents
(:func:`audits.explain.sample_indices`); scikit-learn is called on exactly those rows.
"""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from skl2onnx.common.data_types import FloatTensorType
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from audits import declarations, engine, explain, findings, policy, reference
from schemas import validation
from tests.audits.sklearn_models import adult_logistic, export

GERMAN_NUM = [
    "duration",
    "credit_amount",
    "installment_rate",
    "present_residence_since",
    "age",
    "number_of_existing_credits",
]
ADULT_CAT = ["relationship", "sex", "occupation"]
ADULT_NUM = ["education-num", "capital-gain", "hours-per-week"]
SEED = 11


def _policy(**settings) -> policy.Policy:
    document = copy.deepcopy(policy.load().document)
    document["explainability"].update(settings)
    return policy.from_document(document)


@pytest.fixture(scope="module")
def german(tmp_path_factory):
    """Gradient boosting on German credit's numeric columns (age among them), one tensor input, labels 1/2."""
    data = reference.load("german-credit")
    x = data.features[GERMAN_NUM].to_numpy(np.float32)
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(x, np.where(data.y_true, 1, 2))
    path = export(model, [("X", FloatTensorType([None, len(GERMAN_NUM)]))], tmp_path_factory.mktemp("m") / "g.onnx")
    return {"data": data, "model": model, "path": path, "x": x, "y": np.where(data.y_true, 1, 2)}


def _german_report(german, seed=SEED, replicates=200, **kwargs):
    return engine.run_audit(
        model_path=german["path"],
        data=german["data"],
        policy=_policy(sample_rows=700, n_repeats=4),
        tier="II",
        input_order=GERMAN_NUM,
        replicates=replicates,
        seed=seed,
        **kwargs,
    )


@pytest.fixture(scope="module")
def german_report(german):
    return _german_report(german)


@pytest.fixture(scope="module")
def adult(tmp_path_factory):
    """A logistic regression on Adult that takes sex and relationship (and four more) as inputs."""
    pipe, path = adult_logistic(ADULT_CAT, ADULT_NUM, max_iter=500, path=tmp_path_factory.mktemp("m") / "adult.onnx")
    return {"pipe": pipe, "path": path}


def _technical_document(proxies: dict[str, list[str]] | None = None, sensitive=("sex",)) -> dict:
    proxies = proxies or {}
    inputs = [
        {
            "name": name.replace("-", "_"),  # declared as the model names it; matched to the column loosely
            "type": "categorical" if name in ADULT_CAT else "numeric",
            "description": name,
            "personal_data": True,
            "sensitive_attribute": name in sensitive,
            "likely_proxy_for": proxies.get(name, []),
        }
        for name in ADULT_CAT + ADULT_NUM
    ]
    return {"model": {"inputs": inputs}}


def _adult_report(adult, tier="III", document=None, **settings):
    return engine.run_audit(
        model_path=adult["path"],
        data=reference.load("adult-test"),
        policy=_policy(**({"sample_rows": 4000, "n_repeats": 2} | settings)),
        tier=tier,
        replicates=100,
        seed=SEED,
        technical_document=document,
    )


@pytest.fixture(scope="module")
def adult_report(adult):
    return _adult_report(adult, document=_technical_document())


# --------------------------------------------------------------------------------------------- importance


def test_the_shuffles_are_the_ones_scikit_learn_makes():
    n, repeats = 40, 4
    x = np.arange(n * 3, dtype=float).reshape(n, 3)  # every value distinct: a shuffle is read off the column
    y = np.arange(n) % 2
    seen = []

    def watch(_estimator, shuffled, _y):
        seen.append(np.array(shuffled, copy=True))
        return 0.0

    permutation_importance(DummyClassifier().fit(x, y), x, y, scoring=watch, n_repeats=repeats, random_state=SEED)
    orders = explain.permutations(n, repeats, SEED)
    assert len(seen) == 1 + 3 * repeats
    for j in range(3):
        for r in range(repeats):
            copy_seen = seen[1 + j * repeats + r]
            np.testing.assert_array_equal(copy_seen[:, j], x[orders[r], j])
            np.testing.assert_array_equal(np.delete(copy_seen, j, axis=1), np.delete(x, j, axis=1))


def test_permutation_importance_through_the_onnx_runner_equals_scikit_learn(german, german_report):
    section = german_report["explainability"]
    sample = explain.sample_indices(1000, 700, SEED)
    assert section["sample"] == section["sample"] | {"rows": 700, "of": 1000, "seed": SEED}
    x, y, model = german["x"][sample], german["y"][sample], german["model"]
    expected = permutation_importance(model, x, y, scoring="accuracy", n_repeats=4, random_state=SEED)
    measured = {row["input"]: row for row in section["importance"]["overall"]}
    for j, name in enumerate(GERMAN_NUM):
        assert measured[name]["importance"] == pytest.approx(expected.importances_mean[j], abs=1e-12), name
        assert measured[name]["importance_std"] == pytest.approx(expected.importances_std[j], abs=1e-12), name
    assert section["importance"]["baseline_accuracy"] == pytest.approx(float(np.mean(model.predict(x) == y)), abs=1e-12)

    # The flip share: decisions of the shuffled copies that differ from the unshuffled ones, by scikit-learn.
    base = model.predict(x)
    orders = explain.permutations(len(sample), 4, SEED)
    for j, name in enumerate(GERMAN_NUM):
        changed = []
        for order in orders:
            shuffled = x.copy()
            shuffled[:, j] = x[order, j]
            changed.append(np.mean(model.predict(shuffled) != base))
        assert measured[name]["flip_share"] == pytest.approx(np.mean(changed), abs=1e-12), name


def test_importance_per_group_is_measured_on_the_groups_rows(german, german_report):
    section = german_report["explainability"]
    sample = explain.sample_indices(1000, 700, SEED)
    x, y, model = german["x"][sample], german["y"][sample], german["model"]
    sex = german["data"].sensitive["sex"][sample]
    orders = explain.permutations(len(sample), 4, SEED)
    j = GERMAN_NUM.index("credit_amount")
    for row in section["importance"]["by_attribute"]["sex"]:
        rows = sex == row["group"]["sex"]
        assert row["n"] == rows.sum()
        base = np.mean(model.predict(x[rows]) == y[rows])
        drops = []
        for order in orders:
            shuffled = x.copy()
            shuffled[:, j] = x[order, j]
            drops.append(base - np.mean(model.predict(shuffled)[rows] == y[rows]))
        cell = next(i for i in row["inputs"] if i["input"] == "credit_amount")
        assert cell["importance"] == pytest.approx(np.mean(drops), abs=1e-12)
        assert row["baseline_accuracy"] == pytest.approx(base, abs=1e-12)


def test_on_german_credit_the_report_names_the_inputs_that_drive_decisions(german, german_report):
    section = german_report["explainability"]
    sample = explain.sample_indices(1000, 700, SEED)
    expected = permutation_importance(
        german["model"], german["x"][sample], german["y"][sample], scoring="accuracy", n_repeats=4, random_state=SEED
    )
    top = [GERMAN_NUM[j] for j in np.argsort(-expected.importances_mean, kind="stable")[:3]]
    assert section["summary"]["top_inputs"] == top
    finding = next(f for f in section["findings"] if f["code"] == "top_inputs")
    assert finding["inputs"] == top
    assert finding["text_en"].startswith(f"Decisions depend most on {top[0]} (accuracy falls by")
    assert all(name in finding["text_en"] and name in finding["text_zh"] for name in top)
    assert finding["text_zh"].startswith(f"决定最依赖 {top[0]}")


# --------------------------------------------------------------------------------------------- flips


def test_age_the_column_of_age_band_gets_a_flip_test_across_the_bands(german, german_report):
    section = german_report["explainability"]
    (test,) = section["flip_tests"]
    assert test["input"] == "age" and test["reasons"] == ["sensitive_attribute"] and test["attributes"] == ["age_band"]
    assert test["declared_sensitive"] is None  # no technical document was given
    assert [v["value"].split(" ")[1] for v in test["by_value"]] == ["(<25)", "(25-44)", "(45-64)", "(65+)"]

    # Independently: each row's age set to each other band's value; a decision that changes for any of them.
    sample = explain.sample_indices(1000, 700, SEED)
    x, model = german["x"][sample], german["model"]
    bands = german["data"].sensitive["age_band"][sample]
    base = model.predict(x)
    changed = np.zeros(len(sample), dtype=bool)
    for value in test["by_value"]:
        age, band = float(value["value"].split(" ")[0]), value["value"].split(" ")[1].strip("()")
        flipped = x.copy()
        flipped[:, GERMAN_NUM.index("age")] = age
        changed |= (model.predict(flipped) != base) & (bands != band)
    assert test["flip_share"] == pytest.approx(changed.mean(), abs=1e-12)
    finding = next(f for f in section["findings"] if f.get("input") == "age")
    assert finding["code"] == "direct_use" and "changing only age changes" in finding["text_en"]


def test_on_adult_relationship_is_flagged_as_a_proxy_for_sex_and_flipping_sex_changes_decisions(adult, adult_report):
    assert validation.validate("audit-report", adult_report) == []
    section = adult_report["explainability"]
    rows = {(r["input"], r["attribute"]): r for r in section["proxies"]["rows"]}
    relationship = rows[("relationship", "sex")]
    assert relationship["flagged"] is True and relationship["auc"] >= 0.7 and relationship["declared"] is False
    assert rows[("sex", "sex")]["direct"] is True and rows[("sex", "sex")]["flagged"] is False
    assert rows[("capital-gain", "sex")]["flagged"] is False

    sex_test = next(t for t in section["flip_tests"] if t["input"] == "sex")
    assert sex_test["reasons"] == ["sensitive_attribute", "declared_sensitive"] and sex_test["declared_sensitive"]
    assert sex_test["flip_share"] > 0
    assert {g["group"]["sex"] for g in sex_test["by_attribute"]["sex"]} == {"Female", "Male"}

    # Independently, with the scikit-learn model: every sampled person's sex swapped.
    data = reference.load("adult-test")
    sample = explain.sample_indices(data.rows, 4000, SEED)
    frame = data.features.iloc[sample][ADULT_CAT + ADULT_NUM].reset_index(drop=True)
    swapped = frame.copy()
    swapped["sex"] = np.where(frame["sex"] == "Male", "Female", "Male")
    expected = np.mean(adult["pipe"].predict(swapped) != adult["pipe"].predict(frame))
    assert sex_test["flip_share"] == pytest.approx(expected, abs=2 / len(sample))  # float32 ONNX vs float64

    texts = {f["code"]: f for f in section["findings"] if f.get("input") in ("relationship", "sex")}
    assert texts["undeclared_proxy"]["text_en"].startswith("relationship predicts sex (AUC 0.")
    assert texts["undeclared_proxy"]["text_en"].endswith("the technical document does not declare it as a proxy.")
    assert texts["undeclared_proxy"]["text_zh"].endswith("技术文档未声明该代理变量。")
    assert texts["direct_use"]["text_zh"].startswith("模型以 sex 作为输入：仅改变 sex 会改变")


def test_proxy_aucs_equal_scikit_learns_cross_val_score(adult_report):
    section = adult_report["explainability"]
    data = reference.load("adult-test")
    sample = explain.sample_indices(data.rows, 4000, SEED)
    frame = data.features.iloc[sample].reset_index(drop=True)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    tree = DecisionTreeClassifier(max_leaf_nodes=16, min_samples_leaf=20, random_state=0)
    rows = {(r["input"], r["attribute"]): r for r in section["proxies"]["rows"]}
    minimum = adult_report["policy"]["min_group_size"]
    for name, attribute in [("relationship", "sex"), ("hours-per-week", "sex"), ("occupation", "race")]:
        labels = data.sensitive[attribute][sample]
        values, sizes = np.unique(labels, return_counts=True)
        keep = np.isin(labels, values[sizes >= minimum])  # groups too small to judge are left out, and listed
        x, y = frame.loc[keep, [name]], labels[keep]
        if frame[name].dtype.kind == "f":
            model = tree
        else:
            model = make_pipeline(OneHotEncoder(categories=[sorted(set(x[name]))]), tree)
        scoring = "roc_auc" if len(set(y)) == 2 else "roc_auc_ovr"
        expected = cross_val_score(model, x, y, cv=folds, scoring=scoring)
        assert rows[(name, attribute)]["auc"] == pytest.approx(expected.mean(), abs=1e-12), name
        assert rows[(name, attribute)]["auc_folds"] == pytest.approx(list(expected), abs=1e-12)
    left_out = {g["race"] for g in section["proxies"]["left_out"]["race"]}
    race = data.sensitive["race"][sample]
    assert left_out == {v for v in set(race) if (race == v).sum() < minimum} and left_out
    assert rows[("relationship", "sex")]["nmi"] == pytest.approx(
        normalized_mutual_info_score(data.sensitive["sex"][sample], frame["relationship"]), abs=1e-12
    )


# --------------------------------------------------------------------------------------------- the policy


def test_an_undeclared_proxy_fails_the_policy_in_tier_iii_and_declaring_it_passes(adult, adult_report):
    criterion = next(c for c in adult_report["criteria"] if c["id"] == "undeclared_proxies")
    flagged = adult_report["explainability"]["summary"]["inputs"]["undeclared_proxies"]
    assert "relationship" in flagged
    assert criterion["status"] == "fail" and criterion["value"] == len(
        [r for r in adult_report["explainability"]["proxies"]["rows"] if r["flagged"]]
    )
    assert criterion["inputs"] == flagged
    assert adult_report["verdict"] == "does_not_meet"

    declared = {}
    for row in adult_report["explainability"]["proxies"]["rows"]:
        if row["flagged"]:
            declared.setdefault(row["input"], []).append(row["attribute"].upper())  # names compare loosely
    declared["hours-per-week"] = ["sex"]  # declared, though it is no proxy: declaring more is allowed
    report = _adult_report(adult, document=_technical_document(declared))
    criterion = next(c for c in report["criteria"] if c["id"] == "undeclared_proxies")
    assert criterion["status"] == "pass" and criterion["value"] == 0
    codes = {f["code"] for f in report["explainability"]["findings"]}
    assert "declared_proxy" in codes and "undeclared_proxy" not in codes

    # A declared proxy gets a flip test too: relationship set to each of its values, hours to ten observed ones.
    tests = {t["input"]: t for t in report["explainability"]["flip_tests"]}
    assert tests["relationship"]["reasons"] == ["declared_proxy"] and tests["relationship"]["attributes"] == ["sex"]
    assert len(tests["relationship"]["by_value"]) == 6 and tests["relationship"]["flip_share"] > 0
    assert len(tests["hours-per-week"]["by_value"]) <= 10
    finding = next(
        f
        for f in report["explainability"]["findings"]
        if f.get("input") == "relationship" and f["code"] == "direct_use"
    )
    assert finding["text_en"].startswith("The model takes relationship, declared as a proxy for sex, as an input:")

    # Tier I does not judge it; the finding is still there for the reviewer.
    low = _adult_report(adult, tier="I", document=_technical_document())
    assert "undeclared_proxies" not in {c["id"] for c in low["criteria"]}
    assert "undeclared_proxy" in {f["code"] for f in low["explainability"]["findings"]}


def test_without_a_technical_document_nothing_is_called_undeclared(german, german_report):
    summary = german_report["explainability"]["summary"]
    assert german_report["explainability"]["technical_document"] is False
    assert summary["undeclared_proxies"] is None and summary["undeclared_sensitive_inputs"] is None
    report = engine.run_audit(
        model_path=german["path"],
        data=german["data"],
        policy=_policy(sample_rows=300, n_repeats=1),
        tier="III",
        input_order=GERMAN_NUM,
        replicates=0,
    )
    criterion = next(c for c in report["criteria"] if c["id"] == "undeclared_proxies")
    assert criterion["status"] == "insufficient_data" and criterion["note"] == "no technical document to compare with"


def test_an_input_of_a_sensitive_attribute_the_document_does_not_declare_is_a_concern(german):
    document = {
        "model": {"inputs": [{"name": n, "sensitive_attribute": False, "likely_proxy_for": []} for n in GERMAN_NUM]}
    }
    report = _german_report(german, technical_document=document, replicates=0)
    summary = report["explainability"]["summary"]
    assert summary["undeclared_sensitive_inputs"] == 1 and summary["inputs"]["undeclared_sensitive_inputs"] == ["age"]
    finding = next(f for f in report["explainability"]["findings"] if f.get("input") == "age")
    assert finding["code"] == "undeclared_sensitive_input" and finding["severity"] == "concern"
    assert finding["text_en"].endswith("The technical document does not declare it as a sensitive attribute.")
    assert finding["text_zh"].endswith("技术文档未将其声明为敏感属性。")


def test_the_step_is_switched_by_the_policy_or_the_caller(german):
    off = _policy(enabled=False)
    common = dict(model_path=german["path"], data=german["data"], input_order=GERMAN_NUM, replicates=0)
    skipped = engine.run_audit(policy=off, tier="III", **common)
    assert skipped["explainability"] is None and "explainability" not in skipped["provenance"]["timings"]
    criterion = next(c for c in skipped["criteria"] if c["id"] == "undeclared_proxies")
    assert criterion["status"] == "insufficient_data" and criterion["note"] == "the explainability step was not run"
    forced = engine.run_audit(policy=off, tier="I", explainability=True, **common)
    assert forced["explainability"]["importance"]["overall"]
    assert engine.run_audit(policy=policy.load(), tier="I", explainability=False, **common)["explainability"] is None


# --------------------------------------------------------------------------------------------- intervals, seeds


def test_intervals_contain_their_point_and_the_same_seed_gives_the_same_section(german, german_report):
    section = german_report["explainability"]

    def pairs(row, point_key, interval_key):
        if row[interval_key] is not None:
            low, high = row[interval_key]
            assert low <= row[point_key] <= high, (row, point_key)
            return 1
        return 0

    checked = 0
    for row in section["importance"]["overall"]:
        checked += pairs(row, "importance", "interval") + pairs(row, "flip_share", "flip_share_interval")
    for rows in section["importance"]["by_attribute"].values():
        for group in rows:
            for row in group["inputs"]:
                checked += pairs(row, "importance", "interval") + pairs(row, "flip_share", "flip_share_interval")
    for test in section["flip_tests"]:
        checked += pairs(test, "flip_share", "interval")
        checked += sum(pairs(g, "flip_share", "interval") for rows in test["by_attribute"].values() for g in rows)
    assert checked > 50

    again = _german_report(german)["explainability"]
    assert json.dumps(again, sort_keys=True) == json.dumps(section, sort_keys=True)
    other = _german_report(german, seed=SEED + 1)["explainability"]
    assert other["sample"]["seed"] == SEED + 1 and other["importance"] != section["importance"]


def test_without_bootstrap_replicates_there_are_figures_but_no_intervals(german):
    section = _german_report(german, replicates=0)["explainability"]
    assert all(r["interval"] is None and r["flip_share_interval"] is None for r in section["importance"]["overall"])
    assert all(r["importance"] is not None for r in section["importance"]["overall"])
    assert section["flip_tests"][0]["interval"] is None and section["flip_tests"][0]["flip_share"] is not None


def test_a_report_made_before_the_step_existed_still_validates(german_report):
    old = copy.deepcopy(german_report)
    del old["explainability"]
    assert validation.validate("audit-report", old) == []
    assert validation.validate("audit-report", german_report) == []


def test_a_large_model_input_count_shrinks_the_sample_to_the_batch_bound(german):
    report = engine.run_audit(
        model_path=german["path"],
        data=german["data"],
        policy=_policy(max_batch_rows=10_000, n_repeats=2),
        tier="I",
        input_order=GERMAN_NUM,
        replicates=0,
    )
    blocks = 1 + len(GERMAN_NUM) * 2 + 1 * 10  # baseline, the shuffles, at most 10 flips of age
    assert report["explainability"]["sample"]["rows"] == 10_000 // blocks


# --------------------------------------------------------------------------------------------- declarations


def test_declarations_match_columns_and_attributes_loosely():
    document = {
        "model": {
            "inputs": [
                {"name": "marital_status", "sensitive_attribute": False, "likely_proxy_for": ["Sex", "AGE BAND"]},
                {"name": "Sex", "sensitive_attribute": True, "likely_proxy_for": []},
                {"name": "unknown", "sensitive_attribute": True, "likely_proxy_for": ["sex"]},
            ]
        }
    }
    found = declarations.from_technical_document(document, ["marital-status", "sex", "age"])
    assert found.known and found.listed == {"marital-status", "sex"}
    assert found.declares_proxy("marital-status", "sex") and found.declares_proxy("marital-status", "age_band")
    assert found.declares_proxy("age", "sex") is False and found.declares_sensitive("sex") is True
    nothing = declarations.from_technical_document(None, ["sex"])
    assert nothing.known is False and nothing.declares_proxy("sex", "sex") is None
    assert declarations.from_technical_document({"model": "not a model"}, ["sex"]).listed == frozenset()


def test_the_command_line_compares_a_technical_document_and_can_skip_the_step(tmp_path, german):
    document = {"model": {"inputs": [{"name": n, "sensitive_attribute": n == "age"} for n in GERMAN_NUM]}}
    (tmp_path / "td.json").write_text(json.dumps(document), "utf-8")
    common = ["run", "--model", str(german["path"]), "--dataset", "german-credit", "--tier", "III"]
    common += ["--input-order", ",".join(GERMAN_NUM), "--bootstrap", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "audits", *common, "--technical-document", str(tmp_path / "td.json")]
        + ["--out", str(tmp_path / "with.json")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    section = json.loads((tmp_path / "with.json").read_text("utf-8"))["explainability"]
    assert section["technical_document"] is True and section["summary"]["undeclared_sensitive_inputs"] == 0
    assert "explainability: " in done.stderr  # progress of the step's model run
    skipped = subprocess.run(
        [sys.executable, "-m", "audits", *common, "--no-explainability", "--out", str(tmp_path / "without.json")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads((tmp_path / "without.json").read_text("utf-8"))["explainability"] is None


def test_each_finding_is_one_plain_sentence_in_english_and_chinese():
    row = {"input": "relationship", "attribute": "sex", "auc": 0.8312, "nmi": 0.2, "declared": False}
    undeclared = findings.proxy(row)
    assert undeclared["text_en"] == (
        "relationship predicts sex (AUC 0.83); the technical document does not declare it as a proxy."
    )
    assert undeclared["text_zh"] == "relationship 能预测 sex（AUC 0.83），技术文档未声明该代理变量。"
    assert undeclared["severity"] == "concern"
    assert findings.proxy(row | {"declared": True})["text_en"].endswith(", as the technical document declares.")
    assert findings.proxy(row | {"declared": None})["code"] == "proxy"
    quiet = findings.top_inputs([{"input": "x", "importance": 0.0}, {"input": "y", "importance": -0.01}], 3)
    assert quiet["code"] == "no_important_input" and quiet["text_zh"].endswith("。")
    two = findings.top_inputs([{"input": "x", "importance": 0.051}, {"input": "y", "importance": 0.02}], 3)
    assert (
        two["text_en"] == "Decisions depend most on x (accuracy falls by 5.1 points when it is shuffled), then y (2.0)."
    )
    assert two["text_zh"] == "决定最依赖 x（打乱后准确率下降 5.1 个百分点），其次是 y（2.0）。"
