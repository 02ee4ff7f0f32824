"""Use cases for filings. Each does its whole job inside the caller's transaction or raises; the caller commits."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from sqlmodel import Session, func, select

from audits.model_check import ModelRejected, check_model_file
from registry import authz
from registry.authz import Actor
from registry.cities.models import City
from registry.db import utcnow
from registry.decision_log import keys as log_keys
from registry.decision_log import records as log_records
from registry.decision_log import service as decision_log
from registry.decisions.models import Decision
from registry.errors import (
    Forbidden,
    IllegalTransition,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    ValidationFailed,
)
from registry.filings import lifecycle, numbers, risk
from registry.filings.lifecycle import Action, State
from registry.filings.models import Attachment, Comment, Filing, FilingTransition
from registry.library import search as library_search
from registry.notifications import service as notifications
from registry.storage import service as storage
from registry.storage.files import ContentStore
from schemas import load as load_schema
from schemas import validation as contracts

MODEL = "model"
DOCUMENT = "document"
ATTACHMENT_KINDS = (MODEL, DOCUMENT)


# Orders of a filing list. WAITING: the filings waiting for the province (submitted, under review, resubmitted)
# first, each group longest in its current state first (the reviewers' default); BRIEFEST_WAIT: the same groups,
# most recent arrivals first; UPDATED: most recently changed first (the city teams' default).
WAITING = "waiting"
BRIEFEST_WAIT = "-waiting"
UPDATED = "updated"
SORTS = (WAITING, BRIEFEST_WAIT, UPDATED)
# The filters of a filing list, by query parameter name.
FILTERS = ("state", "city", "scenario", "tier")


@dataclass(frozen=True)
class Page:
    items: list[Filing]
    total: int
    page: int
    per_page: int
    # When each listed filing entered its current state (its latest lifecycle step), by filing id.
    in_state_since: dict[int, datetime] = field(default_factory=dict)
    sort: str = UPDATED


# --- reading -------------------------------------------------------------------------------------------------------


def get_filing(*, session: Session, actor: Actor, filing_id: int) -> Filing:
    """The filing, if ``actor`` may read it. Raises NotFound (unknown, or not theirs to see)."""
    return authz.require_read_filing(actor, session.get(Filing, filing_id))


@functools.cache
def scenarios() -> tuple[str, ...]:
    """The approval scenarios a technical document may name (its schema's enumeration)."""
    return tuple(load_schema("technical-document")["properties"]["scenario"]["enum"])


def default_sort(actor: Actor) -> str:
    """Reviewers and administrators work through the queue longest-waiting first; city teams see their latest."""
    return WAITING if actor.role in ("reviewer", "admin") else UPDATED


def _filter_errors(session: Session, wanted: dict[str, str | None]) -> list[contracts.FieldError]:
    allowed = {
        "state": tuple(s.value for s in State),
        "scenario": scenarios(),
        "tier": risk.TIERS,
        "sort": SORTS,
    }
    errors = []
    for name, value in wanted.items():
        if value is None:
            continue
        known = session.get(City, value) is not None if name == "city" else value in allowed[name]
        if not known:
            choices = "a city code of the registry" if name == "city" else f"one of {', '.join(allowed[name])}"
            choices_zh = "本系统中的城市代码" if name == "city" else "、".join(allowed[name])
            errors.append(
                contracts.FieldError(
                    pointer=f"/query/{name}",
                    keyword="enum",
                    message=f"Unknown {name} {value!r}; use {choices}.",
                    message_zh=f"未知的 {name} 取值“{value}”，可用：{choices_zh}。",
                )
            )
    return errors


def list_filings(
    *,
    session: Session,
    actor: Actor,
    state: str | None = None,
    city: str | None = None,
    scenario: str | None = None,
    tier: str | None = None,
    sort: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """The filings ``actor`` may read, narrowed by state, city (code), scenario and risk tier, one page at a time.

    Filters only narrow what the actor may read: a city team filtering on another city gets nothing. ``sort`` is
    one of SORTS (default: :func:`default_sort`); how long each filing has been in its current state is computed
    in the same query (its latest transition) and given in ``Page.in_state_since``.
    Raises ValidationFailed naming each unknown filter value at /query/<name>, Unprocessable for a bad page.
    """
    errors = _filter_errors(session, {"state": state, "city": city, "scenario": scenario, "tier": tier, "sort": sort})
    if errors:
        raise ValidationFailed(
            "Unknown filter value(s): " + ", ".join(e.pointer.rsplit("/", 1)[-1] for e in errors) + ".",
            code="bad_filter",
            errors=errors,
        )
    if page < 1 or not 1 <= per_page <= 200:
        raise Unprocessable(
            "page starts at 1 and per_page is between 1 and 200.", code="bad_page", pointer="/query/page"
        )
    sort = sort or default_sort(actor)
    condition = authz.visible_filings(actor)
    for column, value in (
        (Filing.state, state),
        (Filing.city_code, city),
        (Filing.scenario, scenario),
        (Filing.risk_tier, tier),
    ):
        if value is not None:
            condition = sa.and_(condition, column == value)
    # Every lifecycle step changes the state, so the latest one is when the filing entered its current state.
    latest_step = (
        select(func.max(FilingTransition.at))
        .where(FilingTransition.filing_id == Filing.id)
        .correlate(Filing)
        .scalar_subquery()
    )
    since = func.coalesce(latest_step, Filing.created_at).label("in_state_since")
    awaiting_province = sa.case((Filing.state.in_([s.value for s in lifecycle.IN_REVIEW]), 0), else_=1)
    order = {
        WAITING: (awaiting_province, since.asc(), Filing.id.asc()),
        BRIEFEST_WAIT: (awaiting_province, since.desc(), Filing.id.desc()),
        UPDATED: (Filing.updated_at.desc(), Filing.id.desc()),
    }[sort]
    total = session.exec(select(func.count()).select_from(Filing).where(condition)).one()
    rows = session.exec(
        select(Filing, since).where(condition).order_by(*order).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return Page(
        items=[filing for filing, _ in rows],
        total=total,
        page=page,
        per_page=per_page,
        in_state_since={filing.id: entered for filing, entered in rows},
        sort=sort,
    )


def history(*, session: Session, filing: Filing) -> list[FilingTransition]:
    return list(
        session.exec(
            select(FilingTransition).where(FilingTransition.filing_id == filing.id).order_by(FilingTransition.id)
        )
    )


def attachments(*, session: Session, filing: Filing) -> list[Attachment]:
    return list(session.exec(select(Attachment).where(Attachment.filing_id == filing.id).order_by(Attachment.id)))


def comments(*, session: Session, actor: Actor, filing: Filing) -> list[Comment]:
    """The thread as ``actor`` may see it (reviewer-only notes left out for city teams)."""
    thread = session.exec(select(Comment).where(Comment.filing_id == filing.id).order_by(Comment.id)).all()
    return [c for c in thread if authz.may_see_comment(actor, c)]


# --- writing -------------------------------------------------------------------------------------------------------


def _check_documents(technical_document, test_report, *, complete: bool) -> None:
    check = contracts.validate if complete else contracts.validate_draft
    errors = check("technical-document", technical_document, pointer_prefix="/technical_document")
    if test_report is not None:
        errors += check("test-report", test_report, pointer_prefix="/test_report")
    if errors:
        raise ValidationFailed("The documents do not match their schemas.", code="validation_failed", errors=errors)


def _apply_documents(filing: Filing, technical_document: dict, test_report: dict | None) -> None:
    algorithm = technical_document.get("algorithm") or {}
    filing.technical_document = technical_document
    filing.test_report = test_report
    filing.algorithm_name_zh = algorithm.get("name_zh", "")
    filing.algorithm_name_en = algorithm.get("name_en", "")
    filing.algorithm_version = algorithm.get("version", "")
    filing.scenario = technical_document.get("scenario")
    answers = (technical_document.get("impact_assessment") or {}).get("answers") or {}
    try:
        assessment = risk.assess(answers)
    except ValueError:  # an unfinished questionnaire has no tier yet
        filing.risk_tier, filing.risk_assessment = None, None
    else:
        filing.risk_tier, filing.risk_assessment = assessment.tier, assessment.to_json()
    filing.updated_at = utcnow()


def _own_city(actor: Actor, technical_document: dict) -> dict:
    """The document with the actor's city filled in; a different city is an error at /technical_document/city_code."""
    document = copy.deepcopy(technical_document)
    given = document.get("city_code")
    if given is None:
        document["city_code"] = actor.city_code
    elif given != actor.city_code:
        raise ValidationFailed(
            "A city team files for its own city only.",
            code="validation_failed",
            errors=[
                contracts.FieldError(
                    pointer="/technical_document/city_code",
                    keyword="const",
                    message=f"The city code must be your city's, {actor.city_code}.",
                    message_zh=f"城市代码必须是本市的代码 {actor.city_code}。",
                )
            ],
        )
    return document


def _record(
    session: Session, filing: Filing, action: str, from_state: str | None, actor: Actor, reason: str = ""
) -> FilingTransition:
    step = FilingTransition(
        filing_id=filing.id,
        action=action,
        from_state=from_state,
        to_state=filing.state,
        actor_id=actor.user_id,
        actor_role=actor.kind,
        reason=reason,
    )
    session.add(step)
    return step


def create_draft(
    *,
    session: Session,
    actor: Actor,
    technical_document: dict,
    test_report: dict | None = None,
    supersedes_filing_id: int | None = None,
) -> Filing:
    """A new draft filing for the actor's city. Raises Forbidden (not a city team) or ValidationFailed."""
    if actor.role != "city" or not actor.city_code:
        raise Forbidden("Only a city team files algorithms.", code="city_teams_only")
    if not isinstance(technical_document, dict):
        raise ValidationFailed(
            "The technical document must be a JSON object.",
            code="validation_failed",
            errors=[contracts.FieldError("/technical_document", "type", "Expected a JSON object.", "应为 JSON 对象。")],
        )
    technical_document = _own_city(actor, technical_document)
    _check_documents(technical_document, test_report, complete=False)
    if supersedes_filing_id is not None:
        previous = session.get(Filing, supersedes_filing_id)
        if (
            previous is None
            or previous.city_code != actor.city_code
            or previous.state not in (lifecycle.DECIDED | {State.SUSPENDED})
        ):
            raise Unprocessable(
                "A new version can only supersede one of your city's approved filings.",
                code="bad_supersedes",
                pointer="/supersedes_filing_id",
            )
    filing = Filing(
        city_code=actor.city_code,
        state=State.DRAFT,
        created_by_id=actor.user_id,
        supersedes_id=supersedes_filing_id,
    )
    _apply_documents(filing, technical_document, test_report)
    session.add(filing)
    session.flush()
    _record(session, filing, "create", None, actor)
    session.flush()
    return filing


def update_documents(
    *, session: Session, actor: Actor, filing_id: int, technical_document: dict | None, test_report: dict | None
) -> Filing:
    """Replace the documents of a draft (or of a filing sent back for changes). ``None`` keeps what is there.

    Raises NotFound, Forbidden, IllegalTransition-type Conflict (not editable now) or ValidationFailed.
    """
    filing = get_filing(session=session, actor=actor, filing_id=filing_id)
    authz.require_edit_filing(actor, filing)
    require_editable(filing)
    new_document = _own_city(actor, technical_document) if technical_document is not None else filing.technical_document
    new_report = test_report if test_report is not None else filing.test_report
    _check_documents(new_document, new_report, complete=False)
    _apply_documents(filing, new_document, new_report)
    session.add(filing)
    session.flush()
    return filing


def require_editable(filing: Filing) -> None:
    """Raises IllegalTransition (409) unless the city team may still change the filing's documents and model."""
    if filing.state not in lifecycle.EDITABLE:
        raise IllegalTransition(
            f"A filing that is {filing.state} cannot be edited; documents and model are frozen once submitted.",
            code="not_editable",
            current_state=filing.state,
            allowed_actions=lifecycle.allowed_actions(filing.state),
        )


PDF_TAIL = 1024  # a PDF ends with %%EOF; readers look for it this near the end (trailing junk is tolerated)


def _check_pdf(path: Path) -> None:
    """A PDF begins with %PDF- and ends with %%EOF: one without the end was cut off on its way (it is never parsed
    here, and never served back: a supporting document is kept for the record only)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(5)
        handle.seek(max(0, size - PDF_TAIL))
        tail = handle.read()
    if head != b"%PDF-":
        raise UnsupportedMediaType("Supporting documents must be PDF files.", code="not_pdf", pointer="/file")
    if b"%%EOF" not in tail:
        raise Unprocessable(
            "The PDF is incomplete: it has no end-of-file marker (%%EOF), so it was probably cut off. Upload it again.",
            code="pdf_truncated",
            pointer="/file",
            extra={"detail_zh": "PDF 文件不完整：缺少文件结束标记（%%EOF），可能在传输中被截断，请重新上传。"},
        )


def attach_file(
    *,
    session: Session,
    content: ContentStore,
    actor: Actor,
    filing_id: int,
    kind: str,
    stream: BinaryIO,
    filename: str,
    max_bytes: int,
) -> Attachment:
    """Store an uploaded file and attach it. A model must be a single-file ONNX model that passes the checks.

    Raises NotFound, Forbidden, Conflict (not editable), Unprocessable (kind, or a refused model),
    UnsupportedMediaType or PayloadTooLarge. Nothing is recorded when it raises.
    """
    filing = get_filing(session=session, actor=actor, filing_id=filing_id)
    authz.require_edit_filing(actor, filing)
    require_editable(filing)
    if kind not in ATTACHMENT_KINDS:
        raise Unprocessable(
            f"Unknown attachment kind {kind!r}; use model or document.", code="bad_kind", pointer="/kind"
        )

    def vet_model(path: Path) -> None:
        try:
            check_model_file(path, max_bytes=max_bytes)
        except ModelRejected as exc:
            raise Unprocessable(
                exc.message, code=f"model_{exc.code}", pointer="/file", extra={"detail_zh": exc.message_zh}
            ) from exc

    try:
        stored = storage.store(
            session=session,
            content=content,
            stream=stream,
            media_type="application/onnx" if kind == MODEL else "application/pdf",
            max_bytes=max_bytes,
            check=vet_model if kind == MODEL else _check_pdf,
        )
    except PayloadTooLarge as exc:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {max_bytes} bytes.",
            code="file_too_large",
            pointer="/file",
            extra={"detail_zh": f"文件超过 {max_bytes} 字节的上限。"},
        ) from exc
    attachment = Attachment(
        filing_id=filing.id,
        kind=kind,
        sha256=stored.sha256,
        filename=_safe_filename(filename),
        size=stored.size,
        created_by_id=actor.user_id,
    )
    session.add(attachment)
    if kind == MODEL:
        filing.model_sha256 = stored.sha256
    filing.updated_at = utcnow()
    session.add(filing)
    session.flush()
    return attachment


def _safe_filename(filename: str) -> str:
    """Only the last path component, printable, at most 255 characters: names are shown, never used as paths."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    # Unprintable characters go: NUL, line breaks, and the bidirectional controls that make "gpj.exe" read "exe.jpg".
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    return name[:255] or "upload"


def _require_complete(filing: Filing) -> None:
    errors = contracts.validate("technical-document", filing.technical_document, pointer_prefix="/technical_document")
    if filing.test_report is None:
        errors.append(
            contracts.FieldError(
                "/test_report", "required", "A test report is required to submit.", "提交前须提供测试报告。"
            )
        )
    else:
        errors += contracts.validate("test-report", filing.test_report, pointer_prefix="/test_report")
    if filing.model_sha256 is None:
        errors.append(
            contracts.FieldError(
                "/model", "required", "An ONNX model is required to submit.", "提交前须上传 ONNX 模型文件。"
            )
        )
    if errors:
        raise ValidationFailed("The filing is not complete yet.", code="incomplete_filing", errors=errors)


def transition(
    *, session: Session, actor: Actor, filing_id: int, action: str, reason: str = "", province: str = "豫"
) -> Filing:
    """Take a lifecycle step, and append it to the trail. Submitting and resubmitting need a complete filing.

    Raises NotFound, Forbidden, IllegalTransition (409, with the state and the allowed actions), Unprocessable
    (reason missing) or ValidationFailed (incomplete filing).
    """
    filing = get_filing(session=session, actor=actor, filing_id=filing_id)
    return apply_transition(
        session=session, actor=actor, filing=filing, action=action, reason=reason, province=province
    )


def apply_transition(
    *, session: Session, actor: Actor, filing: Filing, action: str, reason: str = "", province: str = "豫"
) -> Filing:
    """The step itself, for a filing the caller has already loaded and may read.

    ``province`` is the abbreviation that opens a filing number issued by this step (豫 for Henan). Decisions
    (approve, approve with conditions, reject) are refused here: they are taken by :func:`apply_decision`.
    """
    who = authz.lifecycle_actor(actor, filing)
    return _step(session=session, actor=actor, who=who, filing=filing, action=action, reason=reason, province=province)


def apply_decision(
    *, session: Session, actor: Actor, filing: Filing, decision: Decision, province: str = "豫"
) -> Filing:
    """Take the step a decision names (approve, approve with conditions or reject) as the lifecycle's DECISION kind.

    Only ``registry.decisions.service`` calls this, once it has made ``decision`` effective. It checks the
    signatures again here, below any web or API code: ``actor`` is a reviewer who signed the decision, and a
    decision on a filing of tier III or IV (or of no tier yet) carries a countersignature by a second reviewer.
    Raises Forbidden (signatures missing, or the wrong actor), IllegalTransition (the filing is not under review).
    """
    signers = {decision.proposed_by_id, decision.countersigned_by_id} - {None}
    if actor.role != "reviewer" or actor.user_id not in signers or decision.filing_id != filing.id:
        raise Forbidden("Only a reviewer who signed this decision may make it take effect.", code="not_a_signer")
    if lifecycle.needs_countersignature(decision.tier) and (
        decision.countersigned_by_id is None or decision.countersigned_by_id == decision.proposed_by_id
    ):
        raise Forbidden(
            "A decision on a tier III or IV filing needs a second reviewer's countersignature.",
            code="countersignature_required",
        )
    action = lifecycle.OUTCOME_ACTIONS[decision.outcome]
    lines = list(decision.conditions or []) + list(decision.reasons or [])
    reason = f"decision {decision.id}" + (": " + "; ".join(lines) if lines else "")
    _step(
        session=session,
        actor=actor,
        who=lifecycle.DECISION,
        filing=filing,
        action=action,
        reason=reason[:4000],
        province=province,
        decision=decision,
    )
    return filing


def _step(
    *,
    session: Session,
    actor: Actor,
    who: str,
    filing: Filing,
    action: str,
    reason: str,
    province: str,
    decision: Decision | None = None,
) -> Filing:
    target = lifecycle.next_state(filing.state, action, actor=who, reason=reason)
    if action in (Action.SUBMIT, Action.RESUBMIT):
        _require_complete(filing)
        filing.submitted_at = utcnow()
    source = filing.state
    filing.state = target
    filing.updated_at = utcnow()
    if target in lifecycle.DECIDED:
        filing.decided_at = utcnow()
        if filing.filing_number is None:
            filing.filing_number = numbers.issue_number(
                session=session,
                province_abbreviation=province,
                city_code=filing.city_code,
                year=filing.decided_at.year,
            )
    session.add(filing)
    session.flush()
    step = _record(session, filing, action, source, actor, reason)
    library_search.refresh(session, filing)  # the public library shows a decided filing from this step on
    if action in log_records.LOGGED:  # a decision about the filing: into the public log, in this transaction
        session.flush()
        decision_log.append(
            session, keys=log_keys.for_session(session), filing=filing, transition=step, decision=decision
        )
    if target in lifecycle.DECIDED and filing.supersedes_id is not None:
        previous = session.get(Filing, filing.supersedes_id)
        if previous is not None and previous.state in lifecycle.DECIDED | {State.SUSPENDED}:
            apply_transition(
                session=session,
                actor=authz.SYSTEM_ACTOR,
                filing=previous,
                action=Action.SUPERSEDE,
                reason=f"superseded by filing {filing.id}",
                province=province,
            )
    session.flush()
    return filing


def add_comment(*, session: Session, actor: Actor, filing_id: int, body: str, reviewer_only: bool = False) -> Comment:
    """Write on a filing's thread. Raises NotFound, Forbidden or Unprocessable (empty or too long)."""
    filing = get_filing(session=session, actor=actor, filing_id=filing_id)
    authz.require_comment(actor, filing, reviewer_only=reviewer_only)
    body = (body or "").strip()
    if not body or len(body) > 10000:
        raise Unprocessable("A comment has between 1 and 10,000 characters.", code="bad_comment", pointer="/body")
    comment = Comment(
        filing_id=filing.id, author_id=actor.user_id, author_role=actor.kind, body=body, reviewer_only=reviewer_only
    )
    session.add(comment)
    session.flush()
    notifications.comment_added(session=session, actor=actor, filing=filing, comment=comment)
    return comment
