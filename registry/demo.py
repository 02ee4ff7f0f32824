"""Demo mode: the Henan province, its demo accounts, and filings in every state of the lifecycle.

Only `registry serve --demo` and `registry demo load` call this; without them there are no default accounts.
"""

from __future__ import annotations

import copy
import io
import json
from functools import cache
from importlib import resources

import onnx
from onnx import TensorProto, helper
from sqlmodel import Session, select

from registry.accounts import service as accounts
from registry.accounts.models import User
from registry.authz import SYSTEM_ACTOR
from registry.cities import service as cities
from registry.decisions import service as decisions
from registry.decisions.models import DecisionState, Outcome
from registry.filings import service as filings
from registry.filings.lifecycle import Action
from registry.filings.models import Filing
from registry.storage.files import ContentStore

DEMO_PASSWORD = "demo-password"  # noqa: S105 - the documented demo password, demo mode only
PROVINCE_CODE = "410000"

ACCOUNTS = (
    ("zhengzhou", "city", "410100", "郑州市大数据管理局 Zhengzhou city team"),
    ("luoyang", "city", "410300", "洛阳市政务服务中心 Luoyang city team"),
    ("anyang", "city", "410500", "安阳市医疗保障局 Anyang city team"),
    ("xuchang", "city", "411000", "许昌市住房和城乡建设局 Xuchang city team"),
    ("linzhou", "city", "410581", "林州市人力资源和社会保障局 Linzhou city team"),
    ("lankao", "city", "410225", "兰考县民政局 Lankao county team"),
    ("reviewer1", "reviewer", None, "省级审核员一 Provincial reviewer 1"),
    ("reviewer2", "reviewer", None, "省级审核员二 Provincial reviewer 2"),
    ("admin", "admin", None, "系统管理员 Administrator"),
)

# The path of steps that brings a new filing to each state, in the order the demo files them. A "decision" step is
# proposed by the reviewer and, on tiers III and IV, countersigned by a second reviewer (registry.decisions).
PATHS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "draft": (),
    "submitted": (("city", Action.SUBMIT, ""),),
    "under_review": (("city", Action.SUBMIT, ""), ("reviewer", Action.START_REVIEW, "")),
    "changes_requested": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        (
            "reviewer",
            Action.REQUEST_CHANGES,
            "测试报告缺少按户籍类型分组的结果，请补充。Please add results by residence type.",
        ),
    ),
    "resubmitted": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        ("reviewer", Action.REQUEST_CHANGES, "请补充人工复核流程说明。Please describe the human review step."),
        ("city", Action.RESUBMIT, ""),
    ),
    "approved": (("city", Action.SUBMIT, ""), ("reviewer", Action.START_REVIEW, ""), ("decision", Action.APPROVE, "")),
    "approved_with_conditions": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        ("decision", Action.APPROVE_WITH_CONDITIONS, "每季度报送分组准确率。Report per-group accuracy every quarter."),
    ),
    "rejected": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        (
            "decision",
            Action.REJECT,
            "女性申请人的通过率低于男性的 80%。Selection rate for women is below 80% of men's.",
        ),
    ),
    "suspended": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        ("decision", Action.APPROVE, ""),
        ("reviewer", Action.SUSPEND, "复审发现数据漂移，暂停使用。Re-audit found data drift."),
    ),
    "revoked": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        ("decision", Action.APPROVE, ""),
        ("reviewer", Action.REVOKE, "该算法已停止使用。The algorithm is no longer in use."),
    ),
    "expired": (
        ("city", Action.SUBMIT, ""),
        ("reviewer", Action.START_REVIEW, ""),
        ("decision", Action.APPROVE, ""),
        ("system", Action.EXPIRE, "复审逾期超过宽限期。Re-audit overdue beyond the grace period."),
    ),
    "withdrawn": (("city", Action.WITHDRAW, "重复提交。Filed twice by mistake."),),
}


@cache
def documents() -> tuple[list[dict], list[dict]]:
    """The demo technical documents and test reports (parallel lists), as shipped in registry/demo_data."""
    folder = resources.files("registry") / "demo_data"
    technical = json.loads((folder / "technical_documents.json").read_text("utf-8"))
    reports = json.loads((folder / "test_reports.json").read_text("utf-8"))
    return technical, reports


