"""How audit figures are written on pages: rates as percentages, other figures to three decimals, intervals in
brackets, a dash for what was not measured, and a criterion's status with its mark.

Plain functions, made available to every template (:func:`register`), rather than Jinja macros: a public entry
page writes a few thousand of them, and a macro call cost ten times as much as a function call.
"""

from __future__ import annotations

from numbers import Number

from markupsafe import Markup

DASH = "—"
_GOOD = frozenset({"pass", "meets", "consistent"})
_BAD = frozenset({"fail", "does_not_meet", "differs"})


def _is_number(value) -> bool:
    return isinstance(value, Number)  # as Jinja's `is number` test (booleans included)


def _both(interval) -> bool:
    return bool(interval) and _is_number(interval[0]) and _is_number(interval[1])


def pct(value) -> str:
    """A rate as a percentage to one decimal: 0.1234 → "12.3 %"."""
    return f"{value * 100:.1f} %" if _is_number(value) else DASH


def num(value) -> str:
    """A figure to three decimals."""
    return f"{value:.3f}" if _is_number(value) else DASH


def pts(value) -> str:
    """A difference of rates in percentage points, to one decimal (no unit)."""
    return f"{value * 100:.1f}" if _is_number(value) else DASH


def ci(interval, fmt: str = "pct") -> str:
    """An interval: "[10.0, 20.0] %" for rates (``fmt='pct'``), else "[0.100, 0.200]"."""
    if not _both(interval):
        return DASH
    if fmt == "pct":
        return f"[{interval[0] * 100:.1f}, {interval[1] * 100:.1f}] %"
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def pts_ci(interval) -> str:
    """An interval of percentage points: "[1.0, 2.0]"."""
    return f"[{interval[0] * 100:.1f}, {interval[1] * 100:.1f}]" if _both(interval) else DASH


def status(states: dict, value) -> Markup:
    """A criterion's or claim's status: its mark (✓, ✗ or ?) and its label from ``states``."""
    mark = "✓ " if value in _GOOD else "✗ " if value in _BAD else "? "
    return Markup('<span class="status status-{}">{}{}</span>').format(value, mark, states.get(value, value))


def register(app) -> None:
    app.jinja_env.globals.update(pct=pct, num=num, pts=pts, ci=ci, pts_ci=pts_ci, status=status)
