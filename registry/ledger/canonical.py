"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) of a decision-log record: the bytes of a log leaf.

The serialisation is the ``rfc8785`` package's. Before it runs, the value is walked so that anything RFC 8785 (which
is I-JSON, RFC 7493) cannot represent is refused with the JSON Pointer of the offending member: NaN and ±Infinity,
integers beyond ±(2^53 − 1) (they would not survive a round trip through an IEEE 754 double), strings with lone
surrogates, non-string object keys, and types JSON does not have (dates, Decimals, bytes, sets …: convert them first,
e.g. a timestamp to its RFC 3339 string).
"""

from __future__ import annotations

import math

import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalJSONError(ValueError):
    """The value has no RFC 8785 form; ``pointer`` is the JSON Pointer (RFC 6901) of the member at fault."""

    def __init__(self, pointer: str, reason: str):
        self.pointer = pointer
        self.reason = reason
        super().__init__(f"{pointer or '/'}: {reason}")


def canonical_json(obj: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``obj`` (dicts, lists/tuples, str, int, float, bool, None).

    Raises CanonicalJSONError naming the JSON Pointer of the first member that RFC 8785 cannot represent.
    """
    _check(obj, "")
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:  # _check should have caught it; keep the promise of one error type
        raise CanonicalJSONError("", str(exc)) from exc


def _check(value: object, pointer: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJSONError(pointer, f"integer {value} is outside ±(2^53 − 1); send it as a string")
        return
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CanonicalJSONError(pointer, f"{value} is not a JSON number (RFC 8785 has no NaN or Infinity)")
        return
    if isinstance(value, str):
        _check_string(value, pointer)
        return
    if isinstance(value, dict):
        for key, member in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(pointer, f"object key {key!r} is not a string")
            _check_string(key, pointer)
            _check(member, f"{pointer}/{_escape(key)}")
        return
    if isinstance(value, list | tuple):
        for position, member in enumerate(value):
            _check(member, f"{pointer}/{position}")
        return
    raise CanonicalJSONError(pointer, f"{type(value).__name__} is not a JSON type")


def _check_string(value: str, pointer: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJSONError(pointer, "string contains a lone surrogate, which is not valid Unicode") from None


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
