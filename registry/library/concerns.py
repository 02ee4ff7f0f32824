"""Use cases for concerns the public raises about a library entry. No Flask here; the caller commits.

Anyone may raise a concern about a public filing (registry.library.public), without an account; it is stored with
a reference number for the person and put in front of the reviewers (a notification, and a section of the
filing's page). What the person wrote is hostile input: it is stored as typed (control characters removed) and
every page escapes it. The optional contact is personal data, shown to reviewers and administrators only.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from registry import authz
from registry.authz import Actor
from registry.db import utcnow
from registry.errors import NotFound, Unprocessable, ValidationFailed
from registry.filings.models import Filing
from registry.library import public
from registry.library.concern_models import Concern, ConcernStatus
from registry.notifications import service as notifications
from schemas.validation import FieldError

MIN_BODY, MAX_BODY = 10, 4000
MAX_CONTACT = 200
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O or U to misread
CODE_LENGTH = 4
STATUSES = tuple(s.value for s in ConcernStatus)
LANGUAGES = ("zh", "en")

# Everything below U+0020 but tab and newline (PostgreSQL refuses NUL; the rest only hides text from a reader).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9][0-9 ()\-]*")


@dataclass(frozen=True)
class ConcernView:
    """A concern as a member of the province's staff reads it; ``contact`` is None unless they may see it."""

    id: int
    reference: str
    body: str
    affected: bool
    language: str
    status: str
    created_at: datetime
    status_changed_at: datetime | None
    contact: str | None
    contact_hidden: bool  # a contact was given but this reader may not see it


def public_filing(*, session: Session, filing_number: str) -> Filing:
    """The public filing that ``filing_number`` (an entry key: registry.library.public.find_public) names.
    Raises NotFound for an unknown or not (yet) public one."""
    filing = public.find_public(session, filing_number)
    if filing is None:
        raise NotFound("There is no public library entry with this filing number.", code="entry_not_found")
    return filing


def _clean(text: str | None) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def _valid_contact(contact: str) -> bool:
    if _EMAIL.fullmatch(contact):
        return True
    digits = sum(c.isdigit() for c in contact)
    return bool(_PHONE.fullmatch(contact)) and 7 <= digits <= 20


def validate(*, body: str | None, contact: str | None) -> tuple[str, str | None]:
    """The concern's text and contact, cleaned. Raises ValidationFailed naming each field at fault
    (``/body``: 10 to 4,000 characters; ``/contact``: empty, an e-mail address or a telephone number)."""
    body, contact = _clean(body), " ".join(_clean(contact).split()) or None
    errors: list[FieldError] = []
    if not body:
        errors.append(
            FieldError("/body", "required", "Describe what happened.", "请写明发生了什么。"),
        )
    elif not MIN_BODY <= len(body) <= MAX_BODY:
        errors.append(
            FieldError(
                "/body",
                "minLength" if len(body) < MIN_BODY else "maxLength",
                f"Write between {MIN_BODY} and {MAX_BODY:,} characters (you wrote {len(body):,}).",
                f"请写 {MIN_BODY} 至 {MAX_BODY} 个字（现在是 {len(body)} 个字）。",
            )
        )
    if contact is not None and (len(contact) > MAX_CONTACT or not _valid_contact(contact)):
        errors.append(
            FieldError(
                "/contact",
                "format",
                "Give an e-mail address (such as name@example.cn) or a telephone number, or leave it empty.",
                "请填写电子邮箱（如 name@example.cn）或电话号码，也可以不填。",
            )
        )
    if errors:
        raise ValidationFailed("The concern is incomplete or not valid.", code="invalid_concern", errors=errors)
    return body, contact


def raise_concern(
    *,
    session: Session,
    filing_number: str,
    body: str | None,
    contact: str | None = None,
    affected: bool = False,
    language: str = "zh",
) -> Concern:
    """Store a concern about the public filing ``filing_number`` and notify every reviewer, in one transaction.

    Raises NotFound for a filing that is not public, ValidationFailed for a missing, short or long text or a
    contact that is neither an e-mail address nor a telephone number.
    """
    filing = public_filing(session=session, filing_number=filing_number)
    body, contact = validate(body=body, contact=contact)
    concern = Concern(
        filing_id=filing.id,
        code="".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),
        body=body,
        contact=contact,
        affected=bool(affected),
        language=language if language in LANGUAGES else "zh",
    )
    session.add(concern)
    session.flush()
    notifications.concern_raised(
        session=session, filing=filing, concern_id=concern.id, reference=concern.reference, excerpt=body
    )
    return concern


def for_filing(*, session: Session, actor: Actor, filing: Filing) -> list[ConcernView] | None:
    """The concerns about ``filing``, newest first, as ``actor`` may read them (the contact for the province
    only); None when ``actor`` may not read them at all."""
    if not authz.may_read_concerns(actor, filing):
        return None
    show_contact = authz.may_see_concern_contact(actor)
    rows = session.exec(
        select(Concern).where(Concern.filing_id == filing.id).order_by(Concern.created_at.desc(), Concern.id.desc())
    )
    return [
        ConcernView(
            id=c.id,
            reference=c.reference,
            body=c.body,
            affected=c.affected,
            language=c.language,
            status=c.status,
            created_at=c.created_at,
            status_changed_at=c.status_changed_at,
            contact=c.contact if show_contact else None,
            contact_hidden=bool(c.contact) and not show_contact,
        )
        for c in rows
    ]


def set_status(*, session: Session, actor: Actor, filing_id: int, concern_id: int, status: str) -> Concern:
    """Mark a concern about filing ``filing_id`` new, seen or answered, recording who and when.

    Raises Forbidden for anyone but a reviewer, NotFound for a concern not about that filing, Unprocessable for
    an unknown status.
    """
    authz.require_handle_concern(actor)
    concern = session.get(Concern, concern_id)
    if concern is None or concern.filing_id != filing_id:
        raise NotFound("No such concern about this filing.", code="concern_not_found")
    if status not in STATUSES:
        raise Unprocessable(f"status is one of {', '.join(STATUSES)}.", code="bad_concern_status", pointer="/status")
    if concern.status != status:
        concern.status = status
        concern.status_changed_at = utcnow()
        concern.status_changed_by_id = actor.user_id
        session.add(concern)
        session.flush()
    return concern
