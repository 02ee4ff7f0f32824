"""Notifications: who is told of each event (and who never is), the inbox on the web and through the API, both
languages, and e-mail through a local SMTP sink: delivered once, retried after a failure, never failing the action.
"""

from __future__ import annotations

import copy
import email
import email.policy
import socket
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlmodel import Session, select

from audits import policy as policies
from registry import config as config_module
from registry import create_app, demo
from registry.accounts import service as accounts
from registry.accounts.models import User
from registry.audit_jobs import schedule
from registry.audit_jobs.models import AuditJob
from registry.cli import main
from registry.db import transaction, utcnow
from registry.filings import service as filings
from registry.filings.models import Comment, Filing
from registry.notifications import mailer, texts
from registry.notifications.models import Notification, OutboxEmail
from tests.conftest import PASSWORD, csrf_token

EVERYONE = ("zhengzhou", "luoyang", "reviewer1", "reviewer2", "admin")


# --- helpers ---------------------------------------------------------------------------------------------------------


def _user(engine, username: str) -> User:
    with Session(engine, expire_on_commit=False) as s:
        return accounts.get_user_by_name(session=s, username=username)


def _actor(engine, username: str):
    return accounts.actor_for(_user(engine, username))


def _last_id(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(sa.func.coalesce(sa.func.max(Notification.id), 0))).one()


def _new(engine, since: int) -> dict[str, list[Notification]]:
    """The notifications written after id ``since``, by recipient's user name (every account listed)."""
    with Session(engine, expire_on_commit=False) as s:
        names = {u.id: u.username for u in s.exec(select(User))}
        found: dict[str, list[Notification]] = {name: [] for name in names.values()}
        for row in s.exec(select(Notification).where(Notification.id > since).order_by(Notification.id)):
            found[names[row.user_id]].append(row)
    return found


def _kinds(found: dict[str, list[Notification]]) -> dict[str, list[str]]:
    return {name: [n.kind for n in rows] for name, rows in found.items() if rows}


def _add_account(engine, username: str, role: str, city: str | None = None, *, active=True, email_address=None):
    with Session(engine) as s:
        s.add(
            User(
                username=username,
                display_name=username,
                role=role,
                city_code=city,
                password_hash=_user(engine, "zhengzhou").password_hash,
                active=active,
                email=email_address,
            )
        )
        s.commit()


def _set_email(engine, username: str, address: str | None) -> None:
    with Session(engine) as s:
        user = accounts.get_user_by_name(session=s, username=username)
        user.email = address
        s.add(user)
        s.commit()


def _comment(api, filing_id: int, user: str, body: str, reviewer_only: bool = False):
    response = api(user).post(
        f"/api/v1/filings/{filing_id}/comments", json={"body": body, "reviewer_only": reviewer_only}
    )
    assert response.status_code == 201, response.get_json()
    return response


@pytest.fixture
def low_risk(documents):
    """A tier II Zhengzhou technical document (one reviewer decides alone)."""
    technical, _reports = demo.documents()
    for doc in technical:
        if doc["city_code"] == "410100" and doc is not technical[0]:
            document = copy.deepcopy(doc)
            break
    assert filings.risk.assess(document["impact_assessment"]["answers"]).tier in ("I", "II")
    return document


def _audit(engine, filing_id: int, **values) -> int:
    filing = _filing(engine, filing_id)
    job = AuditJob(
        filing_id=filing_id,
        dataset="german-credit",
        sensitive_attributes=["sex"],
        tier=filing.risk_tier or "III",
        model_sha256=filing.model_sha256,
        replicates=20,
        finished_at=utcnow(),
        **values,
    )
    with Session(engine) as s:
        s.add(job)
        s.commit()
        return job.id


def _filing(engine, filing_id: int) -> Filing:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(Filing, filing_id)


def _finish(engine, job_id: int) -> None:
    with transaction(engine) as s:
        schedule.on_job_finished(session=s, job_id=job_id)


# --- who is told: comments -------------------------------------------------------------------------------------------


