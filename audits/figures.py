"""Accuracy and fairness figures from a :class:`~audits.counts.Tally`: overall, per intersection, per attribute.

fairlearn and scikit-learn define what every figure means; this module computes the same numbers from the
per-group confusion counts (and score histograms) instead of from rows, which is orders of magnitude faster and
additive over batches. The tests prove the figures equal fairlearn's ``MetricFrame`` (``pos_label`` = the
favourable label) and scikit-learn's metric functions on real data.

Definitions (TN, FP, FN, TP are the cells of one group; 1 = favourable; undefined 0/0 → NaN → JSON ``null``):

=====================  ==========================================  =====================================
figure                 formula                                     reference
=====================  ==========================================  =====================================
count                  TN + FP + FN + TP                           fairlearn ``count``
base_rate              (TP + FN) / n                               share of favourable true labels
selection_rate         (TP + FP) / n                               fairlearn ``selection_rate``
accuracy               (TP + TN) / n                               sklearn ``accuracy_score``
balanced_accuracy      mean of TPR and TNR over the classes        sklearn ``balanced_accuracy_score``
                       present in y_true
precision              TP / (TP + FP)                              sklearn ``precision_score``
recall, tpr            TP / (TP + FN)                              sklearn ``recall_score``
fpr                    FP / (FP + TN)                              fairlearn ``false_positive_rate``
fnr                    FN / (TP + FN)                              fairlearn ``false_negative_rate``
f1                     2TP / (2TP + FP + FN)                       sklearn ``f1_score``
roc_auc                Mann–Whitney U / (P·N), ties at half        sklearn ``roc_auc_score``
brier                  mean (score − y)²                           sklearn ``brier_score_loss``
=====================  ==========================================  =====================================

One deliberate difference: where a rate is undefined (e.g. TPR of a group with no favourable true labels)
fairlearn's confusion-matrix rates return 0.0 (scikit-learn's ``normalize="true"`` replaces 0/0 by 0); here it
is NaN, reported as ``null``, and such a group is left out of the disparities that need that rate.

Disparities (fairlearn's ``between_groups`` definitions, equalized odds with ``agg="worst_case"``) are computed
over the groups with ``n >= min_group_size`` whose figure is defined; smaller groups are still reported, marked
``insufficient_data``, and listed under ``left_out`` (NYC Local Law 144 allows leaving small categories out of
the impact ratio).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from audits.counts import Tally, encode_groups

__all__ = [
    "CALIBRATION_BINS",
    "attribute_levels",
    "COUNT_FIGURES",
    "DISPARITIES",
    "FOUR_FIFTHS",
    "SCORE_FIGURES",
    "auc_from_hist",
    "auc_from_rows",
    "compute",
    "disparity_values",
    "from_cells",
]

COUNT_FIGURES = (
    "count",
    "base_rate",
    "selection_rate",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "tpr",
    "fpr",
    "fnr",
    "f1",
)
SCORE_FIGURES = ("roc_auc", "brier")
DISPARITIES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "predictive_parity_difference",
)
#: The four-fifths rule (29 CFR 1607.4(D)): an impact ratio below this is evidence of adverse impact.
FOUR_FIFTHS = 0.8
CALIBRATION_BINS = 10


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(a, b)
    return np.where(b == 0, np.nan, out)


def from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Every count figure from confusion cells ``[..., 2, 2]`` (``[..., true, predicted]``, 1 = favourable).

    Vectorised over the leading axes, so ``[G, 2, 2]`` gives one value per group and ``[R, G, 2, 2]`` one per
    replicate and group. ``count`` is int64; the rest are float64 with NaN where undefined.
    """
    c = np.asarray(cells)
    if c.shape[-2:] != (2, 2):
        raise ValueError(f"cells must end in (2, 2), not {c.shape}")
    c = c.astype(np.float64)
    tn, fp, fn, tp = c[..., 0, 0], c[..., 0, 1], c[..., 1, 0], c[..., 1, 1]
    n = tn + fp + fn + tp
    pos = tp + fn
    neg = tn + fp
    tpr = _div(tp, pos)
    tnr = _div(tn, neg)
    with np.errstate(invalid="ignore"):
        balanced = np.where(pos > 0, np.where(neg > 0, (tpr + tnr) / 2, tpr), np.where(neg > 0, tnr, np.nan))
    return {
        "count": np.asarray(cells).sum(axis=(-2, -1)).astype(np.int64),
        "base_rate": _div(pos, n),
        "selection_rate": _div(tp + fp, n),
        "accuracy": _div(tp + tn, n),
        "balanced_accuracy": balanced,
        "precision": _div(tp, tp + fp),
        "recall": tpr,
        "tpr": tpr,
        "fpr": _div(fp, neg),
        "fnr": _div(fn, pos),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
    }


