"""Validation of documents against the JSON Schema contracts in ``schemas/``.

No Flask here: the API, the web forms and the audit engine all call :func:`validate` (or :func:`validate_draft`
for drafts) and get back every error, each with an RFC 6901 JSON Pointer to the offending value and a message in
English and in Simplified Chinese.

Schemas refer to each other by ``$id`` (``urn:algorithm-registry:schema:<name>:1``); those references are
resolved from a local :class:`referencing.Registry`, never over the network. Formats are checked: ``date``,
``date-time`` (RFC 3339, checked here without extra packages) and ``email`` (a stricter check than jsonschema's
own, which only looks for an "@").
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import schemas as _schemas  # the package this module belongs to: finds and loads the files

__all__ = ["FieldError", "schema", "schema_id", "validate", "validate_draft"]

_DRAFT_IGNORED = frozenset({"required", "minItems"})


@dataclass(frozen=True)
class FieldError:
    """One validation error.

    ``pointer`` is the RFC 6901 JSON Pointer of the offending value (for a missing required property, of the
    missing property itself; for an unknown property, of that property), prefixed by the caller's
    ``pointer_prefix``. ``keyword`` is the JSON Schema keyword that failed.
    """

    pointer: str
    keyword: str
    message: str
    message_zh: str

    def to_json(self) -> dict:
        """Return ``{"pointer", "keyword", "message", "message_zh"}``."""
        return {
            "pointer": self.pointer,
            "keyword": self.keyword,
            "message": self.message,
            "message_zh": self.message_zh,
        }


# --------------------------------------------------------------------------------------------- formats

_RE_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$", re.ASCII
)
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_RE_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    rf"@{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+$",
    re.ASCII,
)


def _is_date_time(instance: object) -> bool:
    """RFC 3339 ``date-time``: a real calendar date and time with a mandatory offset."""
    if not isinstance(instance, str):
        return True
    m = _RE_DATE_TIME.fullmatch(instance)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        _dt.date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return False
    if m.group(9) and (int(m.group(10)) > 23 or int(m.group(11)) > 59):
        return False
    return True


def _is_email(instance: object) -> bool:
    """An ASCII address ``local@domain.tld``; stricter than jsonschema's own check, which only wants an "@"."""
    if not isinstance(instance, str):
        return True
    return len(instance) <= 254 and len(instance.split("@")[0]) <= 64 and bool(_RE_EMAIL.fullmatch(instance))


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, (func, raises) in Draft202012Validator.FORMAT_CHECKER.checkers.items():
        checker.checks(name, raises)(func)
    checker.checks("date-time")(_is_date_time)
    checker.checks("email")(_is_email)
    return checker


_FORMAT_CHECKER = _format_checker()


# --------------------------------------------------------------------------------------------- schemas


def schema(name: str) -> dict:
    """Return the schema called ``name`` (one of ``schemas.NAMES``) as a dict; raise KeyError for an unknown name."""
    return _schemas.load(name)


def schema_id(name: str) -> str:
    """Return the ``$id`` of the schema called ``name``; raise KeyError for an unknown name."""
    return _schemas._load(name)["$id"]


@functools.cache
def _registry() -> Registry:
    return (
        Registry()
        .with_resources(
            (_schemas._load(n)["$id"], DRAFT202012.create_resource(_schemas._load(n))) for n in _schemas.NAMES
        )
        .crawl()
    )


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_schemas._load(name), registry=_registry(), format_checker=_FORMAT_CHECKER)


# --------------------------------------------------------------------------------------------- messages

