"""How audit figures are written (registry.web.figures), checked against the Jinja macros they replaced: the same
text for every kind of value a report holds."""

from __future__ import annotations

import pytest
from jinja2 import DictLoader, Environment

from registry.web import figures

# The macros as they were in templates/audit_jobs/_macros.html, the reference these functions must agree with.
MACROS = """\
{% macro pct(value) %}{% if value is number %}{{ '%.1f'|format(value * 100) }} %{% else %}—{% endif %}{% endmacro %}
{% macro num(value) %}{% if value is number %}{{ '%.3f'|format(value) }}{% else %}—{% endif %}{% endmacro %}
{% macro ci(interval, fmt='pct') %}{% if interval and interval[0] is number and interval[1] is number %}\
{% if fmt == 'pct' %}[{{ '%.1f'|format(interval[0] * 100) }}, {{ '%.1f'|format(interval[1] * 100) }}] %\
{% else %}[{{ '%.3f'|format(interval[0]) }}, {{ '%.3f'|format(interval[1]) }}]{% endif %}{% else %}—{% endif %}\
{% endmacro %}
{% macro status(states, value) %}<span class="status status-{{ value }}">\
{% if value == 'pass' or value == 'meets' or value == 'consistent' %}✓ \
{% elif value == 'fail' or value == 'does_not_meet' or value == 'differs' %}✗ {% else %}? {% endif %}\
{{ states.get(value, value) }}</span>{% endmacro %}
{% macro pts(value) %}{% if value is number %}{{ '%.1f'|format(value * 100) }}{% else %}—{% endif %}{% endmacro %}
{% macro pts_ci(interval) %}{% if interval and interval[0] is number and interval[1] is number %}\
[{{ '%.1f'|format(interval[0] * 100) }}, {{ '%.1f'|format(interval[1] * 100) }}]{% else %}—{% endif %}{% endmacro %}
"""
ENV = Environment(loader=DictLoader({"m.html": MACROS}), autoescape=True)
OLD = ENV.get_template("m.html").module
NEW = Environment(autoescape=True)
figures.register(type("App", (), {"jinja_env": NEW})())

VALUES = [0, 1, 0.12345, -0.0004, 0.99951, 12.5, True, None, "", "0.5", float("nan"), float("inf")]
INTERVALS = [None, [], [0.1, 0.2], [0.0, 1.0], [None, 0.2], [0.1, "x"], (0.25, 0.75), [-0.5, 0.00049]]
STATES = {"pass": "Pass", "fail": "<Fail>", "meets": "Meets", "insufficient_data": "Too few"}


def _new(call: str, **context) -> str:
    return NEW.from_string("{{ " + call + " }}").render(**context)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("name", ["pct", "num", "pts"])
def test_a_figure_reads_as_the_macro_wrote_it(name, value):
    assert _new(f"{name}(v)", v=value) == str(getattr(OLD, name)(value))


@pytest.mark.parametrize("interval", INTERVALS)
def test_an_interval_reads_as_the_macro_wrote_it(interval):
    assert _new("ci(i)", i=interval) == str(OLD.ci(interval))
    assert _new("ci(i, 'num')", i=interval) == str(OLD.ci(interval, "num"))
    assert _new("pts_ci(i)", i=interval) == str(OLD.pts_ci(interval))


@pytest.mark.parametrize(
    "value", ["pass", "fail", "meets", "does_not_meet", "consistent", "differs", "insufficient_data", "odd<b>"]
)
def test_a_status_reads_as_the_macro_wrote_it_and_is_escaped(value):
    written = _new("status(s, v)", s=STATES, v=value)
    assert written == str(OLD.status(STATES, value))
    assert "<b>" not in written and "<Fail>" not in written