def test_a_city_comment_notifies_every_reviewer_and_no_one_else(engine, api, filing_in):
    filing_id = filing_in("under_review")
    _add_account(engine, "reviewer3", "reviewer", active=False)  # a deactivated account is never told
    since = _last_id(engine)
    _comment(api, filing_id, "zhengzhou", "第3节已补充。Section 3 is complete now.")
    assert _kinds(_new(engine, since)) == {"reviewer1": ["comment"], "reviewer2": ["comment"]}
    row = _new(engine, since)["reviewer1"][0]
    assert row.filing_id == filing_id and row.link == f"/filings/{filing_id}#comments" and row.read_at is None


def test_a_reviewer_comment_notifies_the_accounts_of_the_filings_city_only(engine, api, filing_in):
    filing_id = filing_in("under_review")
    _add_account(engine, "zhengzhou2", "city", "410100")
    _add_account(engine, "zhengzhou-old", "city", "410100", active=False)
    since = _last_id(engine)
    _comment(api, filing_id, "reviewer1", "Please add the subgroup results.")
    assert _kinds(_new(engine, since)) == {"zhengzhou": ["comment"], "zhengzhou2": ["comment"]}


def test_a_reviewer_only_note_goes_to_the_other_reviewers_and_never_to_the_city(engine, api, filing_in):
    filing_id = filing_in("under_review")
    since = _last_id(engine)
    _comment(api, filing_id, "reviewer1", "Secret: the claimed accuracy looks inflated.", reviewer_only=True)
    assert _kinds(_new(engine, since)) == {"reviewer2": ["reviewer_note"]}
    city_inbox = api("zhengzhou").get("/api/v1/notifications").get_json()
    assert all("inflated" not in (item["text"] + item["text_zh"]) for item in city_inbox["items"])


def test_a_rolled_back_comment_notifies_no_one(engine, filing_in):
    filing_id = filing_in("under_review")
    mailer.configure(engine, mailer.MailSettings(host="127.0.0.1", port=9))
    _set_email(engine, "reviewer1", "r1@example.gov.cn")
    since = _last_id(engine)
    with Session(engine) as s:
        filings.add_comment(session=s, actor=_actor(engine, "zhengzhou"), filing_id=filing_id, body="draft thought")
        assert s.exec(select(Notification).where(Notification.id > since)).all()  # written in the same transaction
        s.rollback()
    assert _kinds(_new(engine, since)) == {}
    with Session(engine) as s:
        assert s.exec(select(OutboxEmail)).all() == []
        assert s.exec(select(Comment).where(Comment.body == "draft thought")).all() == []


# --- who is told: decisions ------------------------------------------------------------------------------------------


def test_a_proposal_asks_the_other_reviewers_and_its_countersignature_tells_the_city_and_the_proposer(
    engine, api, filing_in
):
    filing_id = filing_in("under_review")  # tier III: four eyes
    since = _last_id(engine)
    proposed = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"})
    assert proposed.get_json()["state"] == "proposed"
    assert _kinds(_new(engine, since)) == {"reviewer2": ["decision_proposed"]}

    since = _last_id(engine)
    decision = api("reviewer2").post(f"/api/v1/decisions/{proposed.get_json()['id']}/countersign").get_json()
    assert decision["state"] == "effective" and decision["filing_number"]
    assert _kinds(_new(engine, since)) == {"zhengzhou": ["decision_effective"], "reviewer1": ["decision_effective"]}

    item = api("zhengzhou").get("/api/v1/notifications?unread=true").get_json()["items"][0]
    assert item["kind"] == "decision_effective" and item["link"] == f"/filings/{filing_id}#decisions"
    assert "is effective: Approved." in item["text"] and decision["filing_number"] in item["text"]
    assert "已生效：已批准" in item["text_zh"] and f"备案编号：{decision['filing_number']}" in item["text_zh"]


