"""E-mail: the SMTP settings, composing an e-mail, and delivering the outbox after the commit. No Flask here.

The services write one ``email_outbox`` row per e-mail in the transaction of the event (registry.notifications
.service), so a rolled-back action sends nothing. :func:`deliver_pending` sends those rows later, outside any
request: ``registry mail send-pending`` (cron), the :class:`MailerThread` that ``registry serve`` starts when SMTP is
configured, or a Celery beat task. A sender claims a row with a conditional UPDATE (as audit jobs are claimed), so
two senders running at once never send the same e-mail twice; a failure keeps its error and the row is tried again
with a growing pause, up to ``max_attempts``. Nothing here can fail or roll back the action that wrote the row.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from registry.db import transaction, utcnow
from registry.notifications import texts
from registry.notifications.models import EmailState, OutboxEmail
from registry.notifications.texts import N_

log = logging.getLogger(__name__)

OUTBOX = OutboxEmail.__table__
CLAIM_SECONDS = 300.0  # a sender that holds a row longer than this is presumed dead; the row is tried again
FIRST_PAUSE_SECONDS = 60  # after a failure: 1, 2, 4, 8… minutes
LONGEST_PAUSE_SECONDS = 3600
OPEN_LINK = N_("Open: %(url)s")
FOOTER = N_("Sent by the algorithm filing registry. Please do not reply to this e-mail.")


@dataclass(frozen=True)
class MailSettings:
    """Where and how to send e-mail (``REGISTRY_SMTP_*``); absent when no SMTP host is configured."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    sender: str = "registry@localhost"
    public_url: str | None = None  # e.g. https://registry.example.gov.cn, for absolute links in e-mails
    timeout: float = 30.0
    max_attempts: int = 5

    @classmethod
    def from_config(cls, config: Mapping) -> MailSettings | None:
        """The settings in an app's configuration, or None when ``SMTP_HOST`` is not set (no e-mail)."""
        host = config.get("SMTP_HOST")
        if not host:
            return None
        return cls(
            host=str(host),
            port=int(config.get("SMTP_PORT") or 25),
            username=config.get("SMTP_USERNAME") or None,
            password=config.get("SMTP_PASSWORD") or None,
            starttls=bool(config.get("SMTP_STARTTLS")),
            sender=str(config.get("SMTP_FROM") or "registry@localhost"),
            public_url=config.get("PUBLIC_URL") or None,
            timeout=float(config.get("SMTP_TIMEOUT") or 30),
            max_attempts=int(config.get("MAIL_MAX_ATTEMPTS") or 5),
        )


# Which database sends e-mail, and how: set by create_app for its engine, read by the services through the
# session they are given (they know nothing of the app). An engine with no settings writes no outbox rows.
_SETTINGS: weakref.WeakKeyDictionary[Engine, MailSettings] = weakref.WeakKeyDictionary()


def configure(engine: Engine, settings: MailSettings | None) -> None:
    """Send e-mail for notifications written through ``engine`` with ``settings`` (None: no e-mail)."""
    if settings is None:
        _SETTINGS.pop(engine, None)
    else:
        _SETTINGS[engine] = settings


def settings_for(bind: Session | Engine | Connection) -> MailSettings | None:
    """The mail settings of the engine behind ``bind`` (a session, connection or engine), or None."""
    if isinstance(bind, Session):
        bind = bind.get_bind()
    if isinstance(bind, Connection):
        bind = bind.engine
    return _SETTINGS.get(bind) if isinstance(bind, Engine) else None


def compose(*, kind: str, params: dict, link: str, settings: MailSettings) -> tuple[str, str]:
    """The subject and plain-text body of a notification's e-mail: Chinese first, then English."""
    url = settings.public_url.rstrip("/") + link if settings.public_url else link
    subject = f"{texts.title(kind, texts.ZH)} | {texts.title(kind, texts.EN)}"
    parts = []
    for language in texts.LANGUAGES:
        parts.append(
            "\n".join(
                [
                    texts.render(kind, params, language),
                    texts.gettext(OPEN_LINK, language) % {"url": url},
                    "",
                    texts.gettext(FOOTER, language),
                ]
            )
        )
    return subject[:500], "\n\n——\n\n".join(parts)


# --- delivery --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What one run of :func:`deliver_pending` did."""

    sent: int = 0
    retrying: int = 0  # failed this time, tried again later
    failed: int = 0  # failed for the last time


@dataclass(frozen=True)
class _Claimed:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int
    max_attempts: int
    created_at: datetime


def _move(session, email_id: int, expected: dict, values: dict) -> bool:
    """UPDATE one outbox row only if it is still as ``expected``; True when this caller won."""
    conditions = [OUTBOX.c.id == email_id] + [OUTBOX.c[name] == value for name, value in expected.items()]
    return session.execute(sa.update(OUTBOX).where(*conditions).values(**values)).rowcount == 1