def tiny_model_bytes(n_inputs: int = 4, seed: float = 0.1) -> bytes:
    """A small, valid ONNX logistic model (float input X[N, n_inputs] → probability and label), for demos and tests."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [n_inputs, 1], [seed * (i + 1) for i in range(n_inputs)])
    bias = helper.make_tensor("B", TensorProto.FLOAT, [1], [-0.5])
    threshold = helper.make_tensor("T", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["Z"]),
        helper.make_node("Sigmoid", ["Z"], ["probability"]),
        helper.make_node("Greater", ["probability", "T"], ["label"]),
    ]
    graph = helper.make_graph(
        nodes,
        "demo_logistic",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_inputs])],
        [
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("label", TensorProto.BOOL, [None, 1]),
        ],
        initializer=[weights, bias, threshold],
    )
    model = helper.make_model(graph, producer_name="registry-demo", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _actor(session: Session, username: str):
    return accounts.actor_for(accounts.get_user_by_name(session=session, username=username))


def file_to_state(
    *,
    session: Session,
    content: ContentStore,
    city_user: str,
    reviewer_user: str,
    technical_document: dict,
    test_report: dict,
    state: str,
    supersedes_filing_id: int | None = None,
    province: str = "豫",
    countersigner_user: str = "reviewer2",
) -> Filing:
    """File one algorithm as ``city_user`` and walk it to ``state`` along PATHS (used by the demo and the tests).

    Decisions go through registry.decisions: proposed by ``reviewer_user`` and, when the filing's risk tier needs
    it, countersigned by ``countersigner_user``.
    """
    city = _actor(session, city_user)
    reviewer = _actor(session, reviewer_user)
    filing = filings.create_draft(
        session=session,
        actor=city,
        technical_document=technical_document,
        test_report=test_report,
        supersedes_filing_id=supersedes_filing_id,
    )
    filings.attach_file(
        session=session,
        content=content,
        actor=city,
        filing_id=filing.id,
        kind=filings.MODEL,
        stream=io.BytesIO(tiny_model_bytes(seed=0.05 + filing.id / 100)),
        filename="model.onnx",
        max_bytes=10 * 1024 * 1024,
    )
    by = {"city": city, "reviewer": reviewer, "system": SYSTEM_ACTOR}
    for who, action, reason in PATHS[state]:
        if who == "decision":
            _decide(session, filing, action, reason, reviewer, _actor(session, countersigner_user), province)
            continue
        filings.apply_transition(
            session=session, actor=by[who], filing=filing, action=action, reason=reason, province=province
        )
        if action == Action.REQUEST_CHANGES:
            filings.add_comment(session=session, actor=reviewer, filing_id=filing.id, body=reason)
            if state == "resubmitted":
                filings.add_comment(
                    session=session, actor=city, filing_id=filing.id, body="已补充。Added in section 3."
                )
    return filing


def _decide(session: Session, filing: Filing, action: str, text: str, proposer, countersigner, province: str) -> None:
    outcome = {Action.APPROVE: Outcome.APPROVED, Action.APPROVE_WITH_CONDITIONS: Outcome.APPROVED_WITH_CONDITIONS}.get(
        action, Outcome.REJECTED
    )
    decision = decisions.propose(
        session=session,
        actor=proposer,
        filing_id=filing.id,
        outcome=outcome,
        conditions=[text] if outcome == Outcome.APPROVED_WITH_CONDITIONS else [],
        reasons=[text] if outcome == Outcome.REJECTED else [],
        province=province,
    )
    if decision.state == DecisionState.PROPOSED:
        decisions.countersign(session=session, actor=countersigner, decision_id=decision.id, province=province)
    session.refresh(filing)


def load(*, session: Session, content: ContentStore) -> str:
    """Seed the demo (once: a second call changes nothing). Returns a one-line summary."""
    for code, name_zh, name_en in cities.HENAN:
        cities.add_city(session=session, code=code, name_zh=name_zh, name_en=name_en, province_code=PROVINCE_CODE)
    if session.exec(select(User).where(User.username == "admin")).first() is not None:
        return "already loaded"
    for username, role, city_code, display_name in ACCOUNTS:
        accounts.create_user(
            session=session,
            username=username,
            password=DEMO_PASSWORD,
            role=role,
            city_code=city_code,
            display_name=display_name,
        )
    technical, reports = documents()
    usernames = {code: name for name, _role, code, _d in ACCOUNTS if code}
    count = 0
    states = list(PATHS)
    for index, (document, report) in enumerate(zip(technical, reports, strict=True)):
        # Spread the states over the documents; Zhengzhou and Luoyang get more, so their demo logins show a mix.
        for state in (states[(index * 2) % len(states)], states[(index * 2 + 1) % len(states)]):
            file_to_state(
                session=session,
                content=content,
                city_user=usernames[document["city_code"]],
                reviewer_user="reviewer1",
                technical_document=copy.deepcopy(document),
                test_report=copy.deepcopy(report),
                state=state,
            )
            count += 1
    # A new version superseding an approved one.
    first = technical[0]
    old = file_to_state(
        session=session,
        content=content,
        city_user=usernames[first["city_code"]],
        reviewer_user="reviewer1",
        technical_document=copy.deepcopy(first),
        test_report=copy.deepcopy(reports[0]),
        state="approved",
    )
    newer = copy.deepcopy(first)
    newer["algorithm"]["version"] = newer["algorithm"]["version"] + "-r2"
    file_to_state(
        session=session,
        content=content,
        city_user=usernames[first["city_code"]],
        reviewer_user="reviewer1",
        technical_document=newer,
        test_report=copy.deepcopy(reports[0]),
        state="approved",
        supersedes_filing_id=old.id,
    )
    count += 2
    return f"{len(cities.HENAN)} cities, {len(ACCOUNTS)} accounts, {count} filings"
