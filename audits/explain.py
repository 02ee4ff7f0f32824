"""Explainability: what drives a model's decisions, which inputs stand in for a sensitive attribute, and what a
decision does when only a sensitive input changes. No web code; called by :func:`audits.engine.run_audit`.

Everything is measured on one **sample** of the reference data (:func:`sample_indices`: all rows up to the
policy's ``sample_rows``, else a seeded simple random sample without replacement, kept in data order), so the
step costs the same on a million rows as on twenty thousand.

**Permutation importance** (Breiman 2001; scikit-learn's ``permutation_importance`` with ``scoring="accuracy"`` is
the definition): for each model input, the sample is copied ``n_repeats`` times with that input's column shuffled
and the others unchanged; importance = baseline accuracy − accuracy with the column shuffled, mean and standard
deviation over the repeats. The shuffles are scikit-learn's for ``random_state`` = the audit's seed
(:func:`permutations`: one seed drawn from ``RandomState(seed)``, the same sequence of cumulative in-place shuffles
for every column), so the figures equal ``permutation_importance(model, X_sample, y_sample, scoring="accuracy",
n_repeats=n_repeats, random_state=seed)`` exactly. Beside it, the **flip share**: the share of decisions that
change when the column is shuffled. Both overall and per group of each sensitive attribute (the group's rows, the
same shuffles). Accuracy and decisions are those of the favourable label, as everywhere in the audit.

**Flip test** (a counterfactual test): for each input that is a sensitive attribute — the column a sensitive
attribute of the reference data is read or derived from, or an input the technical document declares sensitive —
or that the technical document declares a likely proxy, every sampled row is copied once per other value of that
input with only that input changed, and the share of rows whose decision changes for at least one other value is
reported, overall and per group. The other values: for a column a sensitive attribute bins (e.g. age → age band),
one observed value per band (the band's lower median); else the ``flip_max_values`` most frequent values of a
categorical input, or for a numeric input its distinct values or, when there are more, that many observed
quantiles. Missing values are never a counterfactual.

The baseline copy, every shuffled copy and every flipped copy go to the sandboxed runner in **one** call (one
process start, the same limits as the audit's inference).

**Intervals**: a row bootstrap of the sample with the repeats fixed, drawn as multinomials over cells as in
:mod:`audits.bootstrap` — a row's importance is a mean over repeats in steps of ``1/n_repeats``, so its value has
``2·n_repeats + 1`` possible cells (and its flip share ``n_repeats + 1``); overall: one multinomial over the pooled
cells, n = the sample; per group: stratified, each group drawn with its own n. Percentile intervals at the
policy's level. The flip test's intervals are drawn the same way over (flipped, not flipped).

**Proxies**: :mod:`audits.proxies`. **Findings**: :mod:`audits.findings`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from audits import findings, proxies, runner
from audits.bootstrap import _percentile_interval
from audits.declarations import Declarations, loose
from audits.reference import ReferenceData

__all__ = ["SAMPLE_METHOD", "Settings", "explain", "permutations", "sample_indices"]

SAMPLE_METHOD = "all rows up to sample_rows, else a simple random sample without replacement (seeded), in data order"
IMPORTANCE_METHOD = (
    "permutation importance, scoring accuracy: baseline accuracy minus accuracy with the input shuffled, mean and "
    "standard deviation over n_repeats (scikit-learn permutation_importance with random_state = the audit's seed); "
    "flip share: share of decisions that change when the input is shuffled"
)
INTERVAL_METHOD = (
    "row bootstrap of the sample with the repeats fixed, as multinomial draws over each row's possible means; "
    "overall: one draw over the pooled cells; groups: stratified, each group with its own n; percentile interval"
)
FLIP_METHOD = (
    "every sampled row copied once per other value of the input, only that input changed; flip share: rows whose "
    "decision changes for at least one other value, over rows that have another value"
)
_STREAM = 8  # spawn key of this step's random streams (audits.bootstrap spawns its own from SeedSequence(seed))
_CHUNK = 100  # bootstrap replicates drawn at a time


@dataclass(frozen=True)
class Settings:
    """The policy's ``explainability`` block, with its defaults."""

    enabled: bool = True
    sample_rows: int = 20_000
    n_repeats: int = 5
    proxy_auc_threshold: float = 0.7
    proxy_folds: int = 5
    flip_max_values: int = 10
    top_inputs: int = 3
    max_batch_rows: int = 3_000_000

    @classmethod
    def from_policy(cls, block: Mapping[str, Any] | None) -> Settings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (block or {}).items() if k in known})

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "enabled"}


