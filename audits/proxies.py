"""Proxies: how well each model input, on its own, predicts each sensitive attribute.

For every input × sensitive attribute, on the explainability sample:

* **ROC AUC**, cross-validated: a small fixed classifier (:data:`CLASSIFIER`: a decision tree of at most 16 leaves,
  at least 20 rows a leaf; a categorical input is one-hot encoded over the values seen in the sample) is fitted on
  ``folds - 1`` folds of :class:`sklearn.model_selection.StratifiedKFold` (shuffled, ``random_state`` = the audit's
  seed) and scored on the held-out fold; the figure is the mean over the folds, exactly what
  ``cross_val_score(classifier, x, attribute, cv=..., scoring="roc_auc")`` gives (``"roc_auc_ovr"``, the macro
  average of one-vs-rest AUCs, for an attribute with more than two groups). 0.5 means the input says nothing about
  the attribute, 1.0 that it gives it away.
* **NMI**: the normalised mutual information (arithmetic mean, scikit-learn's ``normalized_mutual_info_score``)
  between the attribute and the input, a categorical input by its values, a numeric one by its decile bins
  (missing values a bin of their own). Not cross-validated: a description, not a test.

An input is a **likely proxy** for an attribute when its AUC is at or above the policy's threshold, unless the input
*is* the attribute (the column the attribute is read or derived from: that is direct use, see the flip test).
Groups with fewer rows in the sample than the policy's minimum group size (and at least ``folds``) are left out
of that attribute's analysis and listed, so that every fold holds every group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from audits.declarations import Declarations

__all__ = ["CLASSIFIER", "NMI_BINS", "classifier", "cross_validated_auc", "is_categorical", "nmi", "table"]

CLASSIFIER = (
    "DecisionTreeClassifier(max_leaf_nodes=16, min_samples_leaf=20, random_state=0) on the input alone; "
    "a categorical input one-hot encoded over the values seen in the sample"
)
NMI_BINS = 10

_TREE = DecisionTreeClassifier(max_leaf_nodes=16, min_samples_leaf=20, random_state=0)


def is_categorical(series: pd.Series) -> bool:
    """Whether a data column is categorical (text) rather than numeric (the reference data's two kinds)."""
    return not (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype))


def classifier(categories: Sequence[str] | None = None):
    """The fixed classifier for one input: the tree, behind a one-hot encoder over ``categories`` if given."""
    if categories is None:
        return clone(_TREE)
    return Pipeline([("onehot", OneHotEncoder(categories=[list(categories)])), ("tree", clone(_TREE))])


def cross_validated_auc(
    x: pd.DataFrame, y: np.ndarray, *, folds: int, seed: int, categories: Sequence[str] | None = None
) -> tuple[float, list[float]]:
    """(mean, per-fold) ROC AUC of :func:`classifier` predicting ``y`` from the one column of ``x``.

    The same numbers as ``cross_val_score(classifier(categories), x, y, cv=StratifiedKFold(folds, shuffle=True,
    random_state=seed), scoring="roc_auc" | "roc_auc_ovr")``. Every class of ``y`` needs at least ``folds`` rows.
    A one-hot encoding over fixed categories learns nothing from the rows, so it is applied once, before the folds.
    """
    if categories is not None:
        matrix = OneHotEncoder(categories=[list(categories)]).fit_transform(x.astype(str))
    else:
        matrix = x.to_numpy(dtype=np.float64)
    # Integer codes in the labels' sorted order: the same folds, trees and AUCs, without string handling per fold.
    _classes, codes = np.unique(y, return_inverse=True)
    codes = codes.reshape(-1)
    binary = codes.max() == 1
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = []
    for train, test in splitter.split(np.zeros(len(codes)), codes):
        tree = clone(_TREE).fit(matrix[train], codes[train])
        proba = tree.predict_proba(matrix[test])
        if binary:
            scores.append(float(roc_auc_score(codes[test], proba[:, 1])))
        else:
            scores.append(float(roc_auc_score(codes[test], proba, multi_class="ovr", average="macro")))
    return float(np.mean(scores)), scores


def _codes(series: pd.Series) -> np.ndarray:
    """The input as discrete codes for NMI: values of a categorical input, decile bins of a numeric one."""
    if is_categorical(series):
        return pd.factorize(series.astype(str), use_na_sentinel=False)[0]
    values = series.to_numpy(dtype=np.float64)
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.zeros(len(values), dtype=np.intp)
    edges = np.unique(np.quantile(finite, np.arange(1, NMI_BINS) / NMI_BINS))
    codes = np.searchsorted(edges, values, side="right")
    return np.where(np.isnan(values), -1, codes)


def nmi(series: pd.Series, y: np.ndarray) -> float:
    """Normalised mutual information between an input (values, or decile bins) and the attribute ``y``."""
    return float(normalized_mutual_info_score(y, _codes(series)))


def table(
    frame: pd.DataFrame,
    groups: Mapping[str, np.ndarray],
    *,
    sources: Mapping[str, str],
    declarations: Declarations,
    threshold: float,
    folds: int,
    seed: int,
    min_group_size: int,
) -> dict:
    """The proxy analysis of every column of ``frame`` (the model's inputs, sample rows) against ``groups``.

    ``sources`` maps each sensitive attribute to the data column it is read or derived from. Returns the report's
    ``proxies`` section: ``rows`` (one per input × attribute, in input then attribute order) and ``left_out``.
    """
    rows, left_out = [], {}
    smallest = max(int(min_group_size), folds)
    for attribute, labels in groups.items():
        values, sizes = np.unique(labels, return_counts=True)
        small = values[sizes < smallest]
        left_out[attribute] = [{attribute: str(v)} for v in small]
        keep = ~np.isin(labels, small)
        y = labels[keep]
        usable = len(values) - len(small) >= 2
        for column in frame.columns:
            x = frame.loc[keep, [column]].reset_index(drop=True)
            direct = sources.get(attribute) == column
            row = {
                "input": column,
                "attribute": attribute,
                "auc": None,
                "auc_folds": [],
                "nmi": None,
                "flagged": False,
                "direct": direct,
                "declared": declarations.declares_proxy(column, attribute),
            }
            if usable:
                categories = sorted(x[column].astype(str).unique()) if is_categorical(x[column]) else None
                auc, per_fold = cross_validated_auc(x, y, folds=folds, seed=seed, categories=categories)
                row.update(auc=auc, auc_folds=per_fold, nmi=nmi(x[column], y))
                row["flagged"] = bool(not direct and auc >= threshold)
            rows.append(row)
    return {
        "classifier": CLASSIFIER,
        "folds": folds,
        "threshold": float(threshold),
        "nmi": f"normalized_mutual_info_score (arithmetic); numeric inputs in {NMI_BINS} quantile bins",
        "rows": rows,
        "left_out": left_out,
    }
