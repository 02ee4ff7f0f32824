"""RFC 8785 canonical JSON: the RFC's own examples (§3.2.2, §3.2.3, Appendix B), and clear refusals."""

from __future__ import annotations

import datetime as dt
import json
import struct

import pytest

from registry.ledger.canonical import CanonicalJSONError, canonical_json


def test_rfc_8785_section_3_2_2_example():
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(source)) == expected.encode("utf-8")


def test_keys_are_sorted_by_utf16_code_units_rfc_8785_section_3_2_3():
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(source)))
    # U+1F600 is the surrogate pair D83D DE00, so it sorts BEFORE U+FB33 although its code point is larger.
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("ieee", "expected"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af6", "1e+23"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555555", "333333333.3333333"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_number_formatting_rfc_8785_appendix_b(ieee, expected):
    value = struct.unpack(">d", bytes.fromhex(ieee))[0]
    assert canonical_json([value]) == f"[{expected}]".encode()


def test_the_same_record_always_gives_the_same_bytes():
    a = {"outcome": "approved", "filing": "豫算备410100-2026-0001", "conditions": ["a", "b"], "tier": 3}
    b = {"tier": 3, "conditions": ("a", "b"), "filing": "豫算备410100-2026-0001", "outcome": "approved"}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a).decode("utf-8").count(" ") == 0
    assert "豫".encode() in canonical_json(a)  # UTF-8, not \\u escapes


@pytest.mark.parametrize(
    ("value", "pointer", "reason"),
    [
        ({"score": float("nan")}, "/score", "NaN"),
        ({"a": [1, float("inf")]}, "/a/1", "Infinity"),
        ({"a/b": {"c~d": -float("inf")}}, "/a~1b/c~0d", "Infinity"),
        ({"big": 2**53}, "/big", "outside"),
        ({"when": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "/when", "not a JSON type"),
        ({1: "x"}, "", "not a string"),
        ({"s": "\ud800"}, "/s", "surrogate"),
        ([b"bytes"], "/0", "not a JSON type"),
    ],
)
def test_values_without_a_canonical_form_are_refused_with_their_pointer(value, pointer, reason):
    with pytest.raises(CanonicalJSONError, match=reason) as caught:
        canonical_json(value)
    assert caught.value.pointer == pointer
    assert isinstance(caught.value, ValueError)


def test_the_largest_safe_integers_are_accepted():
    assert canonical_json([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"