def auc_from_hist(hist: np.ndarray) -> np.ndarray:
    """ROC AUC from score histograms ``[..., 2, bins]`` (``[..., true label, bin]``, bins in increasing score).

    Mann–Whitney: each (favourable, unfavourable) pair counts 1 when the favourable row's bin is higher and 1/2
    when both share a bin. Exact when every distinct score has its own bin; NaN when a class is absent.
    """
    h = np.asarray(hist, dtype=np.float64)
    neg, pos = h[..., 0, :], h[..., 1, :]
    below = np.cumsum(neg, axis=-1) - neg
    u = np.sum(pos * (below + 0.5 * neg), axis=-1)
    return _div(u, pos.sum(axis=-1) * neg.sum(axis=-1))


def _auc_sorted_runs(y: np.ndarray, s: np.ndarray, g: np.ndarray, groups: int) -> np.ndarray:
    """Exact AUC per group from rows sorted by (group, score), by Mann–Whitney with mid-ranks for ties.

    With 0-based positions, a favourable row's mid-rank within its group minus the number of favourable rows
    ranked below it counts the unfavourable rows below it (ties at half), so
    ``U = Σ_favourable (midrank − group start) − P(P−1)/2``. Element-wise passes only; no per-run arrays.
    """
    n = len(y)
    if n == 0:
        return np.full(groups, np.nan)
    idx = np.arange(n, dtype=np.float64)
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(s[1:], s[:-1], out=new_run[1:])
    new_run[1:] |= g[1:] != g[:-1]
    if new_run.all():  # no ties: every mid-rank is the position itself
        twice_midrank = 2 * idx
    else:
        first = np.maximum.accumulate(np.where(new_run, idx, 0.0))
        run_end = np.empty(n, dtype=bool)
        run_end[:-1] = new_run[1:]
        run_end[-1] = True
        twice_midrank = first + np.minimum.accumulate(np.where(run_end, idx, float(n))[::-1])[::-1]
    p = np.bincount(g, weights=y, minlength=groups)
    size = np.bincount(g, minlength=groups).astype(np.float64)
    group_start = np.cumsum(size) - size
    u = np.bincount(g, weights=y * twice_midrank, minlength=groups) / 2 - p * group_start - p * (p - 1) / 2
    return _div(u, p * (size - p))


