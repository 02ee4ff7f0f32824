"""Audit policies: which criteria a model must meet in each risk tier, and how each criterion is judged.

A criterion names a figure (``overall.accuracy``, ``disparities.demographic_parity_ratio``, ``min_group.accuracy``,
``explainability.undeclared_proxies`` — any count or share of the explainability summary, see
:mod:`audits.explain`) and a threshold. It passes or fails on the measured point value; it is
``insufficient_data`` when the figure could not be measured on enough data (an undefined figure, fewer than two
groups large enough for a disparity, or no group large enough; for an explainability figure: the step was not run,
or there was no technical document to compare with). The verdict meets the policy when no criterion fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from schemas import validation

TIERS = ("I", "II", "III", "IV")
PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_data"
MEETS, DOES_NOT_MEET = "meets", "does_not_meet"


class PolicyError(ValueError):
    """A policy file that cannot be used: unreadable, not JSON, or not valid against the audit-policy schema."""


@dataclass(frozen=True)
class Policy:
    document: dict

    @property
    def version(self) -> str:
        return self.document["version"]

    def tier(self, tier: str) -> dict:
        if tier not in TIERS:
            raise PolicyError(f"Unknown risk tier {tier!r}; use one of {', '.join(TIERS)}.")
        return self.document["tiers"][tier]

    @property
    def replicates(self) -> int:
        return int(self.document.get("bootstrap", {}).get("replicates", 1000))

    @property
    def level(self) -> float:
        return float(self.document.get("bootstrap", {}).get("level", 0.95))

    @property
    def explainability(self) -> dict:
        """The ``explainability`` block (sample size, repeats, proxy threshold...); empty: the defaults."""
        return dict(self.document.get("explainability", {}))


def from_document(document: dict) -> Policy:
    """A policy from its JSON document. Raises PolicyError listing every schema error with its pointer."""
    errors = validation.validate("audit-policy", document)
    if errors:
        raise PolicyError(
            "The audit policy is not valid: " + "; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors)
        )
    return Policy(document)


def load(path: str | Path | None = None) -> Policy:
    """The policy in ``path``, or the shipped default policy (audits/policies/default.json)."""
    try:
        if path is None:
            text = (resources.files("audits") / "policies" / "default.json").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise PolicyError(f"Cannot read the audit policy: {exc}") from None
    return from_document(document)


def _measured(figure: str, figures: dict, intervals: dict | None) -> tuple[float | None, list | None, dict]:
    """(value, interval, details) for a criterion's figure; value None means it could not be measured."""
    scope, name = figure.split(".", 1)
    if scope == "overall":
        value = figures["overall"].get(name)
        interval = (intervals or {}).get("overall", {}).get(name)
        return value, interval, {}
    if scope == "disparities":
        entry = figures["disparities"].get(name) or {}
        value = entry.get("value")
        interval = (intervals or {}).get("disparities", {}).get(name)
        details = (
            {"groups": entry.get("groups", [])}
            if value is not None
            else {"note": "fewer than two groups have enough data"}
        )
        return value, interval, details
    if scope == "explainability":
        section = figures.get("explainability")
        if not section:
            return None, None, {"note": "the explainability step was not run"}
        value = section["summary"].get(name)
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            return None, None, {"note": f"{name} is not a number"}
        if value is None:
            note = "no technical document to compare with" if not section.get("technical_document") else "not measured"
            return None, None, {"note": note}
        return value, None, {"inputs": section["summary"].get("inputs", {}).get(name, [])}
    # min_group: the lowest value over the groups with enough data
    eligible = [g for g in figures["by_group"] if not g.get("insufficient_data") and g.get(name) is not None]
    if not eligible:
        return None, None, {"note": "no group has enough data"}
    lowest = min(eligible, key=lambda g: g[name])
    interval = None
    for row in (intervals or {}).get("by_group", []):
        if row.get("group") == lowest["group"]:
            interval = row.get(name)
    return lowest[name], interval, {"groups": [lowest["group"]]}


def judge(policy: Policy, tier: str, figures: dict, intervals: dict | None) -> tuple[list[dict], str]:
    """Each criterion of ``tier`` judged on ``figures``; returns (criteria, verdict)."""
    criteria = []
    for criterion in policy.tier(tier)["criteria"]:
        value, interval, details = _measured(criterion["figure"], figures, intervals)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            status = INSUFFICIENT
            value = None
        elif criterion["op"] == ">=":
            status = PASS if value >= criterion["threshold"] else FAIL
        else:
            status = PASS if value <= criterion["threshold"] else FAIL
        row = {
            "id": criterion["id"],
            "figure": criterion["figure"],
            "op": criterion["op"],
            "threshold": criterion["threshold"],
            "value": value,
            "interval": interval,
            "status": status,
        }
        for key in ("title_zh", "title_en", "source"):
            if key in criterion:
                row[key] = criterion[key]
        row.update(details)
        criteria.append(row)
    verdict = DOES_NOT_MEET if any(c["status"] == FAIL for c in criteria) else MEETS
    return criteria, verdict
