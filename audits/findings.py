"""Findings of the explainability step: one plain sentence each, in English and in Chinese.

Each finding has a stable ``code``, a ``severity`` (``"concern"``: the reviewer should look; ``"info"``), the input
and attribute it is about, the figures behind it, and ``text_en`` / ``text_zh`` built from the templates below, so
that the same figures always read the same way. Codes:

=============================  ==========================================================================
``top_inputs``                 the inputs whose shuffling lowers accuracy most
``no_important_input``         no input lowers accuracy when shuffled
``undeclared_proxy``           an input predicts a sensitive attribute; the technical document does not say so
``declared_proxy``             an input predicts a sensitive attribute, as the technical document declares
``proxy``                      an input predicts a sensitive attribute; no technical document was given
``direct_use``                 the model takes a sensitive attribute (or a declared proxy) as an input
``undeclared_sensitive_input`` the same, for an input the technical document does not declare sensitive
=============================  ==========================================================================
"""

from __future__ import annotations

__all__ = ["CODES", "direct_use", "proxy", "top_inputs"]

CODES = (
    "top_inputs",
    "no_important_input",
    "undeclared_proxy",
    "declared_proxy",
    "proxy",
    "direct_use",
    "undeclared_sensitive_input",
)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def _join_en(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def top_inputs(rows: list[dict], limit: int) -> dict:
    """The finding naming the inputs that drive the decisions (``rows``: overall importance, largest first)."""
    drivers = [r for r in rows if r["importance"] > 0][:limit]
    if not drivers:
        return {
            "code": "no_important_input",
            "severity": "info",
            "figures": {},
            "text_en": "Shuffling any single input leaves the accuracy unchanged or higher: "
            "no one input drives the decisions on its own.",
            "text_zh": "逐一打乱任何一个输入，准确率都不下降：没有哪个输入单独决定结果。",
        }
    first, rest = drivers[0], drivers[1:]
    en = f"Decisions depend most on {first['input']} (accuracy falls by {_points(first['importance'])} points when it is shuffled)"
    zh = f"决定最依赖 {first['input']}（打乱后准确率下降 {_points(first['importance'])} 个百分点）"
    if rest:
        en += ", then " + _join_en([f"{r['input']} ({_points(r['importance'])})" for r in rest])
        zh += "，其次是 " + "、".join(f"{r['input']}（{_points(r['importance'])}）" for r in rest)
    return {
        "code": "top_inputs",
        "severity": "info",
        "inputs": [r["input"] for r in drivers],
        "figures": {r["input"]: r["importance"] for r in drivers},
        "text_en": en + ".",
        "text_zh": zh + "。",
    }


def proxy(row: dict) -> dict:
    """The finding for a flagged proxy row of the proxy table."""
    name, attribute, auc = row["input"], row["attribute"], row["auc"]
    declared = row["declared"]
    head_en = f"{name} predicts {attribute} (AUC {auc:.2f})"
    head_zh = f"{name} 能预测 {attribute}（AUC {auc:.2f}）"
    if declared is None:
        code, severity = "proxy", "concern"
        en, zh = f"{head_en}; no technical document was given to compare.", f"{head_zh}，未提供技术文档以供比对。"
    elif declared:
        code, severity = "declared_proxy", "info"
        en, zh = f"{head_en}, as the technical document declares.", f"{head_zh}，与技术文档的声明一致。"
    else:
        code, severity = "undeclared_proxy", "concern"
        en = f"{head_en}; the technical document does not declare it as a proxy."
        zh = f"{head_zh}，技术文档未声明该代理变量。"
    return {
        "code": code,
        "severity": severity,
        "input": name,
        "attribute": attribute,
        "figures": {"auc": auc, "nmi": row["nmi"]},
        "text_en": en,
        "text_zh": zh,
    }


def direct_use(test: dict) -> dict:
    """The finding for one flip test (see :mod:`audits.explain`)."""
    name = test["input"]
    share = test["flip_share"]
    # The groups of the attribute the input is (or stands in for), when the audit breaks results down by it.
    parts = [
        f"{attribute} = {value}: {_pct(g['flip_share'])}"
        for attribute in test["attributes"]
        for g in test["by_attribute"].get(attribute, [])
        for value in g["group"].values()
    ]
    if "declared_proxy" in test["reasons"] and "sensitive_attribute" not in test["reasons"]:
        what_en = f"{name}, declared as a proxy for {', '.join(test['attributes'])},"
        what_zh = f"{name}（已声明为 {'、'.join(test['attributes'])} 的代理变量）"
    else:
        what_en = what_zh = name
    en = f"The model takes {what_en} as an input: changing only {name} changes {_pct(share)} of decisions"
    zh = f"模型以 {what_zh} 作为输入：仅改变 {name} 会改变 {_pct(share)} 的决定"
    if parts:
        en += f" ({'; '.join(parts)})"
        zh += f"（{'；'.join(parts)}）"
    en, zh = en + ".", zh + "。"
    undeclared = test["declared_sensitive"] is False and "sensitive_attribute" in test["reasons"]
    if undeclared:
        en += " The technical document does not declare it as a sensitive attribute."
        zh += "技术文档未将其声明为敏感属性。"
    finding = {
        "code": "undeclared_sensitive_input" if undeclared else "direct_use",
        "severity": "concern" if undeclared or (share or 0) > 0 else "info",
        "input": name,
        "figures": {"flip_share": share},
        "text_en": en,
        "text_zh": zh,
    }
    if test["attributes"]:
        finding["attribute"] = ", ".join(test["attributes"])
    return finding
