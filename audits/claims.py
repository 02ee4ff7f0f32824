"""Claimed vs measured: each figure a city's test report claims, beside what the province measured.

A difference is flagged when it is larger than the policy's tolerance AND the claimed value lies outside the
measured figure's confidence interval (so sampling noise alone does not explain it). Groups are matched by
attribute names and values (case-insensitive); a claimed group the reference data does not have is listed as not
comparable rather than guessed at.
"""

from __future__ import annotations

import math

COMPARED = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "selection_rate",
    "tpr",
    "fpr",
    "fnr",
    "f1",
    "roc_auc",
    "brier",
)


def _key(group: dict) -> tuple:
    return tuple(sorted((str(k).casefold(), str(v).casefold()) for k, v in group.items()))


def _measured_groups(figures: dict, intervals: dict | None) -> dict[tuple, tuple[dict, dict]]:
    """Every measured group (intersections and single attributes) by normalised key → (figures, intervals)."""
    found: dict[tuple, tuple[dict, dict]] = {}
    interval_rows = {}
    for row in (intervals or {}).get("by_group", []):
        interval_rows[_key(row["group"])] = row
    for row in (
        (intervals or {}).get("by_attribute", {}).values()
        if isinstance((intervals or {}).get("by_attribute"), dict)
        else []
    ):
        for item in row:
            interval_rows[_key(item["group"])] = item
    for row in figures.get("by_group", []):
        found[_key(row["group"])] = (row, interval_rows.get(_key(row["group"]), {}))
    for rows in figures.get("by_attribute", {}).values():
        for row in rows:
            found.setdefault(_key(row["group"]), (row, interval_rows.get(_key(row["group"]), {})))
    return found


def _compare(scope, figure, claimed, measured, interval, tolerance) -> dict:
    row = {"scope": scope, "figure": figure, "claimed": claimed, "measured": measured, "interval": interval}
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        row.update(difference=None, flagged=False, status="not_measured")
        return row
    difference = claimed - measured
    outside = interval is None or not (interval[0] <= claimed <= interval[1])
    flagged = abs(difference) > tolerance and outside
    row.update(difference=difference, flagged=flagged, status="differs" if flagged else "consistent")
    return row


def compare(test_report: dict, figures: dict, intervals: dict | None, *, tolerance: float) -> dict:
    """The comparison table for a test report (schemas/test-report.json) against measured ``figures``."""
    rows = []
    overall_intervals = (intervals or {}).get("overall", {})
    for figure in COMPARED:
        if figure in test_report.get("overall", {}):
            rows.append(
                _compare(
                    {"overall": True},
                    figure,
                    test_report["overall"][figure],
                    figures["overall"].get(figure),
                    overall_intervals.get(figure),
                    tolerance,
                )
            )
    measured = _measured_groups(figures, intervals)
    not_comparable = []
    for claimed_group in test_report.get("groups", []):
        match = measured.get(_key(claimed_group["group"]))
        if match is None:
            not_comparable.append(claimed_group["group"])
            continue
        measured_row, interval_row = match
        for figure in COMPARED:
            if figure in claimed_group["figures"]:
                rows.append(
                    _compare(
                        {"group": measured_row["group"]},
                        figure,
                        claimed_group["figures"][figure],
                        measured_row.get(figure),
                        interval_row.get(figure),
                        tolerance,
                    )
                )
    return {
        "tolerance": tolerance,
        "rows": rows,
        "flagged": sum(1 for r in rows if r["flagged"]),
        "not_comparable_groups": not_comparable,
    }