def test_a_one_reviewer_decision_tells_the_city_not_the_reviewer_who_took_it(engine, api, filing_in, low_risk):
    filing_id = filing_in("under_review", document=low_risk)
    since = _last_id(engine)
    decision = api("reviewer1").post(
        f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "rejected", "reasons": ["Gap too large"]}
    )
    assert decision.get_json()["state"] == "effective"
    assert _kinds(_new(engine, since)) == {"zhengzhou": ["decision_effective"]}
    text = api("zhengzhou").get("/api/v1/notifications").get_json()["items"][0]["text"]
    assert text.endswith("is effective: Rejected.")  # no filing number for a rejection


def test_a_withdrawal_tells_the_other_reviewers_and_a_refusal_tells_the_proposer(engine, api, filing_in):
    filing_id = filing_in("under_review")
    first = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}).get_json()
    since = _last_id(engine)
    api("reviewer1").post(f"/api/v1/decisions/{first['id']}/withdraw", json={"reason": "Wrong audit attached"})
    assert _kinds(_new(engine, since)) == {"reviewer2": ["decision_withdrawn"]}

    second = api("reviewer1").post(f"/api/v1/filings/{filing_id}/decisions", json={"outcome": "approved"}).get_json()
    since = _last_id(engine)
    api("reviewer2").post(f"/api/v1/decisions/{second['id']}/withdraw", json={"reason": "The subgroup gap is large"})
    found = _new(engine, since)
    assert _kinds(found) == {"reviewer1": ["decision_refused"]}  # never the city: the reason is for reviewers
    assert found["reviewer1"][0].params["reason"] == "The subgroup gap is large"


# --- who is told: audits and the re-audit schedule -------------------------------------------------------------------


def test_a_finished_audit_tells_the_reviewer_who_started_it(engine, filing_in):
    filing_id = filing_in("under_review")
    reviewer2 = _user(engine, "reviewer2")
    done = _audit(engine, filing_id, state="done", verdict="meets", requested_by_id=reviewer2.id)
    failed = _audit(engine, filing_id, state="failed", error="Model refused (rejected)", requested_by_id=reviewer2.id)
    since = _last_id(engine)
    _finish(engine, done)
    _finish(engine, failed)
    found = _new(engine, since)
    assert _kinds(found) == {"reviewer2": ["audit_done", "audit_failed"]}
    assert [n.link for n in found["reviewer2"]] == [f"/audits/{done}", f"/audits/{failed}"]


def test_a_failing_audit_run_by_the_worker_notifies_its_requester(app, engine, filing_in):
    from registry.audit_jobs.worker import run_pending

    filing_id = filing_in("under_review")
    job_id = _audit(engine, filing_id, state="queued", requested_by_id=_user(engine, "reviewer1").id)
    with Session(engine) as s:  # a data set the engine does not know: the run fails at once, without a retry
        s.execute(sa.update(AuditJob.__table__).where(AuditJob.__table__.c.id == job_id).values(dataset="no-such-set"))
        s.commit()
    since = _last_id(engine)
    run_pending(engine=engine, content=app.extensions["registry"].content)
    assert _kinds(_new(engine, since)) == {"reviewer1": ["audit_failed"]}


def test_scheduled_reaudits_tell_every_reviewer_and_a_failed_one_also_the_city(engine, filing_in):
    filing_id = filing_in("approved")
    meets = _audit(engine, filing_id, state="done", verdict="meets", reason="reaudit")
    fails = _audit(engine, filing_id, state="done", verdict="does_not_meet", reason="reaudit")
    since = _last_id(engine)
    _finish(engine, meets)
    assert _kinds(_new(engine, since)) == {"reviewer1": ["audit_done"], "reviewer2": ["audit_done"]}
    since = _last_id(engine)
    _finish(engine, fails)
    assert _kinds(_new(engine, since)) == {
        "reviewer1": ["reaudit_failed"],
        "reviewer2": ["reaudit_failed"],
        "zhengzhou": ["reaudit_failed"],
    }


