"""Pages for audit jobs: the panel on a filing's page, starting an audit, its progress and its report, comparison.

Views parse, call the service and render; who may do what is declared with ``@allow`` and checked by the service.
The report page is server-rendered only (the CSP forbids scripts): a queued or running audit refreshes itself.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest as HTTPBadRequest

from audits import policy as policies
from registry.access import allow, current_actor
from registry.accounts.models import Role
from registry.audit_jobs import attention
from registry.audit_jobs import service as audits
from registry.audit_jobs.models import JobState
from registry.audit_jobs.worker import queue_for
from registry.db import utcnow
from registry.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from registry.filings import service as filings
from registry.i18n import is_chinese
from registry.request_db import db

bp = Blueprint("audit_jobs", __name__)

FIGURES = ("selection_rate", "accuracy", "balanced_accuracy", "precision", "recall", "fpr", "fnr", "f1", "roc_auc")


def figure_names() -> dict[str, str]:
    return {
        "count": _("Cases"),
        "base_rate": _("Base rate"),
        "selection_rate": _("Selection rate"),
        "accuracy": _("Accuracy"),
        "balanced_accuracy": _("Balanced accuracy"),
        "precision": _("Precision"),
        "recall": _("Recall"),
        "tpr": _("True positive rate"),
        "fpr": _("False positive rate"),
        "fnr": _("False negative rate"),
        "f1": "F1",
        "roc_auc": "ROC AUC",
        "brier": _("Brier score"),
        "demographic_parity_difference": _("Demographic parity difference"),
        "demographic_parity_ratio": _("Demographic parity ratio (impact ratio)"),
        "equalized_odds_difference": _("Equalized odds difference"),
        "equalized_odds_ratio": _("Equalized odds ratio"),
        "equal_opportunity_difference": _("Equal opportunity difference"),
        "predictive_parity_difference": _("Predictive parity difference"),
    }


def state_names() -> dict[str, str]:
    return {
        JobState.QUEUED: _("Queued"),
        JobState.RUNNING: _("Running"),
        JobState.DONE: _("Done"),
        JobState.FAILED: _("Failed"),
        "pass": _("Pass"),
        "fail": _("Fail"),
        "insufficient_data": _("Insufficient data"),
        "meets": _("Meets the policy"),
        "does_not_meet": _("Does not meet the policy"),
        "differs": _("Differs"),
        "consistent": _("Consistent"),
        "not_measured": _("Not measured"),
    }


def group_text(group: dict | None) -> str:
    if not group:
        return _("Overall")
    return ", ".join(f"{k} = {v}" for k, v in group.items())


def _key(group: dict) -> tuple:
    return tuple(sorted((str(k), str(v)) for k, v in group.items()))


def _panel(filing) -> dict:
    """What the filing page's audit panel shows: the filing's audits and, for reviewers, the start form."""
    actor = current_actor()
    jobs = audits.list_jobs(session=db(), actor=actor, filing_id=filing.id)
    may_start = actor.role == Role.REVIEWER and filing.state in audits.AUDITABLE and filing.model_sha256 is not None
    return {
        "jobs": jobs,
        "may_start": may_start,
        "datasets": audits.reference_datasets(db()) if may_start else [],
        "states": state_names(),
    }


@bp.record_once
def _register(state) -> None:
    state.app.jinja_env.globals["audit_jobs_for"] = _panel


@bp.post("/filings/<int:filing_id>/audits")
@allow("reviewer")
def start(filing_id: int):
    from registry.filings.views import _render_filing  # the filing page, with the error shown in the panel

    actor = current_actor()
    attributes = request.form.getlist("sensitive_attributes") or None
    try:
        job = audits.start_audit(
            session=db(),
            actor=actor,
            filing_id=filing_id,
            dataset=request.form.get("dataset") or "",
            sensitive_attributes=attributes,
        )
    except (Unprocessable, Conflict) as exc:
        db().rollback()
        if isinstance(exc, ValidationFailed):
            text = "; ".join(e.message_zh if is_chinese() else e.message for e in exc.errors)
        elif exc.code == "unknown_dataset":
            text = _("Choose a reference data set.")
        else:
            text = exc.message
        filing = filings.get_filing(session=db(), actor=actor, filing_id=filing_id)
        return _render_filing(filing, status=exc.status, audit_error=text)
    db().commit()
    queue_for(current_app).enqueue(job.id)
    flash(_("The audit is queued."))
    return redirect(url_for("audit_jobs.detail", job_id=job.id), 303)


def _report_context(report: dict) -> dict:
    """The report arranged for reading: group rows with their intervals, chart bars, disparities."""
    intervals = report.get("intervals") or {}
    group_intervals = {_key(r["group"]): r for r in intervals.get("by_group", [])}
    groups = [
        {"row": row, "ci": group_intervals.get(_key(row["group"]), {}), "label": group_text(row["group"])}
        for row in report.get("by_group", [])
    ]
    attribute_groups = []
    for attribute, rows in (report.get("by_attribute") or {}).items():
        ci_rows = {_key(r["group"]): r for r in (intervals.get("by_attribute") or {}).get(attribute, [])}
        for row in rows:
            attribute_groups.append(
                {"row": row, "ci": ci_rows.get(_key(row["group"]), {}), "label": group_text(row["group"])}
            )
    return {
        "report": report,
        "overall_ci": intervals.get("overall") or {},
        "groups": groups,
        "attribute_groups": attribute_groups,
        "chart": _chart(groups),
        "disparity_ci": intervals.get("disparities") or {},
        "explain": explain_context(report.get("explainability")),
    }


CHART_INPUTS = 10  # inputs in the importance chart (the table lists them all)
GROUP_TABLE_INPUTS = 5  # inputs in the per-group importance table


def reason_names() -> dict[str, str]:
    return {
        "sensitive_attribute": _("the column of a sensitive attribute"),
        "declared_sensitive": _("declared a sensitive attribute"),
        "declared_proxy": _("declared a likely proxy"),
    }


def explain_context(section: dict | None) -> dict | None:
    """The explainability section arranged for reading: the chart of the top inputs, per-group tables, proxies."""
    if not section:
        return None
    overall = section["importance"]["overall"]
    group_columns = [
        (attribute, row) for attribute, rows in section["importance"]["by_attribute"].items() for row in rows
    ]
    top = [r["input"] for r in overall[:GROUP_TABLE_INPUTS]]
    by_group = [
        {
            "input": name,
            "cells": [next(i for i in row["inputs"] if i["input"] == name) for _attribute, row in group_columns],
        }
        for name in top
    ]
    return {
        "section": section,
        "chart": _importance_chart(overall[:CHART_INPUTS]),
        "group_columns": [{"label": group_text(row["group"]), "row": row} for _attribute, row in group_columns],
        "by_group": by_group,
        "proxies": sorted(section["proxies"]["rows"], key=lambda r: (not r["flagged"], -(r["auc"] or 0))),
        "reasons": reason_names(),
    }


def _importance_chart(rows: list[dict]) -> dict:
    """Bars of the drop in accuracy per input (percentage points) with their intervals, for a server-rendered SVG.

    Importance can be negative (shuffling helped by chance): the axis is placed at zero within the range shown.
    """
    label_width, bar_width, row_height = 200, 360, 28
    values = [r["importance"] for r in rows] + [x for r in rows for x in (r.get("interval") or [])]
    low, high = min([0.0, *values]), max([0.0, *values])
    span = (high - low) or 1.0

    def x(value: float) -> float:
        return round(label_width + (value - low) / span * bar_width, 1)

    zero = x(0.0)
    bars = []
    for i, r in enumerate(rows):
        end = x(r["importance"])
        interval = r.get("interval")
        bars.append(
            {
                "label": r["input"],
                "y": 10 + i * row_height,
                "value": r["importance"],
                "x": min(zero, end),
                "width": round(abs(end - zero), 1),
                "ci_low": x(interval[0]) if interval else None,
                "ci_high": x(interval[1]) if interval else None,
            }
        )
    height = 44 + len(bars) * row_height
    return {
        "bars": bars,
        "zero": zero,
        "low": low,
        "high": high,
        "label_width": label_width,
        "bar_width": bar_width,
        "row_height": row_height,
        "height": height,
        "width": label_width + bar_width + 90,
    }


def _chart(groups: list[dict]) -> dict:
    """Bars of the selection rate per group with their interval, laid out for a server-rendered SVG."""
    label_width, bar_width, row_height = 220, 360, 28
    bars = []
    for i, g in enumerate(groups):
        rate = g["row"].get("selection_rate")
        ci = g["ci"].get("selection_rate")
        y = 10 + i * row_height
        bars.append(
            {
                "label": g["label"],
                "insufficient": g["row"].get("insufficient_data", False),
                "y": y,
                "value": rate,
                "width": round((rate or 0) * bar_width, 1),
                "ci_low": round(label_width + ci[0] * bar_width, 1) if ci else None,
                "ci_high": round(label_width + ci[1] * bar_width, 1) if ci else None,
            }
        )
    return {
        "bars": bars,
        "label_width": label_width,
        "bar_width": bar_width,
        "row_height": row_height,
        "height": 40 + len(bars) * row_height,
        "width": label_width + bar_width + 80,
    }


def _page_common() -> dict:
    return {"figures": figure_names(), "states": state_names(), "group_text": group_text}


@bp.get("/audits/<int:job_id>")
@allow("city", "reviewer", "admin")
def detail(job_id: int):
    actor = current_actor()
    job = audits.get_job(session=db(), actor=actor, job_id=job_id)
    filing = filings.get_filing(session=db(), actor=actor, filing_id=job.filing_id)
    context = {"job": job, "filing": filing, **_page_common()}
    if job.state == JobState.DONE:
        content = current_app.extensions["registry"].content
        context.update(_report_context(audits.report(session=db(), content=content, actor=actor, job_id=job.id)))
    response = current_app.make_response(render_template("audit_jobs/detail.html", **context))
    if job.state in (JobState.QUEUED, JobState.RUNNING):
        response.headers["Refresh"] = "3"  # the page's <meta http-equiv="refresh"> too: no JavaScript (CSP)
    return response


@bp.get("/audits/compare")
@allow("city", "reviewer", "admin")
def compare():
    actor = current_actor()
    try:
        a, b = int(request.args.get("a", "")), int(request.args.get("b", ""))
    except ValueError:
        raise HTTPBadRequest(_("Choose two audits to compare.")) from None
    jobs = [audits.get_job(session=db(), actor=actor, job_id=i) for i in (a, b)]
    if jobs[0].filing_id != jobs[1].filing_id:
        raise NotFound("Only two audits of the same filing can be compared.", code="not_same_filing")
    content = current_app.extensions["registry"].content
    reports = [
        audits.report(session=db(), content=content, actor=actor, job_id=j.id) if j.state == JobState.DONE else None
        for j in jobs
    ]
    filing = filings.get_filing(session=db(), actor=actor, filing_id=jobs[0].filing_id)
    criteria_ids: list[str] = []
    for r in reports:
        for c in (r or {}).get("criteria", []):
            if c["id"] not in criteria_ids:
                criteria_ids.append(c["id"])
    by_id = [{c["id"]: c for c in (r or {}).get("criteria", [])} for r in reports]
    return render_template(
        "audit_jobs/compare.html",
        filing=filing,
        jobs=jobs,
        reports=reports,
        criteria_ids=criteria_ids,
        criteria_by_id=by_id,
        overall_figures=("count",) + FIGURES + ("brier",),
        **_page_common(),
    )


# --- the periodic re-audits that need a reviewer -------------------------------------------------------------------


@bp.get("/reaudits")
@allow("reviewer", "admin")
def reaudits():
    """Failed re-audits, overdue re-audits (with the day each filing expires) and re-audits falling due soon."""
    items = attention.attention(session=db(), now=utcnow(), policy=policies.load())
    return render_template(
        "audit_jobs/reaudits.html",
        groups={kind: [i for i in items if i.kind == kind] for kind in attention.KINDS},
        due_soon_days=attention.DUE_SOON_DAYS,
        states=state_names(),
    )


@bp.record_once
def _register_next_audit(state) -> None:
    """``next_audit(filing)`` on the filing page: the next re-audit date, the expiry it guards and whether overdue."""
    state.app.jinja_env.globals["next_audit"] = lambda filing: attention.next_audit(
        filing=filing, now=utcnow(), policy=policies.load()
    )
