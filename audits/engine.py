"""One audit, start to finish: check the model, run it on the reference data, measure, explain, judge, report.

Pure: data, a model file and a policy in; a report (a dict valid against schemas/audit-report.json) out. The same
inputs give the same report, apart from the ``provenance.timings`` block.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable
from pathlib import Path

from audits import bootstrap, claims, counts, declarations, explain, figures, runner
from audits import policy as policies
from audits.model_check import ModelRejected, check_model_file
from audits.reference import ReferenceData
from schemas import validation

ENGINE_VERSION = "1"
LIBRARIES = ("numpy", "pandas", "scikit-learn", "fairlearn", "onnx", "onnxruntime")


class AuditError(ValueError):
    """An audit that cannot be made: a refused model, unknown attributes, a report that breaks its schema."""


def _versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def run_audit(
    *,
    model_path: str | Path,
    data: ReferenceData,
    policy: policies.Policy,
    tier: str,
    sensitive: list[str] | None = None,
    claimed: dict | None = None,
    replicates: int | None = None,
    seed: int = 0,
    input_order: list[str] | None = None,
    limits: runner.Limits = runner.Limits(),
    filing_id: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    technical_document: dict | None = None,
    explainability: bool | None = None,
) -> dict:
    """Audit the model at ``model_path`` on ``data`` under ``policy`` for risk ``tier``; returns the report.

    ``technical_document`` (the filing's) says which inputs are declared sensitive attributes or likely proxies;
    without it nothing can be called undeclared. ``explainability`` runs (True) or skips (False) the
    explainability step (:mod:`audits.explain`); None: as the policy says (on unless it switches it off).
    ``progress(stage, done, total)`` is called with the stages ``"inference"`` and ``"explainability"``.

    Raises AuditError (refused model, unknown sensitive attributes, invalid claimed test report),
    runner.ModelRunError (the model failed, ran too long or too large) or policies.PolicyError.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    rules = policy.tier(tier)
    attributes = list(sensitive or data.descriptor.get("default_sensitive") or list(data.sensitive))
    unknown = [a for a in attributes if a not in data.sensitive]
    if unknown:
        raise AuditError(
            f"Unknown sensitive attribute(s) {', '.join(unknown)}; this data set has {', '.join(data.sensitive)}."
        )
    if claimed is not None:
        errors = validation.validate("test-report", claimed)
        if errors:
            raise AuditError(
                "The claimed test report is not valid: " + "; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors)
            )
    try:
        model = check_model_file(model_path, max_bytes=limits.max_model_bytes)
    except ModelRejected as exc:
        raise AuditError(f"The model is refused: {exc.message}") from exc
    timings["check_model"] = time.perf_counter() - started

    t0 = time.perf_counter()
    predictions = runner.predict(
        model_path,
        data.features,
        favourable_label=data.favourable_value,
        input_order=input_order,
        limits=limits,
        progress=(lambda done, total: progress("inference", done, total)) if progress else None,
    )
    timings["inference"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    groups = {a: data.sensitive[a] for a in attributes}
    tally = counts.tally(data.y_true, predictions.label, groups, attributes, score=predictions.score)
    min_group_size = rules["min_group_size"]
    measured = figures.compute(
        tally, y_true=data.y_true, score=predictions.score, sensitive=groups, min_group_size=min_group_size
    )
    timings["figures"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    replicate_count = policy.replicates if replicates is None else replicates
    ranges = (
        bootstrap.intervals(
            tally, replicates=replicate_count, seed=seed, level=policy.level, min_group_size=min_group_size
        )
        if replicate_count > 0
        else None
    )
    timings["bootstrap"] = time.perf_counter() - t0

    settings = explain.Settings.from_policy(policy.explainability)
    explained = None
    if settings.enabled if explainability is None else explainability:
        t0 = time.perf_counter()
        fed = runner.fed_columns(model, [str(c) for c in data.features.columns], input_order)
        explained = explain.explain(
            model_path=model_path,
            data=data,
            columns=fed,
            attributes=attributes,
            declarations=declarations.from_technical_document(technical_document, fed),
            settings=settings,
            min_group_size=min_group_size,
            replicates=replicate_count,
            level=policy.level,
            seed=seed,
            input_order=input_order,
            limits=limits,
            progress=(lambda done, total: progress("explainability", done, total)) if progress else None,
        )
        timings["explainability"] = time.perf_counter() - t0

    criteria, verdict = policies.judge(policy, tier, measured | {"explainability": explained}, ranges)
    measured.pop("min_group_size", None)  # kept once, under "policy"
    measured.pop("n", None)  # the data set's rows
    report = {
        "schema_version": "1",
        "filing_id": filing_id,
        "model": model.to_json()
        | {"raw_labels": list(predictions.raw_labels), "gives_probabilities": predictions.score is not None},
        "dataset": {
            "name": data.name,
            "version": data.version,
            "sha256": data.sha256,
            "rows": data.rows,
            "favourable_value": data.favourable_value,
        },
        "policy": {"version": policy.version, "tier": tier, "min_group_size": min_group_size},
        "sensitive_attributes": measured.pop("attributes"),
        **measured,
        "intervals": ranges,
        "criteria": criteria,
        "verdict": verdict,
        "claims": claims.compare(claimed, measured, ranges, tolerance=rules["claim_tolerance"]) if claimed else None,
        "explainability": explained,
        "provenance": {
            "engine_version": ENGINE_VERSION,
            "libraries": _versions(),
            "seed": seed,
            "bootstrap_replicates": replicate_count,
            "timings": timings | {"total": time.perf_counter() - started},
        },
    }
    errors = validation.validate("audit-report", report)
    if errors:
        raise AuditError(
            "The audit report breaks its schema: " + "; ".join(f"{e.pointer}: {e.message}" for e in errors[:5])
        )
    return report
