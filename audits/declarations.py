"""What a technical document declares about a model's inputs, matched to the reference data's columns.

The technical document lists each input (``model.inputs``) with ``sensitive_attribute`` (the input is itself a
sensitive attribute) and ``likely_proxy_for`` (the sensitive attributes it may stand in for). An input is matched
to a data column as the runner matches model inputs: the exact name first, then the loose name (case, ``-``,
``.`` and spaces do not matter) when it is unique. Attribute names are compared loosely in the same way, so
``likely_proxy_for: ["Sex"]`` declares a proxy for the data set's attribute ``sex``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Declarations", "from_technical_document", "loose"]


def loose(name: str) -> str:
    """A name compared loosely (the runner's rule: skl2onnx turns 'education-num' into 'education_num')."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).casefold()).strip("_")


@dataclass(frozen=True)
class Declarations:
    """The declarations of one technical document, by data column.

    ``known`` is False when no technical document was given: nothing can then be called undeclared.
    """

    known: bool
    listed: frozenset[str] = frozenset()  # data columns the document lists as inputs
    sensitive: frozenset[str] = frozenset()  # data columns declared to be sensitive attributes
    proxy_for: dict[str, frozenset[str]] = field(default_factory=dict)  # data column -> loose attribute names

    def declares_proxy(self, column: str, attribute: str) -> bool | None:
        """Whether the document declares ``column`` a likely proxy for ``attribute`` (None: no document)."""
        if not self.known:
            return None
        return loose(attribute) in self.proxy_for.get(column, frozenset())

    def declares_sensitive(self, column: str) -> bool | None:
        """Whether the document declares ``column`` a sensitive attribute (None: no document)."""
        if not self.known:
            return None
        return column in self.sensitive

    def declared_proxies(self, column: str) -> frozenset[str]:
        """The (loose) attribute names ``column`` is declared a likely proxy for."""
        return self.proxy_for.get(column, frozenset())


def _column_for(name: str, columns: Sequence[str]) -> str | None:
    if name in columns:
        return name
    matches = [c for c in columns if loose(c) == loose(name)]
    return matches[0] if len(matches) == 1 else None


def from_technical_document(document: dict | None, columns: Sequence[str]) -> Declarations:
    """The declarations of ``document`` (a technical document, or None) for the data columns ``columns``.

    Inputs of the document that match no column are ignored (the runner has already refused a model whose inputs
    do not fit the data). Never raises on a malformed document: what cannot be read declares nothing.
    """
    if not isinstance(document, dict):
        return Declarations(known=False)
    inputs = (document.get("model") or {}).get("inputs") if isinstance(document.get("model"), dict) else None
    listed, sensitive, proxies = set(), set(), {}
    for entry in inputs if isinstance(inputs, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        column = _column_for(entry["name"], columns)
        if column is None:
            continue
        listed.add(column)
        if entry.get("sensitive_attribute") is True:
            sensitive.add(column)
        named = entry.get("likely_proxy_for")
        if isinstance(named, list):
            wanted = {loose(a) for a in named if isinstance(a, str) and a.strip()}
            proxies[column] = frozenset(proxies.get(column, frozenset()) | wanted)
    return Declarations(
        known=True,
        listed=frozenset(listed),
        sensitive=frozenset(sensitive),
        proxy_for={c: a for c, a in proxies.items() if a},
    )