def auc_from_rows(
    y: np.ndarray,
    score: np.ndarray,
    group_index: np.ndarray,
    groups: int,
    extra: Sequence[tuple[np.ndarray, int]] = (),
) -> tuple[float, np.ndarray, list[np.ndarray]]:
    """Exact ROC AUC overall, per group, and per each extra grouping ``(index, count)`` — the same number as
    sklearn's ``roc_auc_score`` — NaN where a group has one class only.

    ``y`` is 0/1 (1 = favourable). One sort of the scores, then a stable radix sort by group per grouping.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(s)  # any order of tied scores will do: ties are counted as runs
    s1, y1 = s[order], y[order]
    overall = _auc_sorted_runs(y1, s1, np.zeros(len(s1), dtype=np.int8), 1)[0]
    results = []
    for index, count in ((group_index, groups), *extra):
        g1 = np.asarray(index)[order].astype(np.int16 if count < 2**15 else np.int64)
        order2 = np.argsort(g1, kind="stable")
        results.append(_auc_sorted_runs(y1[order2], s1[order2], g1[order2], count))
    return float(overall), results[0], results[1:]


def disparity_values(figures: Mapping[str, np.ndarray], eligible: np.ndarray) -> dict[str, np.ndarray]:
    """The six disparities from per-group figures ``[..., G]`` over the ``eligible`` groups (mask ``[G]``).

    Vectorised over leading axes (replicates). A group whose figure is NaN is skipped; with fewer than two
    defined groups the disparity is NaN.
    """
    out: dict[str, np.ndarray] = {}
    spread = {
        name: _spread(np.asarray(figures[name], dtype=np.float64), eligible)
        for name in ("selection_rate", "tpr", "fpr", "precision")
    }
    out["demographic_parity_difference"] = spread["selection_rate"][0]
    out["demographic_parity_ratio"] = spread["selection_rate"][1]
    out["equalized_odds_difference"] = np.maximum(spread["tpr"][0], spread["fpr"][0])
    out["equalized_odds_ratio"] = np.minimum(spread["tpr"][1], spread["fpr"][1])
    out["equal_opportunity_difference"] = spread["tpr"][0]
    out["predictive_parity_difference"] = spread["precision"][0]
    return out


def _spread(values: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.where(eligible, values, np.nan)
    defined = np.sum(~np.isnan(v), axis=-1)
    hi = np.fmax.reduce(v, axis=-1) if v.shape[-1] else np.full(v.shape[:-1], np.nan)
    lo = np.fmin.reduce(v, axis=-1) if v.shape[-1] else np.full(v.shape[:-1], np.nan)
    diff = np.where(defined >= 2, hi - lo, np.nan)
    ratio = np.where(defined >= 2, _div(lo, hi), np.nan)
    return diff, ratio


# ----------------------------------------------------------------------------------------------------------------
# The JSON-ready report


def _num(x: Any) -> float | int | None:
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _key(attributes: Sequence[str], key: Sequence[str]) -> dict[str, str]:
    return dict(zip(attributes, key, strict=True))


def _calibration(hist: np.ndarray, ssum: np.ndarray) -> list[dict[str, Any]]:
    """Ten equal-width bins on [0, 1] from the fine histogram ``hist[2, BINS]`` and score sums."""
    bins = hist.shape[-1]
    coarse = (np.arange(bins) * CALIBRATION_BINS) // bins
    n = np.bincount(coarse, weights=hist.sum(axis=0), minlength=CALIBRATION_BINS)
    favourable = np.bincount(coarse, weights=hist[1], minlength=CALIBRATION_BINS)
    total = np.bincount(coarse, weights=ssum.sum(axis=0), minlength=CALIBRATION_BINS)
    mean, observed = _div(total, n), _div(favourable, n)
    return [
        {
            "bin_low": k / CALIBRATION_BINS,
            "bin_high": (k + 1) / CALIBRATION_BINS,
            "n": int(n[k]),
            "mean_score": _num(mean[k]),
            "observed_rate": _num(observed[k]),
        }
        for k in range(CALIBRATION_BINS)
    ]


def _entry(key: dict[str, str] | None, figs: Mapping[str, np.ndarray], i: Any) -> dict[str, Any]:
    out: dict[str, Any] = {} if key is None else {"group": key}
    out["n"] = int(figs["count"][i])
    for name in COUNT_FIGURES + SCORE_FIGURES:
        out[name] = _num(figs[name][i])
    return out


def _disparity_block(
    attributes: Sequence[str],
    keys: Sequence[Sequence[str]],
    figs: Mapping[str, np.ndarray],
    eligible: np.ndarray,
) -> tuple[dict[str, Any], np.ndarray]:
    """The disparities with the groups that set them; also each group's impact ratio."""
    values = disparity_values(figs, eligible)
    small = [_key(attributes, keys[i]) for i in np.flatnonzero(~eligible)]

    def who(figure: str) -> tuple[dict | None, dict | None, list[dict[str, Any]]]:
        v = np.where(eligible, np.asarray(figs[figure], dtype=np.float64), np.nan)
        left_out = [{"group": k, "reason": "insufficient_data"} for k in small]
        left_out += [
            {"group": _key(attributes, keys[i]), "reason": "undefined"} for i in np.flatnonzero(eligible & np.isnan(v))
        ]
        if np.sum(~np.isnan(v)) < 2:
            return None, None, left_out
        hi = int(np.nanargmax(v))
        lo = int(np.nanargmin(v))
        return _key(attributes, keys[hi]), _key(attributes, keys[lo]), left_out

    def block(name: str, figure: str, **extra: Any) -> dict[str, Any]:
        hi, lo, left_out = who(figure)
        return {
            "value": _num(values[name]),
            "figure": figure,
            "groups": [] if hi is None else [hi, lo],
            "reference_group": hi,
            "left_out": left_out,
            **extra,
        }

    tpr_d, tpr_r = (float(x) for x in _spread(np.asarray(figs["tpr"], dtype=np.float64), eligible))
    fpr_d, fpr_r = (float(x) for x in _spread(np.asarray(figs["fpr"], dtype=np.float64), eligible))
    eod_by = "fpr" if fpr_d > tpr_d else "tpr"
    eor_by = "fpr" if fpr_r < tpr_r else "tpr"

    sr = np.asarray(figs["selection_rate"], dtype=np.float64)
    eligible_sr = np.where(eligible, sr, np.nan)
    top = np.fmax.reduce(eligible_sr) if len(sr) else np.nan
    impact = _div(sr, np.full_like(sr, top)) if not math.isnan(top) else np.full_like(sr, np.nan)
    dpr = values["demographic_parity_ratio"]
    below = [
        {"group": _key(attributes, keys[i]), "impact_ratio": _num(impact[i])}
        for i in np.flatnonzero(eligible & ~np.isnan(impact) & (impact < FOUR_FIFTHS))
    ]
    out = {
        "demographic_parity_difference": block("demographic_parity_difference", "selection_rate"),
        "demographic_parity_ratio": block(
            "demographic_parity_ratio",
            "selection_rate",
            four_fifths_rule={
                "threshold": FOUR_FIFTHS,
                "passes": None if np.isnan(dpr) else bool(dpr >= FOUR_FIFTHS),
                "groups_below": below,
            },
        ),
        "equalized_odds_difference": block("equalized_odds_difference", eod_by),
        "equalized_odds_ratio": block("equalized_odds_ratio", eor_by),
        "equal_opportunity_difference": block("equal_opportunity_difference", "tpr"),
        "predictive_parity_difference": block("predictive_parity_difference", "precision"),
    }
    return out, impact