def sample_indices(rows: int, size: int, seed: int) -> np.ndarray:
    """The rows of the explainability sample (see the module doc), as sorted indices."""
    if rows <= size:
        return np.arange(rows)
    rng = np.random.default_rng(_streams(seed, 3)[0])
    return np.sort(rng.choice(rows, size=size, replace=False))


def permutations(n: int, n_repeats: int, random_state: int) -> np.ndarray:
    """``[n_repeats, n]`` row orders: repeat ``r`` puts row ``out[r, i]`` of a column in row ``i``.

    Exactly the shuffles scikit-learn's ``permutation_importance(..., random_state=random_state)`` applies to every
    column (it draws one seed from ``RandomState(random_state)``, then shuffles an index array in place once per
    repeat and takes the column through it each time, so the orders compound).
    """
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    generator = np.random.RandomState(seed)
    shuffling = np.arange(n)
    current = np.arange(n)
    out = np.empty((n_repeats, n), dtype=np.intp)
    for r in range(n_repeats):
        generator.shuffle(shuffling)
        current = current[shuffling]
        out[r] = current
    return out


def _streams(seed: int, count: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(int(seed), spawn_key=(_STREAM,)).spawn(count)


# --------------------------------------------------------------------------------------------- the flip plan


@dataclass(frozen=True)
class _Flip:
    column: str
    reasons: tuple[str, ...]
    attributes: tuple[str, ...]
    labels: tuple[str, ...]  # each counterfactual value as shown
    rows: tuple[int, ...]  # a sample row holding each value (the batch copies it from there)
    applicable: np.ndarray  # bool [values, n]: the row's own value differs from this one


def _sources(descriptor: dict) -> dict[str, dict]:
    """Sensitive attribute → {"column": the data column it comes from, "bins"/"labels" when binned}."""
    out = {}
    for attribute in descriptor.get("sensitive_attributes", []):
        derived = attribute.get("derived") or {}
        out[attribute["name"]] = {
            "column": attribute.get("column") or derived.get("from"),
            "bins": derived.get("bins"),
            "labels": derived.get("labels"),
        }
    return out


def _shown(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def _candidates(series: pd.Series, source: dict | None, limit: int) -> tuple[list[str], list[int], np.ndarray]:
    """(labels, rows, applicable) of the counterfactual values of one input over the sample."""
    if source and source.get("bins") and not proxies.is_categorical(series):
        values = series.to_numpy(dtype=np.float64)
        edges = np.asarray(source["bins"], dtype=np.float64)
        band = np.searchsorted(edges, values, side="right") - 1
        band = np.where(np.isnan(values), -1, band)
        labels, rows, own = [], [], []
        for b in np.unique(band[band >= 0]):
            members = np.sort(values[band == b])
            representative = members[(len(members) - 1) // 2]
            rows.append(int(np.flatnonzero(values == representative)[0]))
            label = source["labels"][b] if b < len(source["labels"]) else str(b)
            labels.append(f"{_shown(representative)} ({label})")
            own.append(b)
        return labels, rows, band[None, :] != np.asarray(own)[:, None]
    if proxies.is_categorical(series):
        text = series.astype(str).to_numpy(dtype=object)
        counts = pd.Series(text[text != ""]).value_counts()
        chosen = sorted(counts.index, key=lambda v: (-counts[v], v))[:limit]
        rows = [int(np.flatnonzero(text == v)[0]) for v in chosen]
        return [str(v) for v in chosen], rows, text[None, :] != np.asarray(chosen, dtype=object)[:, None]
    values = series.to_numpy(dtype=np.float64)
    observed = values[~np.isnan(values)]
    distinct = np.unique(observed)
    if len(distinct) > limit:  # observed values at evenly spaced quantiles of the sample
        distinct = np.unique(np.quantile(observed, (np.arange(limit) + 0.5) / limit, method="lower"))
    rows = [int(np.flatnonzero(values == v)[0]) for v in distinct]
    return [_shown(v) for v in distinct], rows, values[None, :] != distinct[:, None]


def _flip_plan(frame: pd.DataFrame, sources: dict[str, dict], declarations: Declarations, limit: int) -> list[_Flip]:
    by_loose = {loose(a): a for a in sources}
    plan = []
    for column in frame.columns:
        reasons: list[str] = []
        attributes = [a for a, s in sources.items() if s["column"] == column]
        if attributes:
            reasons.append("sensitive_attribute")
        if declarations.declares_sensitive(column):
            reasons.append("declared_sensitive")
            attributes += [by_loose[loose(column)]] if loose(column) in by_loose else []
        declared = sorted(declarations.declared_proxies(column))
        if declared:
            reasons.append("declared_proxy")
            attributes += [by_loose.get(a, a) for a in declared]
        if not reasons:
            continue
        binned = next((sources[a] for a in attributes if a in sources and sources[a]["column"] == column), None)
        labels, rows, applicable = _candidates(frame[column], binned, limit)
        if len(labels) < 2:
            continue  # one value: there is nothing to change it to
        plan.append(
            _Flip(column, tuple(reasons), tuple(dict.fromkeys(attributes)), tuple(labels), tuple(rows), applicable)
        )
    return plan


# --------------------------------------------------------------------------------------------- the batch


def _batch(frame: pd.DataFrame, orders: np.ndarray, plan: list[_Flip]) -> pd.DataFrame:
    """Baseline, then every input shuffled ``n_repeats`` times, then every flip: one frame, block after block."""
    n = len(frame)
    columns = list(frame.columns)
    repeats = orders.shape[0]
    blocks = 1 + len(columns) * repeats + sum(len(f.rows) for f in plan)
    out = {}
    flip_start = 1 + len(columns) * repeats
    for j, column in enumerate(columns):
        index = np.tile(np.arange(n, dtype=np.intp), blocks)
        start = (1 + j * repeats) * n
        index[start : start + repeats * n] = orders.reshape(-1)
        block = flip_start
        for flip in plan:
            for row in flip.rows:
                if flip.column == column:
                    index[block * n : (block + 1) * n] = row
                block += 1
        series = frame[column]
        if proxies.is_categorical(series):
            # Text as a categorical: the batch holds small codes, and the runner casts each category once.
            codes, categories = pd.factorize(series.astype(str))
            out[column] = pd.Categorical.from_codes(codes[index], categories=categories)
        else:
            out[column] = series.to_numpy()[index]
    return pd.DataFrame(out, copy=False)


# --------------------------------------------------------------------------------------------- figures


def _interval_pairs(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.stack([lo, hi], axis=-1)


def _pair(values: np.ndarray | None, index: tuple = ()) -> list[float] | None:
    if values is None:
        return None
    lo, hi = float(values[index][0]), float(values[index][1])
    if np.isnan(lo) or np.isnan(hi):
        return None
    return [lo, hi]


def _draw_means(
    rng: np.random.Generator, cells: np.ndarray, worth: np.ndarray, replicates: int, level: float
) -> np.ndarray:
    """Percentile intervals ``[..., 2]`` of the mean ``worth`` of rows resampled as multinomials over ``cells``
    ``[..., K]`` (each leading index drawn with its own n)."""
    n = cells.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n[..., None] > 0, cells / np.maximum(n[..., None], 1), 0.0)
    p[..., 0] = np.where(n > 0, p[..., 0], 1.0)
    p = p / p.sum(axis=-1, keepdims=True)
    parts = []
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        draws = rng.multinomial(n, p, size=(size, *n.shape))
        with np.errstate(divide="ignore", invalid="ignore"):
            parts.append(np.where(n > 0, (draws @ worth) / np.maximum(n, 1), np.nan))
    lo, hi = _percentile_interval(np.concatenate(parts), level)
    return _interval_pairs(lo, hi)


def _group_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, codes = np.unique(labels, return_inverse=True)
    return values, codes.reshape(-1)


def _importance(
    correct_base: np.ndarray,
    correct: np.ndarray,
    flipped: np.ndarray,
    groups: Mapping[str, np.ndarray],
    columns: list[str],
    *,
    min_group_size: int,
    replicates: int,
    level: float,
    rng: np.random.Generator,
) -> dict:
    """The report's ``importance`` section from the correctness of the baseline ``[n]`` and of the shuffled copies
    ``[F, R, n]``, and whether each shuffled decision differs from the baseline ``[F, R, n]``."""
    n_inputs, repeats, n = correct.shape
    baseline_accuracy = np.mean(correct_base)
    accuracy = np.mean(correct, axis=2)  # [F, R], as accuracy_score on each shuffled copy
    importances = baseline_accuracy - accuracy
    mean, std = np.mean(importances, axis=1), np.std(importances, axis=1)
    flip_share = flipped.mean(axis=(1, 2))
    # Each row's mean over the repeats, as an integer cell: importance R + sum(base - shuffled) in [0, 2R],
    # flip share sum(flipped) in [0, R].
    d_code = repeats + repeats * correct_base[None, :].astype(np.int64) - correct.sum(axis=1)  # [F, n]
    f_code = flipped.sum(axis=1)  # [F, n]
    d_worth = (np.arange(2 * repeats + 1) - repeats) / repeats
    f_worth = np.arange(repeats + 1) / repeats

    def cells(codes: np.ndarray, k: int, group: np.ndarray | None, count: int) -> np.ndarray:
        offset = group[None, :] * k if group is not None else 0
        flat = (np.arange(n_inputs)[:, None] * count * k + offset + codes).reshape(-1)
        return np.bincount(flat, minlength=n_inputs * count * k).reshape(n_inputs, count, k)

    d_ci = f_ci = None
    if replicates > 0:
        d_ci = _draw_means(rng, cells(d_code, 2 * repeats + 1, None, 1)[:, 0], d_worth, replicates, level)
        f_ci = _draw_means(rng, cells(f_code, repeats + 1, None, 1)[:, 0], f_worth, replicates, level)
    order = sorted(range(n_inputs), key=lambda j: -mean[j])
    overall = [
        {
            "input": columns[j],
            "importance": float(mean[j]),
            "importance_std": float(std[j]),
            "interval": _pair(d_ci, (j,)),
            "flip_share": float(flip_share[j]),
            "flip_share_interval": _pair(f_ci, (j,)),
        }
        for j in order
    ]
    by_attribute = {}
    for attribute, labels in groups.items():
        values, codes = _group_codes(labels)
        onehot = np.zeros((n, len(values)))
        onehot[np.arange(n), codes] = 1.0
        sizes = onehot.sum(axis=0)
        base_g = (correct_base @ onehot) / sizes  # [V]
        acc_g = (correct @ onehot) / sizes  # [F, R, V]
        imp_g = np.mean(base_g - acc_g, axis=1)  # [F, V]
        flip_g = (flipped @ onehot).sum(axis=1) / (sizes * repeats)  # [F, V]
        gd = gf = None
        if replicates > 0:
            gd = _draw_means(rng, cells(d_code, 2 * repeats + 1, codes, len(values)), d_worth, replicates, level)
            gf = _draw_means(rng, cells(f_code, repeats + 1, codes, len(values)), f_worth, replicates, level)
        rows = []
        for v, value in enumerate(values):
            rows.append(
                {
                    "group": {attribute: str(value)},
                    "n": int(sizes[v]),
                    "insufficient_data": bool(sizes[v] < min_group_size),
                    "baseline_accuracy": float(base_g[v]),
                    "inputs": [
                        {
                            "input": columns[j],
                            "importance": float(imp_g[j, v]),
                            "interval": _pair(gd, (j, v)),
                            "flip_share": float(flip_g[j, v]),
                            "flip_share_interval": _pair(gf, (j, v)),
                        }
                        for j in order
                    ],
                }
            )
        by_attribute[attribute] = rows
    return {
        "scoring": "accuracy",
        "method": IMPORTANCE_METHOD,
        "interval_method": INTERVAL_METHOD,
        "baseline_accuracy": float(baseline_accuracy),
        "overall": overall,
        "by_attribute": by_attribute,
    }


def _flip_test(
    flip: _Flip,
    base: np.ndarray,
    flipped_labels: np.ndarray,
    groups: Mapping[str, np.ndarray],
    declarations: Declarations,
    *,
    min_group_size: int,
    replicates: int,
    level: float,
    rng: np.random.Generator,
) -> dict:
    """One flip test from the baseline decisions ``[n]`` and those of the flipped copies ``[values, n]``."""
    changed = (flipped_labels != base[None, :]) & flip.applicable
    counted = flip.applicable.any(axis=0)  # rows that have another value at all
    any_change = changed.any(axis=0)
    total = int(counted.sum())
    by_value = [
        {
            "value": label,
            "n": int(flip.applicable[k].sum()),
            "flip_share": float(changed[k].sum() / flip.applicable[k].sum()) if flip.applicable[k].any() else None,
        }
        for k, label in enumerate(flip.labels)
    ]
    share = float(any_change[counted].mean()) if total else None
    worth = np.array([0.0, 1.0])
    ci = None
    if replicates > 0 and total:
        cell = np.bincount(any_change[counted].astype(np.intp), minlength=2)[None, :]
        ci = _draw_means(rng, cell, worth, replicates, level)
    by_attribute = {}
    for attribute, labels in groups.items():
        values, codes = _group_codes(labels[counted])
        flips = any_change[counted].astype(np.intp)
        table = np.bincount(codes * 2 + flips, minlength=2 * len(values)).reshape(len(values), 2)
        gci = _draw_means(rng, table, worth, replicates, level) if replicates > 0 and total else None
        by_attribute[attribute] = [
            {
                "group": {attribute: str(value)},
                "n": int(table[v].sum()),
                "insufficient_data": bool(table[v].sum() < min_group_size),
                "flip_share": float(table[v, 1] / table[v].sum()),
                "interval": _pair(gci, (v,)),
            }
            for v, value in enumerate(values)
        ]
    return {
        "input": flip.column,
        "reasons": list(flip.reasons),
        "attributes": list(flip.attributes),
        "declared_sensitive": declarations.declares_sensitive(flip.column),
        "n": total,
        "flip_share": share,
        "interval": _pair(ci, (0,)) if ci is not None else None,
        "by_value": by_value,
        "by_attribute": by_attribute,
    }


def _summary(importance: dict, proxy_rows: list[dict], tests: list[dict], settings: Settings, known: bool) -> dict:
    flagged = [r for r in proxy_rows if r["flagged"]]
    undeclared = [r for r in flagged if r["declared"] is False]
    sensitive = [t for t in tests if {"sensitive_attribute", "declared_sensitive"} & set(t["reasons"])]
    undeclared_sensitive = [
        t for t in tests if "sensitive_attribute" in t["reasons"] and t["declared_sensitive"] is False
    ]
    shares = [t["flip_share"] for t in tests if t["flip_share"] is not None]
    return {
        "top_inputs": [r["input"] for r in importance["overall"] if r["importance"] > 0][: settings.top_inputs],
        "flagged_proxies": len(flagged),
        "undeclared_proxies": len(undeclared) if known else None,
        "sensitive_inputs": len(sensitive),
        "undeclared_sensitive_inputs": len(undeclared_sensitive) if known else None,
        "max_flip_share": max(shares) if shares else None,
        "inputs": {
            "flagged_proxies": sorted({r["input"] for r in flagged}),
            "undeclared_proxies": sorted({r["input"] for r in undeclared}),
            "sensitive_inputs": [t["input"] for t in sensitive],
            "undeclared_sensitive_inputs": [t["input"] for t in undeclared_sensitive],
        },
    }


# --------------------------------------------------------------------------------------------- the step


def explain(
    *,
    model_path: str | os.PathLike,
    data: ReferenceData,
    columns: list[str],
    attributes: list[str],
    declarations: Declarations,
    settings: Settings,
    min_group_size: int,
    replicates: int,
    level: float,
    seed: int,
    input_order: list[str] | None = None,
    limits: runner.Limits = runner.Limits(),  # noqa: B008 - frozen dataclass
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The report's ``explainability`` section for the model at ``model_path`` fed the data ``columns``.

    Raises runner.ModelRunError when the model fails on the batch (as the audit's inference would).
    """
    sources = _sources(data.descriptor)
    repeats = settings.n_repeats
    # Bound the batch: baseline + every input shuffled n_repeats times + at most flip_max_values flips an input.
    flip_inputs = sum(
        1
        for c in columns
        if any(s["column"] == c for s in sources.values())
        or declarations.declares_sensitive(c)
        or declarations.declared_proxies(c)
    )
    blocks = 1 + len(columns) * repeats + flip_inputs * max(settings.flip_max_values, 4)
    size = max(1, min(settings.sample_rows, settings.max_batch_rows // blocks))
    sample = sample_indices(data.rows, size, seed)
    n = len(sample)
    frame = data.features.iloc[sample][columns].reset_index(drop=True)
    y = np.asarray(data.y_true)[sample]
    groups = {a: np.asarray(data.sensitive[a])[sample] for a in attributes}
    plan = _flip_plan(frame, sources, declarations, settings.flip_max_values)
    orders = permutations(n, repeats, seed)

    batch = _batch(frame, orders, plan)
    predicted = runner.predict(
        model_path,
        batch,
        favourable_label=data.favourable_value,
        input_order=input_order,
        limits=limits,
        progress=progress,
    )
    labels = np.asarray(predicted.label).reshape(-1, n)
    del batch, predicted
    base = labels[0]
    shuffled = labels[1 : 1 + len(columns) * repeats].reshape(len(columns), repeats, n)
    _sample_stream, importance_stream, flip_stream = (np.random.default_rng(s) for s in _streams(seed, 3))
    importance = _importance(
        base == y,
        shuffled == y[None, None, :],
        shuffled != base[None, None, :],
        groups,
        columns,
        min_group_size=min_group_size,
        replicates=replicates,
        level=level,
        rng=importance_stream,
    )
    tests, block = [], 1 + len(columns) * repeats
    for flip in plan:
        tests.append(
            _flip_test(
                flip,
                base,
                labels[block : block + len(flip.rows)],
                groups,
                declarations,
                min_group_size=min_group_size,
                replicates=replicates,
                level=level,
                rng=flip_stream,
            )
        )
        block += len(flip.rows)
    proxy_table = proxies.table(
        frame,
        groups,
        sources={a: s["column"] for a, s in sources.items()},
        declarations=declarations,
        threshold=settings.proxy_auc_threshold,
        folds=settings.proxy_folds,
        seed=seed,
        min_group_size=min_group_size,
    )
    found = [findings.top_inputs(importance["overall"], settings.top_inputs)]
    found += [findings.proxy(r) for r in proxy_table["rows"] if r["flagged"]]
    found += [findings.direct_use(t) for t in tests]
    return {
        "sample": {"rows": n, "of": int(data.rows), "seed": int(seed), "method": SAMPLE_METHOD},
        "settings": settings.to_json() | {"replicates": int(replicates), "level": float(level)},
        "inputs": list(columns),
        "technical_document": declarations.known,
        "importance": importance,
        "proxies": proxy_table,
        "flip_tests": tests,
        "flip_method": FLIP_METHOD,
        "findings": found,
        "summary": _summary(importance, proxy_table["rows"], tests, settings, declarations.known),
    }
