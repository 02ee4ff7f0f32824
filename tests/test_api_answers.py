"""The API's JSON answers (registry.api_support.dumps): keys sorted, UTF-8 without escapes, and whatever the fast
writer cannot write still written — never a 500."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask import json as flask_json

from registry.api_support import dumps, json_response


@pytest.fixture
def plain_app():
    app = Flask(__name__)
    with app.app_context():
        yield app


def test_an_answer_has_its_keys_sorted_and_chinese_written_as_itself(plain_app):
    body = {"b": 1, "a": {"z": [1.5, None, True], "y": "郑州市"}}
    written = dumps(body)
    assert written.decode("utf-8") == '{"a":{"y":"郑州市","z":[1.5,null,true]},"b":1}'
    assert json.loads(written) == body


def test_an_answer_means_what_flasks_own_json_meant(plain_app):
    moment = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    for body in ({"at": moment, "list": ("a", "b")}, {3: "a number as a key", 1: "written as text"}):
        assert json.loads(dumps(body)) == json.loads(flask_json.dumps(body))  # a date as Flask writes one


def test_an_integer_beyond_64_bits_is_still_written(plain_app):
    huge = 2**70
    assert json.loads(dumps({"id": huge})) == {"id": huge}
    response = json_response({"id": huge})
    assert response.status_code == 200 and response.get_json() == {"id": huge}


def test_what_no_json_can_write_is_refused_as_before(plain_app):
    with pytest.raises(TypeError):
        dumps({"value": object()})
