"""The decision letter's content in one language: what the HTML page and the PDF both say, built once here.

No Flask: the caller hands in ``gettext`` (the request's, so the letter is in the reader's language) and whether
that language is Chinese. The letter names roles, never the reviewers; it exists only for an effective decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from registry.authz import Actor
from registry.cities import service as cities
from registry.cities.models import City
from registry.decision_log import service as decision_log
from registry.decision_log.models import LogEntry
from registry.decisions import service as decisions
from registry.decisions.models import Decision, DecisionState, Outcome
from registry.errors import Conflict
from registry.filings import service as filings
from registry.filings.models import Filing

PROVINCES = {"410000": ("河南省", "Henan Province")}


@dataclass(frozen=True)
class Part:
    """A run of text: in another language than the letter's (``lang``), a date (``datetime``), or a digest (``code``)."""

    text: str
    lang: str | None = None
    datetime: str | None = None
    code: bool = False


@dataclass(frozen=True)
class Fact:
    key: str
    label: str
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts)


@dataclass(frozen=True)
class Section:
    """A heading and its items: a numbered list (``ol``), a list (``ul``) or paragraphs (``p``)."""

    key: str
    heading: str
    kind: str
    items: tuple[tuple[Part, ...], ...]


@dataclass(frozen=True)
class Letter:
    lang: str  # BCP 47 tag of the letter's language
    document_title: str
    issuer: str
    title: str
    filing_number_label: str
    filing_number: str | None
    facts: tuple[Fact, ...]
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Source:
    """What a letter is written from."""

    decision: Decision
    filing: Filing
    city: City | None
    log_entry: LogEntry | None = None  # its entry in the public decision log


def load(*, session: Session, actor: Actor, decision_id: int) -> Source:
    """The decision, its filing and city, if ``actor`` may read the filing and the decision is effective.

    Raises NotFound (unknown, or not the actor's to see) or Conflict (not effective: no letter is issued).
    """
    decision = decisions.get(session=session, actor=actor, decision_id=decision_id)
    if decision.state != DecisionState.EFFECTIVE:
        raise Conflict("A letter is issued only for an effective decision.", code="decision_not_effective")
    filing = filings.get_filing(session=session, actor=actor, filing_id=decision.filing_id)
    return Source(
        decision=decision,
        filing=filing,
        city=cities.get_city(session=session, code=filing.city_code),
        log_entry=decision_log.entry_or_none(session, decision.id),
    )


def _date(value: datetime | None) -> Part:
    if value is None:
        return Part("—")
    return Part(value.strftime("%Y-%m-%d"), datetime=value.isoformat())


def compose(source: Source, *, gettext: Callable[[str], str], chinese: bool) -> Letter:
    """The letter of ``source`` in the language ``gettext`` translates to (Chinese when ``chinese``)."""
    decision, filing, city = source.decision, source.filing, source.city

    def pick(zh: str | None, en: str | None) -> str:
        return (zh or en or "") if chinese else (en or zh or "")

    outcomes = {
        Outcome.APPROVED.value: gettext("Approved"),
        Outcome.APPROVED_WITH_CONDITIONS.value: gettext("Approved with conditions"),
        Outcome.REJECTED.value: gettext("Rejected"),
    }
    province = PROVINCES.get(city.province_code if city else "", (None, None))
    city_name = pick(city.name_zh, city.name_en) if city else ""
    algorithm = [Part(filing.algorithm_name_zh, lang="zh-CN")]
    if filing.algorithm_name_en:
        algorithm += [Part(" / "), Part(filing.algorithm_name_en, lang="en")]
    if filing.algorithm_version:
        algorithm.append(Part(f" {filing.algorithm_version}"))
    facts = (
        Fact("city", gettext("City"), (Part(f"{city_name} ({filing.city_code})".strip()),)),
        Fact("algorithm", gettext("Algorithm"), tuple(algorithm)),
        Fact("tier", gettext("Risk tier"), (Part(decision.tier or gettext("Not assessed yet")),)),
        Fact("outcome", gettext("Outcome"), (Part(outcomes.get(decision.outcome, decision.outcome)),)),
        Fact("proposed", gettext("Proposed on"), (_date(decision.proposed_at),)),
        Fact("effective", gettext("Effective from"), (_date(decision.effective_at),)),
    )
    sections = []
    if decision.conditions:
        sections.append(
            Section("conditions", gettext("Conditions"), "ol", tuple((Part(c),) for c in decision.conditions))
        )
    if decision.reasons:
        sections.append(Section("reasons", gettext("Reasons"), "ol", tuple((Part(r),) for r in decision.reasons)))
    audits = tuple(
        (Part(gettext("Audit report") + " SHA-256 "), Part(h, code=True)) for h in decision.audit_report_sha256 or []
    )
    sections.append(
        Section(
            "audits",
            gettext("Audits the decision rests on"),
            "ul" if audits else "p",
            audits or ((Part(gettext("No registry audit is cited.")),),),
        )
    )
    signed = (
        gettext("Proposed by a provincial reviewer and countersigned by a second provincial reviewer.")
        if decision.countersigned_by_id
        else gettext("Decided by a provincial reviewer.")
    )
    sections.append(Section("signatures", gettext("Decided by"), "p", ((Part(signed),),)))
    if source.log_entry is not None:
        entry = source.log_entry
        sections.append(
            Section(
                "log",
                gettext("Public decision log"),
                "p",
                (
                    (Part(gettext("Entry")), Part(f" {entry.index}, "), Part(gettext("leaf hash")), Part(" ")),
                    (Part(entry.leaf_hash, code=True),),
                    (
                        Part(gettext("Anyone can check it with its proof file")),
                        Part(f" /api/v1/log/entries/{entry.index}/proof ", code=True),
                        Part(gettext("and the log's public key")),
                        Part(" /api/v1/log/public-key", code=True),
                    ),
                ),
            )
        )
    # (gettext calls stay outside f-strings, where the message extractor would not see them)
    letter_name, registry_name = gettext("Decision letter"), gettext("AI approval algorithm filing registry")
    return Letter(
        lang="zh-CN" if chinese else "en",
        document_title=f"{letter_name} {decision.filing_number or ''}".strip(),
        issuer=f"{pick(*province)} {registry_name}".strip(),
        title=gettext("Decision on an algorithm filing"),
        filing_number_label=gettext("Filing number"),
        filing_number=decision.filing_number,
        facts=facts,
        sections=tuple(sections),
    )
