"""Who may do what: the one place where the registry's permissions are written down.

Route-level access (which roles may call an endpoint at all) is declared beside each route with
``registry.access.allow`` and enforced for every request in ``registry.access``; the rules on objects (which
filings an actor sees, edits or comments on) are the functions below, which the services call. Pure: no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from registry.accounts.models import Role
from registry.errors import Forbidden, NotFound
from registry.filings import lifecycle
from registry.filings.models import Comment, Filing

PUBLIC = "public"  # anyone, logged in or not
ROLES = (PUBLIC, Role.CITY.value, Role.REVIEWER.value, Role.ADMIN.value)


@dataclass(frozen=True)
class Actor:
    """Whoever makes a request: an account (by web session or API token), or the anonymous public."""

    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    city_code: str | None = None
    via_token: bool = False

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def kind(self) -> str:
        return self.role or PUBLIC


ANONYMOUS = Actor()
SYSTEM_ACTOR = Actor(role=lifecycle.SYSTEM, username="system")


def may_call(actor: Actor, allowed: frozenset[str]) -> bool:
    """Route-level rule: PUBLIC admits everyone; otherwise the actor's role must be listed."""
    return PUBLIC in allowed or (actor.is_authenticated and actor.kind in allowed)


def visible_filings(actor: Actor) -> sa.ColumnElement[bool]:
    """A SQL condition selecting the filings ``actor`` may read.

    A city team sees all of its own city's filings, drafts included, and nothing of another city's; reviewers
    and administrators see every filing that has been submitted (drafts and withdrawn drafts stay the city's).
    """
    if actor.role == Role.CITY and actor.city_code:
        return Filing.city_code == actor.city_code
    if actor.role in (Role.REVIEWER, Role.ADMIN):
        return Filing.submitted_at.is_not(None)
    return sa.false()


def can_read_filing(actor: Actor, filing: Filing) -> bool:
    if actor.role == Role.CITY:
        return actor.city_code is not None and filing.city_code == actor.city_code
    if actor.role in (Role.REVIEWER, Role.ADMIN):
        return filing.submitted_at is not None
    return False


def require_read_filing(actor: Actor, filing: Filing | None) -> Filing:
    """The filing, if ``actor`` may read it. Raises NotFound otherwise: another city's filing does not exist for you."""
    if filing is None or not can_read_filing(actor, filing):
        raise NotFound("No such filing.", code="filing_not_found")
    return filing


def require_edit_filing(actor: Actor, filing: Filing) -> None:
    """Raises Forbidden unless ``actor`` is the filing's city team; Conflict-type errors are the lifecycle's job."""
    if actor.role != Role.CITY or filing.city_code != actor.city_code:
        raise Forbidden("Only the filing's own city team may change it.", code="not_your_filing")


def lifecycle_actor(actor: Actor, filing: Filing) -> str:
    """The lifecycle's name for ``actor`` with respect to ``filing`` (city, reviewer or system)."""
    if actor.role == lifecycle.SYSTEM:
        return lifecycle.SYSTEM
    if actor.role == Role.CITY and filing.city_code == actor.city_code:
        return lifecycle.CITY
    if actor.role == Role.REVIEWER:
        return lifecycle.REVIEWER
    raise Forbidden("You may not change this filing's state.", code="not_your_step")


def may_see_comment(actor: Actor, comment: Comment) -> bool:
    """Reviewer-only notes are for reviewers and administrators; the rest of a thread is for all who see the filing."""
    return not comment.reviewer_only or actor.role in (Role.REVIEWER, Role.ADMIN)


def require_comment(actor: Actor, filing: Filing, *, reviewer_only: bool) -> None:
    """Raises Forbidden unless ``actor`` may write on ``filing``'s thread (in that visibility)."""
    if filing.submitted_at is None:
        raise Forbidden("Comments open once the filing is submitted.", code="comments_closed")
    if actor.role == Role.CITY and filing.city_code == actor.city_code and not reviewer_only:
        return
    if actor.role == Role.REVIEWER:
        return
    raise Forbidden("You may not write on this filing's thread.", code="not_your_thread")


def require_admin(actor: Actor) -> None:
    if actor.role != Role.ADMIN:
        raise Forbidden("Administrators only.", code="admin_only")


def may_read_concerns(actor: Actor, filing: Filing) -> bool:
    """Concerns the public raised about a filing: for reviewers and administrators, and for the filing's own city
    team (so that it can fix what is reported); never for another city."""
    return can_read_filing(actor, filing)


def may_see_concern_contact(actor: Actor) -> bool:
    """A concern's contact (an e-mail address or telephone number: personal data) is for the province only."""
    return actor.role in (Role.REVIEWER, Role.ADMIN)


def require_handle_concern(actor: Actor) -> None:
    """Raises Forbidden unless ``actor`` is a reviewer: only reviewers mark a concern seen or answered."""
    if actor.role != Role.REVIEWER:
        raise Forbidden("Only reviewers mark a concern seen or answered.", code="reviewers_only")
