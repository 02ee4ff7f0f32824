"""Risk tier of a filed algorithm, from its impact self-assessment (影响自评估).

Modelled on Canada's Algorithmic Impact Assessment (Directive on Automated Decision-Making): the answers to the
risk questions add up to a raw score; if the answers to the mitigation questions reach ``mitigation_bar`` (80 %)
of the mitigation points available, the raw score is reduced by ``mitigation_reduction`` (15 %). The share of the
maximum raw score that remains gives the tier through ``tier_cuts``: up to 25 % tier I, up to 50 % tier II, up
to 75 % tier III, above that tier IV.

Pure Python: no Flask, no database. The questionnaire is ``impact_questionnaire.json`` next to this file.
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["RiskAssessment", "TIERS", "assess", "questionnaire"]

TIERS = ("I", "II", "III", "IV")

_PATH = pathlib.Path(__file__).resolve().parent / "impact_questionnaire.json"


@dataclass(frozen=True)
class RiskAssessment:
    """The outcome of :func:`assess`. ``breakdown`` has one entry per question, in questionnaire order."""

    tier: str
    raw_score: int
    max_raw_score: int
    mitigation_score: int
    max_mitigation_score: int
    mitigation_applied: bool
    score: float
    percent: float
    questionnaire_version: str
    breakdown: tuple[dict, ...]

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict of every field (``breakdown`` as a list of dicts)."""
        return {
            "tier": self.tier,
            "raw_score": self.raw_score,
            "max_raw_score": self.max_raw_score,
            "mitigation_score": self.mitigation_score,
            "max_mitigation_score": self.max_mitigation_score,
            "mitigation_applied": self.mitigation_applied,
            "score": self.score,
            "percent": self.percent,
            "questionnaire_version": self.questionnaire_version,
            "breakdown": [dict(b) for b in self.breakdown],
        }


@functools.cache
def _questionnaire() -> dict:
    with _PATH.open(encoding="utf-8") as f:
        return json.load(f)


def questionnaire() -> dict:
    """Return the impact questionnaire (``impact_questionnaire.json``) as a dict.

    The file is read once; the dict returned is the cached one, so do not modify it.
    """
    return _questionnaire()


def _fraction(value: float | int | str) -> Fraction:
    # Fraction(str(0.8)) is exactly 4/5, so boundaries such as "exactly 80 %" are decided exactly.
    return Fraction(str(value))


def assess(answers: Mapping[str, str]) -> RiskAssessment:
    """Compute the risk tier from ``answers``, a mapping of question id to option id, one per question.

    Raises ValueError, naming the question, if a question id is unknown, an option id is not one of its
    question's options, or a question is not answered; raises ValueError if ``answers`` is not a mapping.
    """
    if not isinstance(answers, Mapping):
        raise ValueError(f"answers must be a mapping of question id to option id, not {type(answers).__name__}")
    q = questionnaire()
    questions = q["questions"]
    by_id = {question["id"]: question for question in questions}
    unknown = sorted(str(k) for k in answers if k not in by_id)
    if unknown:
        raise ValueError(f"unknown question {unknown[0]!r} (questionnaire version {q['version']})")
    missing = [question["id"] for question in questions if question["id"] not in answers]
    if missing:
        raise ValueError(
            f"question {missing[0]!r} is not answered"
            + (f" (nor {', '.join(repr(m) for m in missing[1:])})" if len(missing) > 1 else "")
        )

    raw = max_raw = mitigation = max_mitigation = 0
    breakdown = []
    for question in questions:
        qid = question["id"]
        answer = answers[qid]
        points_by_option = {o["id"]: int(o["points"]) for o in question["options"]}
        if not isinstance(answer, str) or answer not in points_by_option:
            raise ValueError(
                f"question {qid!r}: unknown answer {answer!r}; expected one of {', '.join(points_by_option)}"
            )
        points, max_points = points_by_option[answer], max(points_by_option.values())
        if question["kind"] == "risk":
            raw, max_raw = raw + points, max_raw + max_points
        else:
            mitigation, max_mitigation = mitigation + points, max_mitigation + max_points
        breakdown.append(
            {"question_id": qid, "kind": question["kind"], "answer": answer, "points": points, "max_points": max_points}
        )

    applied = max_mitigation > 0 and mitigation >= _fraction(q["mitigation_bar"]) * max_mitigation
    score = Fraction(raw) * (1 - _fraction(q["mitigation_reduction"])) if applied else Fraction(raw)
    percent = score / max_raw if max_raw else Fraction(0)
    cuts = [_fraction(c) for c in q["tier_cuts"]]
    tier = TIERS[sum(1 for cut in cuts if percent > cut)]
    return RiskAssessment(
        tier=tier,
        raw_score=raw,
        max_raw_score=max_raw,
        mitigation_score=mitigation,
        max_mitigation_score=max_mitigation,
        mitigation_applied=applied,
        score=float(score),
        percent=float(percent),
        questionnaire_version=str(q["version"]),
        breakdown=tuple(breakdown),
    )