def test_a_due_reaudit_and_an_expiry_tell_the_reviewers_and_the_city(engine, filing_in):
    policy = policies.load()
    due_id = filing_in("approved")
    _audit(engine, due_id, state="done", verdict="meets")
    due = _filing(engine, due_id).next_audit_due
    since = _last_id(engine)
    with transaction(engine) as s:
        jobs = schedule.queue_due(session=s, now=due + timedelta(days=1), policy=policy)
    assert [j.filing_id for j in jobs] == [due_id]
    found = _new(engine, since)
    assert _kinds(found) == {name: ["reaudit_queued"] for name in ("zhengzhou", "reviewer1", "reviewer2")}
    assert found["zhengzhou"][0].link == f"/audits/{jobs[0].id}"
    assert found["zhengzhou"][0].params["due"] == due.date().isoformat()

    late = due + schedule.grace_period(tier=_filing(engine, due_id).risk_tier, policy=policy) + timedelta(days=1)
    since = _last_id(engine)
    with transaction(engine) as s:
        expired = schedule.expire_overdue(session=s, now=late, policy=policy)
    assert [e.filing.id for e in expired] == [due_id]
    found = _new(engine, since)
    assert _kinds(found) == {name: ["filing_expired"] for name in ("zhengzhou", "reviewer1", "reviewer2")}
    row = found["zhengzhou"][0]
    assert f"was due on {due.date().isoformat()}" in texts.render(row.kind, row.params, texts.EN)
    assert f"其复审应于 {due.date().isoformat()} 进行" in texts.render(row.kind, row.params, texts.ZH)


# --- the inbox on the web --------------------------------------------------------------------------------------------


