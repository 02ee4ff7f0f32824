"""The fast figures equal fairlearn's and scikit-learn's, computed independently on real data (UCI Adult).

A LogisticRegression is trained in the test on a few Adult columns; its labels and probabilities are audited by
sex × race. Every count figure, per intersection, per single attribute and overall, and every disparity is
compared with fairlearn's MetricFrame (pos_label = the favourable label ">50K") and scikit-learn's metric
functions; ROC AUC and Brier with scikit-learn.
"""

from __future__ import annotations

import functools
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from audits.counts import Tally, encode_groups, tally
from audits.figures import COUNT_FIGURES, DISPARITIES, compute, from_cells
from tests.audits.conftest import FAVOURABLE

FAV = FAVOURABLE
ATTRS = ["sex", "race"]
TOL = 1e-9


@pytest.fixture(scope="module")
def adult(adult_predictions) -> dict:
    frame, y_true, y_pred = adult_predictions["frame"], adult_predictions["y_true"], adult_predictions["y_pred"]
    proba, sensitive = adult_predictions["proba"], adult_predictions["sensitive"]
    encoded = encode_groups(sensitive, ATTRS)
    t = tally(y_true, y_pred, encoded, score=proba, favourable=FAV)
    return {
        "frame": frame,
        "y_true": y_true,
        "y_pred": y_pred,
        "proba": proba,
        "sensitive": sensitive,
        "encoded": encoded,
        "tally": t,
        "report": compute(t, y_true=y_true, score=proba, group_index=encoded.codes, favourable=FAV),
    }


def _metric_functions(pos: object) -> dict:
    return {
        "count": count,
        "base_rate": lambda yt, yp: float(np.mean(np.asarray(yt) == pos)),
        "selection_rate": functools.partial(selection_rate, pos_label=pos),
        "accuracy": accuracy_score,
        "balanced_accuracy": balanced_accuracy_score,
        "precision": functools.partial(precision_score, pos_label=pos, zero_division=np.nan),
        "recall": functools.partial(recall_score, pos_label=pos, zero_division=np.nan),
        "tpr": functools.partial(true_positive_rate, pos_label=pos),
        "fpr": functools.partial(false_positive_rate, pos_label=pos),
        "fnr": functools.partial(false_negative_rate, pos_label=pos),
        "f1": functools.partial(f1_score, pos_label=pos, zero_division=np.nan),
    }


def _frame(adult: dict, attributes: list[str], mask: np.ndarray | None = None) -> MetricFrame:
    m = slice(None) if mask is None else mask
    return MetricFrame(
        metrics=_metric_functions(FAV),
        y_true=adult["y_true"][m],
        y_pred=adult["y_pred"][m],
        sensitive_features=pd.DataFrame({a: adult["sensitive"][a][m] for a in attributes}),
    )


@pytest.fixture(scope="module")
def frames(adult: dict) -> dict:
    return {"both": _frame(adult, ATTRS), "sex": _frame(adult, ["sex"]), "race": _frame(adult, ["race"])}


def _close(ours: float | None, theirs: float, tol: float = TOL) -> bool:
    if ours is None:
        return math.isnan(theirs)
    return abs(ours - float(theirs)) <= tol