def attribute_levels(t: Tally) -> dict[str, tuple[list[tuple[str]], np.ndarray]]:
    """For each attribute: its values present (sorted) and a 0/1 matrix ``[levels, G]`` summing intersections."""
    out = {}
    for a, attribute in enumerate(t.attributes):
        levels = sorted({k[a] for k in t.groups})
        position = {v: i for i, v in enumerate(levels)}
        matrix = np.zeros((len(levels), len(t.groups)), dtype=np.int64)
        for g, k in enumerate(t.groups):
            matrix[position[k[a]], g] = 1
        out[attribute] = ([(v,) for v in levels], matrix)
    return out


def _score_figures(
    hist: np.ndarray | None, brier_sum: np.ndarray | None, n: np.ndarray, auc: np.ndarray | None
) -> dict[str, np.ndarray]:
    if hist is None:
        nan = np.full(n.shape, np.nan)
        return {"roc_auc": nan, "brier": nan}
    return {
        "roc_auc": auc_from_hist(hist) if auc is None else auc,
        "brier": _div(brier_sum, n.astype(np.float64)),
    }


def compute(
    t: Tally,
    *,
    y_true: Any = None,
    score: Any = None,
    group_index: Any = None,
    sensitive: Mapping[str, Any] | None = None,
    min_group_size: int = 30,
    favourable: Any = 1,
) -> dict[str, Any]:
    """All point figures of an audit as a JSON-ready dict (NaN → ``None``).

    ROC AUC is exact (from rows) when ``y_true``, ``score`` and either ``group_index`` (row → index into
    ``t.groups``, e.g. :attr:`audits.counts.EncodedGroups.codes`) or ``sensitive`` (the attribute columns, as given
    to :func:`audits.counts.tally`) are given — the rows must be those tallied, labels compared with
    ``favourable`` — and otherwise (also when ``score`` is None) it
    comes from the tally's score histograms (ties inside a 1/BINS-wide bin at half credit). Brier is always
    exact; calibration uses the exact mean score of each bin.
    """
    if min_group_size < 0:
        raise ValueError("min_group_size must not be negative")
    attributes = t.attributes
    keys = t.groups
    n_groups = len(keys)
    has_scores = t.has_scores
    auc_overall = auc_groups = None
    auc_levels: list[np.ndarray] | None = None
    levels_by_attribute = attribute_levels(t)
    if group_index is not None and sensitive is not None:
        raise ValueError("give group_index or sensitive, not both")
    if score is not None:
        if y_true is None or (group_index is None and sensitive is None):
            raise ValueError("score rows need y_true and group_index (or sensitive) too")
        if not has_scores:
            raise ValueError("score rows were given but the tally has no scores")
        y = (np.asarray(y_true) == favourable).astype(np.intp)
        if sensitive is not None:
            encoded = encode_groups(sensitive, attributes)
            position = {key: i for i, key in enumerate(keys)}
            if any(k not in position for k in encoded.groups):
                raise ValueError("the rows given do not match the tally")
            gi = np.array([position[k] for k in encoded.groups], dtype=np.intp)[encoded.codes]
        else:
            gi = np.asarray(group_index).astype(np.intp)
        if len(y) != len(gi) or len(np.asarray(score)) != len(y):
            raise ValueError("y_true, score and the groups must have the same length")
        if len(gi) and (gi.min() < 0 or gi.max() >= n_groups):
            raise ValueError("group_index refers to a group the tally does not have")
        seen = np.bincount(gi * 2 + y, minlength=n_groups * 2).reshape(n_groups, 2)
        if not np.array_equal(seen, t.cells.sum(axis=2)):
            raise ValueError("the rows given do not match the tally")
        extra = []
        for _levels, matrix in levels_by_attribute.values():
            lookup = np.argmax(matrix, axis=0)  # intersection → level
            extra.append((lookup[gi], matrix.shape[0]))
        auc_overall, auc_groups, auc_levels = auc_from_rows(y, score, gi, n_groups, extra)

    group_figs = from_cells(t.cells)
    group_figs.update(_score_figures(t.score_hist, t.brier_sum, group_figs["count"], auc_groups))
    pooled = t.cells.sum(axis=0)
    overall_figs = {k: np.asarray(v) for k, v in from_cells(pooled).items()}
    if has_scores:
        pooled_hist = t.score_hist.sum(axis=0)
        overall_figs.update(
            _score_figures(
                pooled_hist,
                np.asarray(t.brier_sum.sum()),
                overall_figs["count"],
                None if auc_overall is None else np.asarray(auc_overall),
            )
        )
    else:
        overall_figs.update({"roc_auc": np.asarray(np.nan), "brier": np.asarray(np.nan)})

    eligible = group_figs["count"] >= min_group_size
    disparities, impact = _disparity_block(attributes, keys, group_figs, eligible)
    by_group = []
    for i, key in enumerate(keys):
        entry = _entry(_key(attributes, key), group_figs, i)
        entry["impact_ratio"] = _num(impact[i])
        entry["insufficient_data"] = bool(not eligible[i])
        if has_scores:
            entry["calibration"] = _calibration(t.score_hist[i], t.score_sum[i])
        by_group.append(entry)

    by_attribute: dict[str, list[dict[str, Any]]] = {}
    disparities_by_attribute: dict[str, dict[str, Any]] = {}
    for a, (attribute, (levels, matrix)) in enumerate(levels_by_attribute.items()):
        cells = np.einsum("lg,gij->lij", matrix, t.cells)
        figs = from_cells(cells)
        if has_scores:
            hist = np.einsum("lg,gyb->lyb", matrix, t.score_hist)
            figs.update(
                _score_figures(hist, matrix @ t.brier_sum, figs["count"], None if auc_levels is None else auc_levels[a])
            )
        else:
            figs.update({"roc_auc": np.full(len(levels), np.nan), "brier": np.full(len(levels), np.nan)})
        ok = figs["count"] >= min_group_size
        block, level_impact = _disparity_block((attribute,), levels, figs, ok)
        entries = []
        for i, level in enumerate(levels):
            entry = _entry({attribute: level[0]}, figs, i)
            entry["impact_ratio"] = _num(level_impact[i])
            entry["insufficient_data"] = bool(not ok[i])
            entries.append(entry)
        by_attribute[attribute] = entries
        disparities_by_attribute[attribute] = block

    return {
        "attributes": list(attributes),
        "min_group_size": int(min_group_size),
        "n": t.n,
        "overall": _entry(None, {k: np.atleast_1d(v) for k, v in overall_figs.items()}, 0),
        "by_group": by_group,
        "by_attribute": by_attribute,
        "calibration": _calibration(t.score_hist.sum(axis=0), t.score_sum.sum(axis=0)) if has_scores else None,
        "disparities": disparities,
        "disparities_by_attribute": disparities_by_attribute,
        "insufficient_data_groups": [_key(attributes, keys[i]) for i in np.flatnonzero(~eligible)],
        "methods": {
            "roc_auc": None
            if not has_scores
            else (
                "exact from rows (Mann-Whitney, ties at half)"
                if auc_groups is not None
                else f"from {t.score_hist.shape[2]}-bin score histograms (ties within a bin at half credit)"
            ),
            "brier": None if not has_scores else "exact",
            "calibration": None
            if not has_scores
            else f"{CALIBRATION_BINS} equal-width bins on [0, 1], exact mean score",
        },
    }