def test_the_header_counts_unread_and_the_inbox_marks_them_read(engine, api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    _comment(api, filing_id, "reviewer1", "请补充子群体结果。Please add the subgroup results.")
    _comment(api, filing_id, "reviewer2", "And the test period.")
    client = browser_as("zhengzhou")

    page = client.get("/filings").get_data(as_text=True)
    assert "收件箱 (2 条未读)" in page

    inbox = client.get("/inbox").get_data(as_text=True)
    assert inbox.count(">未读</span>") == 2
    assert "reviewer1 对备案" in inbox and "发表了审查意见：请补充子群体结果。" in inbox
    assert f'href="/filings/{filing_id}#comments"' in inbox
    with Session(engine) as s:
        newest, older = s.exec(
            select(Notification.id)
            .where(Notification.user_id == _user(engine, "zhengzhou").id)
            .order_by(Notification.id.desc())
        ).all()
    assert inbox.index(f'id="notification-{newest}"') < inbox.index(f'id="notification-{older}"')  # newest first

    response = client.post(f"/inbox/{older}/read", data={"csrf_token": csrf_token(inbox)})
    assert response.status_code == 303
    page = client.get("/inbox").get_data(as_text=True)
    assert "收件箱 (1 条未读)" in page and page.count(">未读</span>") == 1

    client.set_cookie("lang", "en")
    page = client.get("/inbox").get_data(as_text=True)
    assert "Inbox (1 unread)" in page and "reviewer2 commented on filing" in page

    response = client.post("/inbox/read-all", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    page = client.get("/inbox").get_data(as_text=True)
    assert "unread)" not in page and ">Unread</span>" not in page and "Everything is read (2 in all)." in page


def test_mark_read_needs_the_csrf_token_and_anothers_notification_is_not_found(engine, api, browser_as, filing_in):
    filing_id = filing_in("under_review")
    _comment(api, filing_id, "zhengzhou", "For the reviewers.")
    reviewer1 = _user(engine, "reviewer1")
    with Session(engine) as s:
        reviewers_row = s.exec(select(Notification.id).where(Notification.user_id == reviewer1.id)).one()
    city = browser_as("zhengzhou")
    token = csrf_token(city.get("/inbox").get_data(as_text=True))
    assert city.post(f"/inbox/{reviewers_row}/read", data={"csrf_token": token}).status_code == 404
    reviewer = browser_as("reviewer1")
    assert reviewer.post(f"/inbox/{reviewers_row}/read").status_code == 400  # no CSRF token
    with Session(engine) as s:
        assert s.get(Notification, reviewers_row).read_at is None


# --- the inbox through the API ---------------------------------------------------------------------------------------


def test_the_api_lists_filters_and_marks_read_and_keeps_to_the_callers_own(engine, api, filing_in):
    filing_id = filing_in("under_review")
    _comment(api, filing_id, "reviewer1", "First remark.")
    _comment(api, filing_id, "reviewer1", "Second remark.")
    city = api("zhengzhou")

    listing = city.get("/api/v1/notifications").get_json()
    assert listing["total"] == 2 and listing["unread"] == 2 and listing["page"] == 1
    newest, older = listing["items"]
    assert "Second remark." in newest["text"] and newest["read"] is False and newest["read_at"] is None
    assert newest["title"] == "New comment" and newest["title_zh"] == "新的审查意见"

    marked = city.post(f"/api/v1/notifications/{older['id']}/read")
    assert marked.status_code == 200 and marked.get_json()["read"] is True
    again = city.post(f"/api/v1/notifications/{older['id']}/read").get_json()
    assert again["read_at"] == marked.get_json()["read_at"]  # marking twice keeps the first time
    unread = city.get("/api/v1/notifications?unread=true").get_json()
    assert [i["id"] for i in unread["items"]] == [newest["id"]] and unread["total"] == 1 and unread["unread"] == 1

    other = api("luoyang").post(f"/api/v1/notifications/{newest['id']}/read")
    assert other.status_code == 404 and other.mimetype == "application/problem+json"
    assert api("reviewer1").get("/api/v1/notifications").get_json()["total"] == 0

    assert city.post("/api/v1/notifications/read-all").get_json() == {"marked": 1, "unread": 0}
    assert city.get("/api/v1/notifications?unread=true").get_json()["items"] == []


@pytest.mark.parametrize(("query", "pointer"), [("unread=maybe", "/query/unread"), ("page=0", "/query/page")])
def test_a_bad_query_is_a_problem_naming_the_parameter(api, query, pointer):
    response = api("zhengzhou").get(f"/api/v1/notifications?{query}")
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert pointer in response.get_data(as_text=True)


# --- e-mail ----------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    """An SMTP server's handler that keeps what it receives, or refuses every recipient when told to."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse = False
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink():
    """A local SMTP server on a free port: ``(sink, port)``."""
    sink = Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def _settings(port: int, **kw) -> mailer.MailSettings:
    return mailer.MailSettings(
        host="127.0.0.1", port=port, sender="registry@ha.gov.cn", public_url="https://registry.example", **kw
    )


def _outbox(engine) -> list[OutboxEmail]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(OutboxEmail).order_by(OutboxEmail.id)))


def test_without_smtp_no_email_is_queued(engine, api, filing_in):
    _set_email(engine, "reviewer1", "r1@example.gov.cn")
    assert mailer.settings_for(engine) is None
    _comment(api, filing_id=filing_in("under_review"), user="zhengzhou", body="Hello")
    assert _outbox(engine) == []


def test_smtp_settings_come_from_the_environment_and_reach_the_services(tmp_path):
    found = config_module.from_environment(
        {"REGISTRY_SMTP_HOST": "smtp.example", "REGISTRY_SMTP_PORT": "587", "REGISTRY_SMTP_STARTTLS": "true"}
    )
    assert found == {"SMTP_HOST": "smtp.example", "SMTP_PORT": 587, "SMTP_STARTTLS": True}
    other = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "DATABASE_URL": "sqlite://",
            "SECRET_KEY": "x",
            "SMTP_HOST": "smtp.example",
            "SMTP_PORT": 587,
            "SMTP_STARTTLS": True,
        }
    )
    try:
        settings = mailer.settings_for(other.extensions["registry"].engine)
        assert (settings.host, settings.port, settings.starttls, settings.sender) == (
            "smtp.example",
            587,
            True,
            "registry@localhost",
        )
        assert "secret" not in repr(mailer.MailSettings(host="h", password="secret"))
    finally:
        other.extensions["registry"].engine.dispose()


