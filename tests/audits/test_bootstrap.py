"""Bootstrap intervals: seeded and reproducible, sane, close to a brute-force row bootstrap, robust to tiny groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from audits.bootstrap import intervals
from audits.counts import encode_groups, tally
from audits.figures import COUNT_FIGURES, DISPARITIES, compute
from tests.audits.conftest import FAVOURABLE

FAV = FAVOURABLE
ATTRS = ["sex", "race"]
INTERVAL_FIGURES = [f for f in COUNT_FIGURES if f != "count"] + ["roc_auc", "brier"]


@pytest.fixture(scope="module")
def adult(adult_predictions) -> dict:
    proba = adult_predictions["proba"]
    y = (adult_predictions["y_true"] == FAV).astype(int)
    p = (adult_predictions["y_pred"] == FAV).astype(int)
    sensitive = adult_predictions["sensitive"]
    encoded = encode_groups(sensitive, ATTRS)
    t = tally(y, p, encoded, score=proba)
    return {
        "y": y,
        "p": p,
        "proba": proba,
        "codes": encoded.codes,
        "tally": t,
        "groups": encoded.groups,
        "intervals": intervals(t, replicates=1000, seed=11),
    }


def test_same_seed_same_output_and_different_seed_different(adult):
    t = adult["tally"]
    again = intervals(t, replicates=1000, seed=11)
    assert again == adult["intervals"]
    assert json.dumps(again, allow_nan=False) == json.dumps(adult["intervals"], allow_nan=False)
    other = intervals(t, replicates=1000, seed=12)
    assert other["overall"]["accuracy"] != again["overall"]["accuracy"]
    assert other["by_group"][0]["selection_rate"] != again["by_group"][0]["selection_rate"]


def test_the_output_has_the_shape_of_the_figures(adult):
    b = adult["intervals"]
    assert b["replicates"] == 1000 and b["seed"] == 11 and b["level"] == 0.95 and b["method"]
    assert set(b["overall"]) == set(INTERVAL_FIGURES)
    assert [e["group"] for e in b["by_group"]] == [dict(zip(ATTRS, k, strict=True)) for k in adult["groups"]]
    assert set(b["disparities"]) == set(DISPARITIES)
    assert set(b["by_attribute"]) == set(ATTRS) and set(b["disparities_by_attribute"]) == set(ATTRS)
    for entry in b["by_group"]:
        assert set(INTERVAL_FIGURES) | {"impact_ratio"} <= set(entry)


def test_point_estimates_lie_inside_their_intervals_for_large_groups(adult):
    report = compute(adult["tally"])  # binned AUC, as the bootstrap uses
    b = adult["intervals"]
    for name in INTERVAL_FIGURES:
        lo, hi = b["overall"][name]
        assert lo <= report["overall"][name] <= hi, name
        assert hi - lo < 0.05, name
    for point, entry in zip(report["by_group"], b["by_group"], strict=True):
        if point["n"] < 1000:
            continue
        for name in INTERVAL_FIGURES:
            lo, hi = entry[name]
            assert lo <= point[name] <= hi, (entry["group"], name)
    for attribute in ATTRS:
        for point, entry in zip(report["by_attribute"][attribute], b["by_attribute"][attribute], strict=True):
            if point["n"] >= 1000:
                lo, hi = entry["accuracy"]
                assert lo <= point["accuracy"] <= hi
    for name in DISPARITIES:
        lo, hi = b["disparities"][name]
        assert lo <= hi


def _brute_force(adult: dict, replicates: int, statistic, seed: int = 5) -> np.ndarray:
    """Resample rows with replacement (numpy), ``replicates`` times, and evaluate ``statistic(index)``."""
    rng = np.random.default_rng(seed)
    n = len(adult["y"])
    return np.array([statistic(rng.integers(0, n, size=n)) for _ in range(replicates)])


def test_intervals_are_close_to_a_brute_force_row_bootstrap(adult):
    y, p, codes = adult["y"], adult["p"], adult["codes"]
    correct = (y == p).astype(float)
    b = adult["intervals"]

    accuracy = _brute_force(adult, 2000, lambda i: correct[i].mean())
    assert np.allclose(b["overall"]["accuracy"], np.percentile(accuracy, [2.5, 97.5]), atol=0.01)

    # A group's selection rate: the largest and a small intersection.
    for g in (int(np.argmax(np.bincount(codes))), int(np.argsort(np.bincount(codes))[3])):
        member = (codes == g).astype(float)
        selected = member * p

        def rate(i, member=member, selected=selected):
            return selected[i].sum() / member[i].sum()

        sr = _brute_force(adult, 2000, rate)
        assert np.allclose(b["by_group"][g]["selection_rate"], np.percentile(sr, [2.5, 97.5]), atol=0.01)
        assert np.allclose(
            b["by_group"][g]["accuracy"],
            np.percentile(
                _brute_force(adult, 2000, lambda i, m=member: (m * correct)[i].sum() / m[i].sum()), [2.5, 97.5]
            ),
            atol=0.01,
        )

    sq = (adult["proba"] - y) ** 2
    brier = _brute_force(adult, 2000, lambda i: sq[i].mean())
    assert np.allclose(b["overall"]["brier"], np.percentile(brier, [2.5, 97.5]), atol=0.005)
    auc = _brute_force(adult, 300, lambda i: roc_auc_score(y[i], adult["proba"][i]))
    assert np.allclose(b["overall"]["roc_auc"], np.percentile(auc, [2.5, 97.5]), atol=0.01)


def test_tiny_groups_never_raise_and_are_marked():
    rng = np.random.default_rng(3)
    n = 400
    g = rng.choice(np.array(["big", "mid"], dtype=object), n)
    g[:1] = "one"  # a group of one row
    g[1:3] = "two"  # a group of two rows, one class only
    y = rng.integers(0, 2, n)
    y[1:3] = 1
    p = rng.integers(0, 2, n)
    s = rng.random(n)
    t = tally(y, p, {"g": g}, ["g"], score=s)
    b = intervals(t, replicates=200, seed=0, min_group_size=30)
    entries = {e["group"]["g"]: e for e in b["by_group"]}
    assert entries["one"]["insufficient_data"] and entries["two"]["insufficient_data"]
    assert not entries["big"]["insufficient_data"]
    assert entries["two"]["roc_auc"] is None and entries["two"]["fpr"] is None
    assert json.dumps(b, allow_nan=False)
    # Without scores, and with fewer groups than a disparity needs.
    single = tally(y[:1], p[:1], {"g": g[:1]}, ["g"])
    out = intervals(single, replicates=50, seed=0)
    assert out["overall"]["roc_auc"] is None
    assert all(v is None for v in out["disparities"].values())
    empty = tally(np.array([], dtype=int), np.array([], dtype=int), {"g": np.array([], dtype=object)}, ["g"])
    assert intervals(empty, replicates=10)["by_group"] == []
    assert compute(empty)["by_group"] == []