_TYPE_EN = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
_TYPE_ZH = {
    "string": "字符串",
    "integer": "整数",
    "number": "数字",
    "boolean": "布尔值（true 或 false）",
    "object": "对象",
    "array": "数组",
    "null": "空值（null）",
}
_FORMAT_EN = {
    "date": "a date in the form YYYY-MM-DD",
    "date-time": "a date and time in RFC 3339 form, e.g. 2026-01-31T09:30:00+08:00",
    "email": "an e-mail address",
}
_FORMAT_ZH = {
    "date": "日期（格式为 YYYY-MM-DD）",
    "date-time": "日期时间（RFC 3339 格式，如 2026-01-31T09:30:00+08:00）",
    "email": "电子邮件地址",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: object, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_zh(value: object, limit: int = 60) -> str:
    text = f"“{value}”" if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(values: Iterable[object], sep: str) -> str:
    return sep.join(str(v) if not isinstance(v, str) else v for v in values)


def _messages(keyword: str, value: object, error: ValidationError, prop: str | None) -> tuple[str, str]:
    """English and Chinese message for one error, built from its keyword and parameters."""
    vv = error.validator_value
    got_en = _TYPE_EN.get(_json_type(value), _json_type(value))
    got_zh = _TYPE_ZH.get(_json_type(value), _json_type(value))
    if keyword == "required":
        return (f"The required property '{prop}' is missing.", f"缺少必填字段“{prop}”。")
    if keyword == "additionalProperties":
        return (f"The property '{prop}' is not allowed here.", f"不允许出现字段“{prop}”。")
    if keyword == "type":
        types = [vv] if isinstance(vv, str) else list(vv)
        return (
            f"Expected {' or '.join(_TYPE_EN.get(t, t) for t in types)}, got {got_en}.",
            f"类型错误：应为{'或'.join(_TYPE_ZH.get(t, t) for t in types)}，实际为{got_zh}。",
        )
    if keyword == "enum":
        return (
            f"The value {_short(value)} is not allowed; expected one of: {_join(vv, ', ')}.",
            f"取值{_short_zh(value)}无效，允许的取值为：{_join(vv, '、')}。",
        )
    if keyword == "const":
        return (f"The value must be exactly {_short(vv)}.", f"取值必须为{_short_zh(vv)}。")
    if keyword == "format":
        return (
            f"The value {_short(value)} is not {_FORMAT_EN.get(vv, f'in the format {vv}')}.",
            f"取值{_short_zh(value)}不是有效的{_FORMAT_ZH.get(vv, f'“{vv}”格式')}。",
        )
    if keyword == "minLength":
        if vv == 1:
            return ("The value must not be empty.", "取值不能为空。")
        return (f"The value must be at least {vv} characters long.", f"长度不得少于 {vv} 个字符。")
    if keyword == "maxLength":
        return (
            f"The value is {len(value)} characters long; at most {vv} are allowed.",
            f"长度为 {len(value)} 个字符，不得超过 {vv} 个字符。",
        )
    if keyword == "pattern":
        return (
            f"The value {_short(value)} does not have the expected form (pattern {vv}).",
            f"取值{_short_zh(value)}格式不正确（应符合 {vv}）。",
        )
    if keyword == "minimum":
        return (f"The value must be at least {vv}.", f"取值不得小于 {vv}。")
    if keyword == "maximum":
        return (f"The value must be at most {vv}.", f"取值不得大于 {vv}。")
    if keyword == "exclusiveMinimum":
        return (f"The value must be greater than {vv}.", f"取值必须大于 {vv}。")
    if keyword == "exclusiveMaximum":
        return (f"The value must be less than {vv}.", f"取值必须小于 {vv}。")
    if keyword == "minItems":
        return (f"The list must contain at least {vv} item{'s' if vv != 1 else ''}.", f"至少应包含 {vv} 项。")
    if keyword == "maxItems":
        return (f"The list must contain at most {vv} item{'s' if vv != 1 else ''}.", f"最多只能包含 {vv} 项。")
    if keyword == "uniqueItems":
        return ("The list must not contain duplicate items.", "列表中不得有重复项。")
    if keyword == "minProperties":
        return (f"The object must have at least {vv} propert{'ies' if vv != 1 else 'y'}.", f"至少应包含 {vv} 个字段。")
    if keyword == "maxProperties":
        return (f"The object must have at most {vv} propert{'ies' if vv != 1 else 'y'}.", f"最多只能包含 {vv} 个字段。")
    if keyword in ("oneOf", "anyOf"):
        return (
            "The value does not match any of the allowed forms; check which fields it combines.",
            "取值不符合任何一种允许的形式，请检查字段组合。",
        )
    return (
        f"The value does not satisfy the '{keyword}' rule: {error.message}.",
        f"取值不符合规范要求（校验规则：{keyword}）。",
    )


# --------------------------------------------------------------------------------------------- pointers


def _escape(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _pointer(prefix: str, path: Iterable[object]) -> str:
    return prefix + "".join("/" + _escape(t) for t in path)


def _unknown_properties(instance: dict, subschema: dict) -> list[str]:
    known = subschema.get("properties", {})
    patterns = [re.compile(p) for p in subschema.get("patternProperties", {})]
    return [p for p in instance if p not in known and not any(r.search(p) for r in patterns)]


def _field_errors(error: ValidationError, prefix: str) -> list[FieldError]:
    keyword = str(error.validator)
    path = list(error.absolute_path)
    instance = error.instance
    if keyword == "required" and isinstance(instance, dict):
        missing = [p for p in error.validator_value if p not in instance]
        return [FieldError(_pointer(prefix, [*path, p]), keyword, *_messages(keyword, None, error, p)) for p in missing]
    if keyword == "additionalProperties" and isinstance(instance, dict) and error.validator_value is False:
        extra = _unknown_properties(instance, error.schema if isinstance(error.schema, dict) else {})
        return [
            FieldError(_pointer(prefix, [*path, p]), keyword, *_messages(keyword, instance[p], error, p)) for p in extra
        ]
    return [FieldError(_pointer(prefix, path), keyword, *_messages(keyword, instance, error, None))]


def _all_errors(name: str, instance: object, pointer_prefix: str) -> list[FieldError]:
    found: dict[tuple[str, str, str], FieldError] = {}
    for error in _validator(name).iter_errors(instance):
        for fe in _field_errors(error, pointer_prefix):
            found.setdefault((fe.pointer, fe.keyword, fe.message), fe)
    return [found[k] for k in sorted(found)]


def validate(name: str, instance: object, *, pointer_prefix: str = "") -> list[FieldError]:
    """Validate ``instance`` against the schema called ``name`` and return every error (empty list: valid).

    Errors are sorted by pointer, then keyword, then message. ``pointer_prefix`` (itself a JSON Pointer such as
    ``"/technical_document"``) is put in front of every pointer. Formats are checked. Raises KeyError for an
    unknown schema name.
    """
    return _all_errors(name, instance, pointer_prefix)


def validate_draft(name: str, instance: object, *, pointer_prefix: str = "") -> list[FieldError]:
    """Like :func:`validate`, but for a draft: missing properties ("required") and too short lists ("minItems")
    are not errors. Wrong types, unknown properties, bad formats and everything else still are.
    """
    return [e for e in _all_errors(name, instance, pointer_prefix) if e.keyword not in _DRAFT_IGNORED]