def test_a_comment_is_emailed_to_the_reviewers_with_an_address(engine, api, filing_in, smtp_sink):
    sink, port = smtp_sink
    mailer.configure(engine, _settings(port))
    _set_email(engine, "reviewer1", "r1@example.gov.cn")  # reviewer2 has no address: inbox only
    filing_id = filing_in("under_review")
    _comment(api, filing_id, "zhengzhou", "第3节已补充。")
    [queued] = _outbox(engine)
    assert queued.state == "pending" and queued.recipient == "r1@example.gov.cn"
    assert sink.messages == []  # nothing is sent inside the request

    done = mailer.deliver_pending(engine, _settings(port))
    assert done == mailer.Delivery(sent=1)
    [(recipients, message)] = sink.messages
    assert recipients == ["r1@example.gov.cn"] and message["To"] == "r1@example.gov.cn"
    assert message["Subject"] == "新的审查意见 | New comment"
    assert message["From"] == "registry@ha.gov.cn"
    body = message.get_content()
    assert body.index("zhengzhou 对备案") < body.index("zhengzhou commented on filing")  # Chinese first
    assert f"查看：https://registry.example/filings/{filing_id}#comments" in body
    assert f"Open: https://registry.example/filings/{filing_id}#comments" in body
    [sent] = _outbox(engine)
    assert sent.state == "sent" and sent.sent_at is not None and sent.attempts == 1
    assert mailer.deliver_pending(engine, _settings(port)) == mailer.Delivery()  # never twice


def test_an_smtp_server_that_is_down_leaves_the_action_done_and_the_email_waiting(engine, api, filing_in, smtp_sink):
    sink, port = smtp_sink
    down = _settings(_free_port())  # nothing listens there
    mailer.configure(engine, down)
    _set_email(engine, "zhengzhou", "team@zhengzhou.gov.cn")
    _add_account(engine, "zhengzhou2", "city", "410100", email_address="deputy@zhengzhou.gov.cn")
    filing_id = filing_in("under_review")
    _comment(api, filing_id, "reviewer1", "Please add the subgroup results.")

    # The first e-mail finds the server down; the run stops there rather than spend the others' attempts.
    assert mailer.deliver_pending(engine, down) == mailer.Delivery(retrying=1)
    waiting, untouched = _outbox(engine)
    assert waiting.state == "pending" and waiting.attempts == 1 and "Connection" in waiting.last_error
    assert waiting.next_attempt_at > utcnow()  # it waits before the next attempt
    assert untouched.state == "pending" and untouched.attempts == 0 and untouched.last_error is None
    comments = api("zhengzhou").get(f"/api/v1/filings/{filing_id}/comments").get_json()["items"]
    assert [c["body"] for c in comments][-1] == "Please add the subgroup results."  # the action stands

    assert mailer.deliver_pending(engine, _settings(port)) == mailer.Delivery(sent=1)  # the first one waits
    later = utcnow() + timedelta(minutes=5)
    assert mailer.deliver_pending(engine, _settings(port), now=later) == mailer.Delivery(sent=1)
    assert sorted(r[0] for r, _m in sink.messages) == ["deputy@zhengzhou.gov.cn", "team@zhengzhou.gov.cn"]
    sent = {e.recipient: e for e in _outbox(engine)}["team@zhengzhou.gov.cn"]
    assert sent.state == "sent" and sent.attempts == 2 and sent.last_error is None


