"""The JSON Schema (draft 2020-12) contracts of the registry, one file per document kind: ``schemas/<name>.json``.

Validation lives in :mod:`schemas.validation` (no Flask: the audit engine uses it too).
"""

from __future__ import annotations

import copy
import functools
import json
import pathlib

NAMES = (
    "technical-document",
    "test-report",
    "filing",
    "audit-report",
    "audit-policy",
    "reference-dataset",
    "decision",
    "decision-log-entry",
    "library-entry",
)

_DIR = pathlib.Path(__file__).resolve().parent


def path(name: str) -> pathlib.Path:
    """Return the path of the schema file called ``name``; raise KeyError if ``name`` is not in NAMES."""
    if name not in NAMES:
        raise KeyError(f"unknown schema {name!r}; known schemas: {', '.join(NAMES)}")
    return _DIR / f"{name}.json"


@functools.cache
def _load(name: str) -> dict:
    with path(name).open(encoding="utf-8") as f:
        return json.load(f)


def load(name: str) -> dict:
    """Return the schema called ``name`` as a dict (a fresh copy of a cached parse, safe to modify).

    Raises KeyError if ``name`` is not in NAMES.
    """
    return copy.deepcopy(_load(name))