def _claim(engine: Engine, worker: str, now: datetime) -> _Claimed | None:
    """Move ONE due row to ``sending`` for ``worker`` (a conditional UPDATE: of two senders exactly one wins)."""
    with transaction(engine) as session:
        candidates = session.execute(
            sa.select(OUTBOX.c.id, OUTBOX.c.state, OUTBOX.c.attempts, OUTBOX.c.max_attempts)
            .where(
                sa.or_(
                    sa.and_(OUTBOX.c.state == EmailState.PENDING, OUTBOX.c.next_attempt_at <= now),
                    sa.and_(OUTBOX.c.state == EmailState.SENDING, OUTBOX.c.claimed_until < now),
                )
            )
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
            .limit(20)
        ).all()
        for row in candidates:
            expected = {"state": row.state, "attempts": row.attempts}
            if row.state == EmailState.SENDING and row.attempts >= row.max_attempts:
                _move(
                    session,
                    row.id,
                    expected,
                    {
                        "state": EmailState.FAILED,
                        "last_error": "Its sender stopped before finishing, and it has no attempt left.",
                        "claimed_until": None,
                    },
                )
                continue
            won = _move(
                session,
                row.id,
                expected,
                {
                    "state": EmailState.SENDING,
                    "claimed_by": worker,
                    "claimed_until": now + timedelta(seconds=CLAIM_SECONDS),
                    "attempts": row.attempts + 1,
                },
            )
            if won:
                claimed = session.execute(sa.select(OUTBOX).where(OUTBOX.c.id == row.id)).one()
                return _Claimed(
                    id=claimed.id,
                    recipient=claimed.recipient,
                    subject=claimed.subject,
                    body=claimed.body,
                    attempts=claimed.attempts,
                    max_attempts=claimed.max_attempts,
                    created_at=claimed.created_at,
                )
    return None


def _message(email: _Claimed, settings: MailSettings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = email.recipient
    message["Subject"] = email.subject
    message["Date"] = format_datetime(utcnow())
    domain = settings.sender.rpartition("@")[2] or "localhost"
    # The same id on every attempt, so a receiver can drop a copy if a retry follows a lost acknowledgement.
    message["Message-ID"] = f"<outbox-{email.id}.{email.created_at:%Y%m%d%H%M%S}@{domain}>"
    message.set_content(email.body)
    return message


def _connect(settings: MailSettings) -> smtplib.SMTP:
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            smtp.login(settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _connection_lost(exc: BaseException) -> bool:
    """True for a failure of the connection itself, False for the server refusing this one e-mail."""
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


def _pause(attempts: int) -> timedelta:
    return timedelta(seconds=min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2 ** max(0, attempts - 1)))


def _after_failure(engine: Engine, email: _Claimed, worker: str, error: str, now: datetime) -> bool:
    """Keep the error; back to ``pending`` after a pause, or ``failed`` when no attempt is left. True if failed."""
    last = email.attempts >= email.max_attempts
    values = {"last_error": error[:2000], "claimed_by": None, "claimed_until": None}
    if last:
        values["state"] = EmailState.FAILED
    else:
        values.update(state=EmailState.PENDING, next_attempt_at=now + _pause(email.attempts))
    with transaction(engine) as session:
        _move(session, email.id, {"state": EmailState.SENDING, "claimed_by": worker}, values)
    return last


def deliver_pending(
    engine: Engine,
    settings: MailSettings,
    *,
    limit: int = 100,
    now: datetime | None = None,
    worker: str | None = None,
) -> Delivery:
    """Send up to ``limit`` due e-mails of the outbox through ``settings``' SMTP server; returns what it did.

    Each row is claimed before it is sent and marked ``sent`` after, in short transactions of their own. A row
    that fails keeps the error and waits (1, 2, 4… minutes, up to an hour) before its next attempt, until
    ``max_attempts``. When the server cannot be reached the run stops early, leaving the other rows untouched.
    ``now`` moves the clock (tests). Never raises for an SMTP failure.
    """
    worker = worker or f"{socket.gethostname()}:{os.getpid()}:mailer-{threading.get_ident()}"
    sent = retrying = failed = 0
    smtp: smtplib.SMTP | None = None
    try:
        for _ in range(limit):
            clock = now or utcnow()
            email = _claim(engine, worker, clock)
            if email is None:
                break
            connected = smtp is not None
            try:
                message = _message(email, settings)
                if smtp is None:
                    smtp = _connect(settings)
                    connected = True
                smtp.send_message(message)
            except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors; ValueError: an unusable address
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "e-mail %s to %s not sent (attempt %s): %s", email.id, email.recipient, email.attempts, error
                )
                if _after_failure(engine, email, worker, error, clock):
                    failed += 1
                else:
                    retrying += 1
                if not connected or _connection_lost(exc):
                    break  # the server is unreachable: the rest would fail alike; they wait for the next run
                continue
            with transaction(engine) as session:
                done = _move(
                    session,
                    email.id,
                    {"state": EmailState.SENDING, "claimed_by": worker},
                    {"state": EmailState.SENT, "sent_at": utcnow(), "claimed_until": None, "last_error": None},
                )
            if not done:
                log.warning("e-mail %s was sent, but its claim had lapsed meanwhile", email.id)
            sent += 1
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    return Delivery(sent=sent, retrying=retrying, failed=failed)


class MailerThread:
    """Delivers the outbox every ``poll_seconds`` in a background thread (what ``registry serve`` starts)."""

    def __init__(self, engine: Engine, settings: MailSettings, *, poll_seconds: float = 15.0, batch: int = 100):
        self.engine, self.settings, self.poll_seconds, self.batch = engine, settings, poll_seconds, batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="registry-mailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop after its current e-mail, and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                deliver_pending(self.engine, self.settings, limit=self.batch)
            except Exception:  # the database may be briefly unavailable; the outbox keeps the work
                log.exception("the mailer could not deliver the outbox")
            self._stop.wait(self.poll_seconds)