def _lookup(by_group: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    return by_group.loc[key if len(key) > 1 else key[0]]


def test_every_intersection_is_large_enough_for_the_comparison(adult):
    # The fairlearn comparisons below assume no group is left out of a disparity.
    assert adult["report"]["insufficient_data_groups"] == []
    assert len(adult["tally"].groups) == 10


def test_count_figures_per_intersection_equal_fairlearn(adult, frames):
    by_group = frames["both"].by_group
    assert len(adult["report"]["by_group"]) == len(by_group)
    for entry in adult["report"]["by_group"]:
        expected = _lookup(by_group, (entry["group"]["sex"], entry["group"]["race"]))
        assert entry["n"] == expected["count"]
        for name in COUNT_FIGURES:
            assert _close(entry[name], expected[name]), (entry["group"], name, entry[name], expected[name])


@pytest.mark.parametrize("attribute", ["sex", "race"])
def test_count_figures_per_attribute_equal_fairlearn(adult, frames, attribute):
    by_group = frames[attribute].by_group
    entries = adult["report"]["by_attribute"][attribute]
    assert [e["group"][attribute] for e in entries] == sorted(by_group.index)
    for entry in entries:
        expected = by_group.loc[entry["group"][attribute]]
        for name in COUNT_FIGURES:
            assert _close(entry[name], expected[name]), (entry["group"], name)


def test_overall_figures_equal_fairlearn_and_sklearn(adult, frames):
    overall = adult["report"]["overall"]
    for name in COUNT_FIGURES:
        assert _close(overall[name], frames["both"].overall[name]), name
    y = adult["y_true"] == FAV
    assert _close(overall["roc_auc"], roc_auc_score(y, adult["proba"]))
    assert _close(overall["brier"], brier_score_loss(y, adult["proba"]))
    assert overall["n"] == len(y)


def test_roc_auc_and_brier_per_group_equal_sklearn(adult):
    y = adult["y_true"] == FAV
    codes = adult["encoded"].codes
    for i, entry in enumerate(adult["report"]["by_group"]):
        m = codes == i
        assert _close(entry["roc_auc"], roc_auc_score(y[m], adult["proba"][m])), entry["group"]
        assert _close(entry["brier"], brier_score_loss(y[m], adult["proba"][m])), entry["group"]
    for attribute in ATTRS:
        for entry in adult["report"]["by_attribute"][attribute]:
            m = adult["sensitive"][attribute] == entry["group"][attribute]
            assert _close(entry["roc_auc"], roc_auc_score(y[m], adult["proba"][m]))
            assert _close(entry["brier"], brier_score_loss(y[m], adult["proba"][m]))


def test_binned_auc_without_rows_is_close_to_exact(adult):
    binned = compute(adult["tally"])
    assert binned["methods"]["roc_auc"].startswith("from 1000-bin")
    exact = adult["report"]
    assert abs(binned["overall"]["roc_auc"] - exact["overall"]["roc_auc"]) < 2e-3
    for a, b in zip(binned["by_group"], exact["by_group"], strict=True):
        assert abs(a["roc_auc"] - b["roc_auc"]) < 5e-3
        assert a["brier"] == b["brier"]


def test_rows_given_as_sensitive_columns_give_the_same_report(adult):
    again = compute(
        adult["tally"], y_true=adult["y_true"], score=adult["proba"], sensitive=adult["sensitive"], favourable=FAV
    )
    assert again == adult["report"]


def test_calibration_table_equals_direct_computation(adult):
    y = (adult["y_true"] == FAV).astype(float)
    p = adult["proba"]
    table = adult["report"]["calibration"]
    assert len(table) == 10
    edges = np.linspace(0, 1, 11)
    for k, row in enumerate(table):
        m = (p >= edges[k]) & ((p < edges[k + 1]) if k < 9 else (p <= 1.0))
        assert row["bin_low"] == pytest.approx(edges[k]) and row["bin_high"] == pytest.approx(edges[k + 1])
        assert row["n"] == int(m.sum())
        if m.any():
            assert abs(row["mean_score"] - p[m].mean()) < TOL
            assert abs(row["observed_rate"] - y[m].mean()) < TOL
        else:
            assert row["mean_score"] is None and row["observed_rate"] is None
    first = adult["report"]["by_group"][0]["calibration"]
    assert sum(r["n"] for r in first) == adult["report"]["by_group"][0]["n"]


def test_disparities_equal_fairlearn(adult, frames):
    d = adult["report"]["disparities"]
    y01 = (adult["y_true"] == FAV).astype(int)
    p01 = (adult["y_pred"] == FAV).astype(int)
    sf = pd.DataFrame({a: adult["sensitive"][a] for a in ATTRS})
    expected = {
        "demographic_parity_difference": demographic_parity_difference(y01, p01, sensitive_features=sf),
        "demographic_parity_ratio": demographic_parity_ratio(y01, p01, sensitive_features=sf),
        "equalized_odds_difference": equalized_odds_difference(y01, p01, sensitive_features=sf, agg="worst_case"),
        "equalized_odds_ratio": equalized_odds_ratio(y01, p01, sensitive_features=sf, agg="worst_case"),
        "equal_opportunity_difference": equal_opportunity_difference(y01, p01, sensitive_features=sf),
        "predictive_parity_difference": frames["both"].difference()["precision"],
    }
    assert set(d) == set(DISPARITIES)
    for name in DISPARITIES:
        assert _close(d[name]["value"], expected[name]), (name, d[name]["value"], expected[name])
    # The same from the string-labelled frame's own difference/ratio.
    mf = frames["both"]
    assert _close(d["demographic_parity_difference"]["value"], mf.difference()["selection_rate"])
    assert _close(d["demographic_parity_ratio"]["value"], mf.ratio()["selection_rate"])
    assert _close(d["equal_opportunity_difference"]["value"], mf.difference()["tpr"])


def test_disparities_name_the_groups_that_set_them(adult, frames):
    by_group = frames["both"].by_group
    d = adult["report"]["disparities"]

    def key(index_value):
        return dict(zip(ATTRS, index_value, strict=True))

    for name, figure in [
        ("demographic_parity_difference", "selection_rate"),
        ("demographic_parity_ratio", "selection_rate"),
        ("equal_opportunity_difference", "tpr"),
        ("predictive_parity_difference", "precision"),
    ]:
        assert d[name]["figure"] == figure
        assert d[name]["groups"] == [key(by_group[figure].idxmax()), key(by_group[figure].idxmin())]
        assert d[name]["reference_group"] == key(by_group[figure].idxmax())
    tpr_spread = by_group["tpr"].max() - by_group["tpr"].min()
    fpr_spread = by_group["fpr"].max() - by_group["fpr"].min()
    assert d["equalized_odds_difference"]["figure"] == ("fpr" if fpr_spread > tpr_spread else "tpr")


def test_four_fifths_rule_block(adult, frames):
    sr = frames["both"].by_group["selection_rate"]
    rule = adult["report"]["disparities"]["demographic_parity_ratio"]["four_fifths_rule"]
    ratio = sr.min() / sr.max()
    assert rule["threshold"] == 0.8
    assert rule["passes"] == bool(ratio >= 0.8)
    below = {tuple(g["group"][a] for a in ATTRS): g["impact_ratio"] for g in rule["groups_below"]}
    expected = {k: v / sr.max() for k, v in sr.items() if v / sr.max() < 0.8}
    assert set(below) == set(expected)
    for k, v in expected.items():
        assert _close(below[k], v)
    for entry in adult["report"]["by_group"]:
        k = (entry["group"]["sex"], entry["group"]["race"])
        assert _close(entry["impact_ratio"], sr[k] / sr.max())


def test_per_attribute_disparities_equal_fairlearn(adult, frames):
    for attribute in ATTRS:
        d = adult["report"]["disparities_by_attribute"][attribute]
        mf = frames[attribute]
        assert _close(d["demographic_parity_ratio"]["value"], mf.ratio()["selection_rate"])
        assert _close(d["equalized_odds_difference"]["value"], max(mf.difference()["tpr"], mf.difference()["fpr"]))
        assert _close(d["equalized_odds_ratio"]["value"], min(mf.ratio()["tpr"], mf.ratio()["fpr"]))


def test_fairlearn_on_the_compressed_cells_gives_the_same_figures(adult):
    """The cells, expanded to ≤ 4 weighted rows per group, are a complete summary for fairlearn too."""
    t: Tally = adult["tally"]
    g, yt, yp = np.nonzero(t.cells)
    weights = t.cells[g, yt, yp].astype(float)
    labels = np.array(["<=50K", FAV], dtype=object)
    sf = pd.DataFrame({a: [t.groups[i][j] for i in g] for j, a in enumerate(ATTRS)})
    functions = {k: v for k, v in _metric_functions(FAV).items() if k not in ("count", "base_rate")}
    mf = MetricFrame(
        metrics=functions,
        y_true=labels[yt],
        y_pred=labels[yp],
        sensitive_features=sf,
        sample_params={k: {"sample_weight": weights} for k in functions},
    )
    for entry in adult["report"]["by_group"]:
        expected = mf.by_group.loc[(entry["group"]["sex"], entry["group"]["race"])]
        for name in functions:
            assert _close(entry[name], expected[name]), (entry["group"], name)


def test_tallies_of_two_halves_add_up_to_the_whole(adult):
    n = len(adult["y_true"])
    rng = np.random.default_rng(7)
    first = rng.random(n) < 0.5
    # Make the halves hold different sets of groups: one intersection only in the second half.
    only_second = (adult["sensitive"]["sex"] == "Female") & (adult["sensitive"]["race"] == "Other")
    first &= ~only_second

    def part(m):
        return tally(
            adult["y_true"][m],
            adult["y_pred"][m],
            {a: adult["sensitive"][a][m] for a in ATTRS},
            ATTRS,
            score=adult["proba"][m],
            favourable=FAV,
        )

    a, b = part(first), part(~first)
    assert ("Female", "Other") not in a.groups
    whole = adult["tally"]
    for total in (a + b, b + a):
        assert total.groups == whole.groups
        assert np.array_equal(total.cells, whole.cells)
        assert np.array_equal(total.score_hist, whole.score_hist)
        np.testing.assert_allclose(total.brier_sum, whole.brier_sum, rtol=1e-12)
        np.testing.assert_allclose(total.score_sum, whole.score_sum, rtol=1e-12)
    again = Tally.from_json(json.loads(json.dumps(whole.to_json())))
    assert again.groups == whole.groups and np.array_equal(again.cells, whole.cells)
    assert np.array_equal(again.score_hist, whole.score_hist) and np.array_equal(again.brier_sum, whole.brier_sum)


def test_adding_mismatched_tallies_is_refused(adult):
    t = adult["tally"]
    no_scores = tally(adult["y_true"], adult["y_pred"], adult["sensitive"], ATTRS, favourable=FAV)
    with pytest.raises(ValueError):
        t + no_scores
    with pytest.raises(ValueError):
        t + tally(adult["y_true"], adult["y_pred"], adult["sensitive"], ["race"], favourable=FAV)


def test_small_groups_are_marked_and_left_out_of_disparities(adult):
    t = adult["tally"]
    sizes = t.cells.sum(axis=(1, 2))
    limit = int(np.sort(sizes)[2]) + 1  # the three smallest intersections fall below
    report = compute(t, min_group_size=limit)
    small = [dict(zip(ATTRS, k, strict=True)) for k, s in zip(t.groups, sizes, strict=True) if s < limit]
    assert len(small) == 3
    assert report["insufficient_data_groups"] == small
    for entry in report["by_group"]:
        assert entry["insufficient_data"] == (entry["group"] in small)
        assert entry["accuracy"] is not None  # still reported
    # The disparities equal fairlearn's on the rows of the remaining groups only.
    codes = adult["encoded"].codes
    keep = np.isin(codes, np.flatnonzero(sizes >= limit))
    y01 = (adult["y_true"][keep] == FAV).astype(int)
    p01 = (adult["y_pred"][keep] == FAV).astype(int)
    sf = pd.DataFrame({a: adult["sensitive"][a][keep] for a in ATTRS})
    d = report["disparities"]
    assert _close(d["demographic_parity_ratio"]["value"], demographic_parity_ratio(y01, p01, sensitive_features=sf))
    assert _close(d["equalized_odds_difference"]["value"], equalized_odds_difference(y01, p01, sensitive_features=sf))
    for name in DISPARITIES:
        left_out = [x["group"] for x in d[name]["left_out"] if x["reason"] == "insufficient_data"]
        assert left_out == small
        assert not any(g in small for g in d[name]["groups"])
    below = [g["group"] for g in d["demographic_parity_ratio"]["four_fifths_rule"]["groups_below"]]
    assert not any(g in small for g in below)


def test_report_is_strict_json(adult):
    text = json.dumps(adult["report"], allow_nan=False)
    assert json.loads(text) == adult["report"]


def test_a_group_with_one_class_has_null_auc_and_undefined_rates():
    y = np.array([1, 1, 1, 0, 1, 0, 0, 1])
    p = np.array([1, 0, 1, 0, 1, 1, 0, 1])
    s = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.6, 0.3, 0.95])
    g = np.array(["a", "a", "a", "b", "b", "b", "b", "b"])
    t = tally(y, p, {"g": g}, ["g"], score=s)
    report = compute(t, y_true=y, score=s, group_index=encode_groups({"g": g}, ["g"]).codes, min_group_size=1)
    a = report["by_group"][0]
    assert a["roc_auc"] is None and a["fpr"] is None and a["tpr"] == pytest.approx(2 / 3)
    assert a["balanced_accuracy"] == pytest.approx(2 / 3)  # as sklearn: only the class present in y_true counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn warns about the class missing from y_true
        assert a["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y[:3], p[:3]))
    assert json.dumps(report, allow_nan=False)


# ------------------------------------------------------------------------------------------------------------
# Property: from_cells equals the figures computed directly on rows, for any small data set.


def _direct(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    def mean(x):
        return float(np.mean(x)) if len(x) else math.nan

    tpr = mean(p[y == 1] == 1)
    tnr = mean(p[y == 0] == 0)
    present = [v for v, has in ((tpr, (y == 1).any()), (tnr, (y == 0).any())) if has]
    tp = int(np.sum((y == 1) & (p == 1)))
    fp = int(np.sum((y == 0) & (p == 1)))
    fn = int(np.sum((y == 1) & (p == 0)))
    return {
        "count": len(y),
        "base_rate": mean(y == 1),
        "selection_rate": mean(p == 1),
        "accuracy": mean(y == p),
        "balanced_accuracy": float(np.mean(present)) if present else math.nan,
        "precision": mean(y[p == 1] == 1),
        "recall": tpr,
        "tpr": tpr,
        "fpr": mean(p[y == 0] == 1),
        "fnr": mean(p[y == 1] == 0),
        "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else math.nan,
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from("abc")), max_size=40))
def test_from_cells_matches_direct_computation(rows):
    y = np.array([r[0] for r in rows], dtype=int)
    p = np.array([r[1] for r in rows], dtype=int)
    g = np.array([r[2] for r in rows], dtype=object)
    t = tally(y, p, {"g": g}, ["g"])
    figures = from_cells(t.cells)
    assert [k[0] for k in t.groups] == sorted(set(g.tolist()))
    for i, (key,) in enumerate(t.groups):
        m = g == key
        expected = _direct(y[m], p[m])
        for name in COUNT_FIGURES:
            got = figures[name][i]
            if math.isnan(expected[name]):
                assert math.isnan(got), name
            else:
                assert abs(got - expected[name]) < 1e-12, name
    overall = from_cells(t.cells.sum(axis=0))
    expected = _direct(y, p)
    for name in COUNT_FIGURES:
        assert (math.isnan(expected[name]) and math.isnan(overall[name])) or abs(overall[name] - expected[name]) < 1e-12


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 10), st.sampled_from("ab")), min_size=1, max_size=60))
def test_exact_auc_with_tied_scores_equals_sklearn(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] / 10 for r in rows])  # eleven distinct scores: many ties
    g = np.array([r[2] for r in rows], dtype=object)
    encoded = encode_groups({"g": g}, ["g"])
    t = tally(y, y, encoded, score=s)
    report = compute(t, y_true=y, score=s, group_index=encoded.codes, min_group_size=1)
    for i, entry in enumerate(report["by_group"]):
        m = encoded.codes == i
        if len(set(y[m].tolist())) == 2:
            assert abs(entry["roc_auc"] - roc_auc_score(y[m], s[m])) < 1e-12
        else:
            assert entry["roc_auc"] is None
    if len(set(y.tolist())) == 2:
        assert abs(report["overall"]["roc_auc"] - roc_auc_score(y, s)) < 1e-12
