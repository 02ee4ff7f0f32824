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
    model_bytes: bytes | None = None,
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
        stream=io.BytesIO(model_bytes if model_bytes is not None else tiny_model_bytes(seed=0.05 + filing.id / 100)),
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
    # One filing whose model really fits a reference data set, so that a reviewer can run an audit in the demo.
    document, report = credit_pilot(technical[1], reports[1])
    file_to_state(
        session=session,
        content=content,
        city_user=usernames[document["city_code"]],
        reviewer_user="reviewer1",
        technical_document=document,
        test_report=report,
        state="under_review",
        model_bytes=credit_model_bytes(),
    )
    count += 1
    return f"{len(cities.HENAN)} cities, {len(ACCOUNTS)} accounts, {count} filings"


# The German credit columns the demo's personal-credit model reads, in order, with their meaning in Chinese.
CREDIT_INPUTS = (
    ("duration", "贷款期限（月）。"),
    ("credit_amount", "贷款金额。"),
    ("installment_rate", "分期还款额占可支配收入的比例（1–4 档）。"),
    ("present_residence_since", "现住址居住年限（1–4 档）。"),
    ("age", "申请人年龄（岁）。"),
    ("number_of_existing_credits", "在本行已有贷款笔数。"),
)


def credit_pilot(document: dict, report: dict) -> tuple[dict, dict]:
    """A personal-credit filing whose inputs are columns of the German credit reference data set."""
    document, report = copy.deepcopy(document), copy.deepcopy(report)
    document["algorithm"].update(
        name_zh="个人消费信贷信用评估模型（参考数据试点）",
        name_en="Personal consumer credit scoring model (reference-data pilot)",
        version="0.9.0",
    )
    document["model"]["type"] = "logistic regression"
    document["model"]["inputs"] = [
        {
            "name": name,
            "type": "numeric",
            "description": description,
            "personal_data": True,
            "sensitive_attribute": name == "age",
            "likely_proxy_for": [],
        }
        for name, description in CREDIT_INPUTS
    ]
    document["model"]["output"]["favourable_label"] = "1"
    report["favourable_label"] = "1"
    return document, report


def credit_model_bytes() -> bytes:
    """A logistic regression fitted on German credit's numeric columns, as an ONNX LinearClassifier (labels 1 = good
    credit, 2 = bad), built with onnx.helper so that no converter is needed at run time."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from audits import reference

    data = reference.load("german-credit")
    columns = [name for name, _ in CREDIT_INPUTS]
    x = data.features[columns].to_numpy(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    model = LogisticRegression(max_iter=500).fit((x - mean) / scale, np.where(data.y_true, 1, 2))
    # Fold the standardisation into the coefficients: w·(x - m)/s + b = (w/s)·x + (b - Σ w m / s).
    weights = model.coef_[0] / scale
    bias = float(model.intercept_[0] - np.sum(model.coef_[0] * mean / scale))
    # LinearClassifier with two classes: score 0 for class 1 and z for class 2 (sklearn's positive class), so that
    # the softmax gives class 2 the probability sigmoid(z), exactly as LogisticRegression does.
    coefficients = [0.0] * len(weights) + [float(w) for w in weights]
    node = helper.make_node(
        "LinearClassifier",
        ["X"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        classlabels_ints=[1, 2],
        coefficients=coefficients,
        intercepts=[0.0, bias],
        post_transform="SOFTMAX",
    )
    graph = helper.make_graph(
        [node],
        "credit_pilot",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, len(columns)])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
    )
    onnx_model = helper.make_model(
        graph,
        producer_name="registry-demo",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    return onnx_model.SerializeToString()