def test_a_refusing_smtp_server_is_retried_then_given_up(engine, api, filing_in, smtp_sink):
    sink, port = smtp_sink
    settings = _settings(port, max_attempts=2)
    mailer.configure(engine, settings)
    _set_email(engine, "reviewer1", "r1@example.gov.cn")
    _set_email(engine, "reviewer2", "r2@example.gov.cn")
    _comment(api, filing_in("under_review"), "zhengzhou", "Hello reviewers")
    sink.refuse = True

    # A refusal is about one e-mail: the run goes on to the next one.
    assert mailer.deliver_pending(engine, settings) == mailer.Delivery(retrying=2)
    for waiting in _outbox(engine):
        assert waiting.state == "pending" and "SMTPRecipientsRefused" in waiting.last_error
    later = utcnow() + timedelta(hours=2)
    assert mailer.deliver_pending(engine, settings, now=later) == mailer.Delivery(failed=2)
    for given_up in _outbox(engine):
        assert given_up.state == "failed" and given_up.attempts == 2 and "550" in given_up.last_error
    sink.refuse = False
    assert mailer.deliver_pending(engine, settings, now=later + timedelta(hours=2)) == mailer.Delivery()
    assert sink.messages == []


def test_two_senders_at_once_send_each_email_once(engine, smtp_sink):
    sink, port = smtp_sink
    settings = _settings(port)
    with transaction(engine) as s:
        for i in range(12):
            s.add(OutboxEmail(recipient=f"person{i}@example.gov.cn", subject=f"Subject {i}", body="Body"))
    start = threading.Barrier(2)
    results: list[mailer.Delivery] = []

    def send(name: str) -> None:
        start.wait()
        results.append(mailer.deliver_pending(engine, settings, worker=name))

    threads = [threading.Thread(target=send, args=(f"sender-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.sent for r in results) == 12
    received = sorted(recipients[0] for recipients, _m in sink.messages)
    assert received == sorted(f"person{i}@example.gov.cn" for i in range(12))  # each exactly once
    assert {e.state for e in _outbox(engine)} == {"sent"}


def test_the_command_sends_the_outbox(app, engine, monkeypatch, smtp_sink):
    sink, port = smtp_sink
    with transaction(engine) as s:
        s.add(OutboxEmail(recipient="team@luoyang.gov.cn", subject="Re-audit due", body="Body"))
    monkeypatch.setenv("REGISTRY_INSTANCE", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("REGISTRY_LOG_SIGNING_KEY_FILE", app.config["LOG_SIGNING_KEY_FILE"])
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("REGISTRY_SECRET_KEY", "test-secret-key")
    monkeypatch.delenv("REGISTRY_SMTP_HOST", raising=False)
    refused = CliRunner().invoke(main, ["mail", "send-pending"])
    assert refused.exit_code != 0 and "REGISTRY_SMTP_HOST" in refused.output
    monkeypatch.setenv("REGISTRY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REGISTRY_SMTP_PORT", str(port))
    result = CliRunner().invoke(main, ["mail", "send-pending"])
    assert result.exit_code == 0, result.output
    assert "Sent 1 e-mail(s)" in result.output
    assert [r for r, _m in sink.messages] == [["team@luoyang.gov.cn"]]


def test_the_background_thread_sends_what_is_waiting(engine, smtp_sink):
    sink, port = smtp_sink
    with transaction(engine) as s:
        s.add(OutboxEmail(recipient="r1@example.gov.cn", subject="Audit finished", body="Body"))
    thread = mailer.MailerThread(engine, _settings(port), poll_seconds=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not sink.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop(timeout=10)
    assert [r for r, _m in sink.messages] == [["r1@example.gov.cn"]]


def test_a_person_logs_in_and_reads_the_inbox_in_english(app, engine, api, filing_in):
    """The English inbox, end to end through the login form (the password is the fixtures')."""
    filing_id = filing_in("under_review")
    _comment(api, filing_id, "zhengzhou", "Ready for review.")
    client = app.test_client()
    client.set_cookie("lang", "en")
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"username": "reviewer2", "password": PASSWORD, "csrf_token": csrf_token(page)})
    inbox = client.get("/inbox").get_data(as_text=True)
    assert '<html lang="en">' in inbox and "Inbox (1 unread)" in inbox
    assert "zhengzhou commented on filing" in inbox and "Ready for review." in inbox
