"""Verifying the decision log, from its public API or from the database itself. No Flask here.

A verifier trusts one thing: the log's public key (pinned with ``--key``, or remembered from the first run in its
state file). It then checks, and says exactly which check failed:

1. the newest checkpoint is signed by that key and names the log's origin;
2. every entry's leaf hashes to its ``leaf_hash``, and the tree rebuilt from all the leaves has the checkpoint's
   root (so no entry was changed, dropped, reordered or added behind the checkpoint);
3. the log's inclusion proofs for the entries verify against that root (every entry, or a sample of a large log);
4. the log is consistent with the checkpoint this verifier saw last time (it only grew), by a consistency proof;
5. locally only: each entry still says what the database's rows say (a decision edited behind the app's back no
   longer matches its leaf), and every decision that took effect has its entry.

The state file keeps the last verified checkpoint's origin, size, root and key.
"""

from __future__ import annotations

import base64
import json
import random
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from registry.ledger import checkpoint as checkpoints
from registry.ledger import merkle, note

PAGE = 1000
FULL_PROOF_LIMIT = 10_000  # logs up to this size get every inclusion proof checked; larger ones a sample
SAMPLE = 1000


class Source(Protocol):
    """Where the log is read from: the public API (HTTP) or the database."""

    def public_key(self) -> str: ...
    def checkpoint(self) -> str: ...
    def entries(self, start: int, end: int) -> list[dict]: ...
    def inclusion(self, index: int, tree_size: int) -> list[bytes]: ...
    def consistency(self, first: int, second: int) -> list[bytes]: ...


@dataclass
class Report:
    lines: list[tuple[bool, str]] = field(default_factory=list)
    tree_size: int | None = None
    root: bytes | None = None
    key: str | None = None  # the verifier key trusted
    origin: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(good for good, _ in self.lines)

    def good(self, text: str) -> None:
        self.lines.append((True, text))

    def bad(self, text: str) -> None:
        self.lines.append((False, text))

    def text(self) -> str:
        return "\n".join(("✓ " if good else "✗ ") + line for good, line in self.lines)


class HttpSource:
    """The public API of a registry at ``base_url`` (nothing but GET requests, no credentials)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        scheme = urllib.parse.urlsplit(self.base).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        self.timeout = timeout

    def _get(self, path: str, **query) -> bytes:
        url = f"{self.base}/api/v1/log/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - http(s) checked above
                return response.read()
        except urllib.error.HTTPError as exc:
            raise LookupError(f"GET {url}: HTTP {exc.code} {exc.read()[:300]!r}") from None

    def public_key(self) -> str:
        return self._get("public-key").decode("utf-8").strip()

    def checkpoint(self) -> str:
        return self._get("checkpoint").decode("utf-8")

    def entries(self, start: int, end: int) -> list[dict]:
        return json.loads(self._get("entries", start=start, end=end))

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        return merkle.hashes_from_hex(
            json.loads(self._get("proof/inclusion", index=index, tree_size=tree_size))["hashes"]
        )

    def consistency(self, first: int, second: int) -> list[bytes]:
        return merkle.hashes_from_hex(json.loads(self._get("proof/consistency", first=first, second=second))["hashes"])


def load_state(path: Path | None) -> dict | None:
    if path is None or not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def save_state(path: Path, *, key: str, origin: str, tree_size: int, root: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"public_key": key, "origin": origin, "tree_size": tree_size, "root_hash": root.hex()}
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


def verify(source: Source, *, pinned_key: str | None = None, state: dict | None = None, seed: int = 0) -> Report:
    """Checks 1–4 above against ``source``; ``state`` is the last verified checkpoint (or None on a first run)."""
    report = Report()
    served_key = source.public_key()
    trusted = pinned_key or (state or {}).get("public_key") or served_key
    if trusted != served_key:
        report.bad(f"the log now serves the key {served_key}, not the trusted {trusted}")
        return report
    try:
        verifier = note.Verifier.from_key_string(trusted)
    except note.NoteError as exc:
        report.bad(f"the public key is malformed: {exc}")
        return report
    report.key, report.origin = trusted, verifier.name
    how = "pinned" if pinned_key else ("remembered" if state else "first seen now: pin it with --key")
    report.good(f"public key {trusted} ({how})")

    # 1. the checkpoint
    try:
        opened = checkpoints.open_checkpoint(source.checkpoint(), [verifier], origin=verifier.name)
    except (note.NoteError, checkpoints.CheckpointError) as exc:
        report.bad(f"the checkpoint's signature or form: {exc}")
        return report
    size, root = opened.checkpoint.size, opened.checkpoint.root_hash
    report.tree_size, report.root = size, root
    report.good(f"checkpoint signed by {verifier.name}: tree size {size}, root {root.hex()}")

    # 2. every leaf, and the root rebuilt from them
    hashes: list[bytes] = []
    bad_leaves = []
    for start in range(0, size, PAGE):
        page = source.entries(start, min(size, start + PAGE))
        for offset, item in enumerate(page):
            index = start + offset
            leaf = base64.b64decode(item["leaf"], validate=True)
            computed = merkle.leaf_hash(leaf)
            if item.get("index") != index or computed.hex() != item.get("leaf_hash"):
                bad_leaves.append(index)
            hashes.append(computed)
    if len(hashes) != size:
        report.bad(f"the log served {len(hashes)} entries for a tree of size {size}")
        return report
    if bad_leaves:
        report.bad(f"entries whose leaf does not hash to their leaf_hash or index: {bad_leaves[:20]}")
    rebuilt = merkle.root(hashes)
    if rebuilt == root:
        report.good(f"the {size} entries rebuild the checkpoint's root")
    else:
        report.bad(f"the {size} entries rebuild the root {rebuilt.hex()}, not the checkpoint's {root.hex()}")

    # 3. inclusion proofs
    indices = list(range(size))
    if size > FULL_PROOF_LIMIT:
        indices = sorted({0, size - 1, *random.Random(seed).sample(range(size), SAMPLE)})  # noqa: S311 - a sample
    failed = []
    for index in indices:
        try:
            merkle.verify_inclusion(hashes[index], index, size, source.inclusion(index, size), root)
        except (merkle.ProofError, LookupError, ValueError) as exc:
            failed.append(f"{index} ({exc})")
    if failed:
        report.bad(f"inclusion proofs that fail: {', '.join(failed[:10])}")
    elif indices:
        report.good(f"inclusion proofs of {len(indices)} entr{'y' if len(indices) == 1 else 'ies'} verify")

    # 4. consistency with the last checkpoint seen
    if state:
        old_size, old_root = int(state["tree_size"]), bytes.fromhex(state["root_hash"])
        if state.get("origin") not in (None, verifier.name):
            report.bad(f"the log's origin changed from {state['origin']} to {verifier.name}")
        elif old_size > size:
            report.bad(f"the log shrank: it had {old_size} entries when last verified, now {size}")
        elif old_size == size and old_root != root:
            report.bad(f"same size {size} as last time but a different root: the log was rewritten")
        elif 0 < old_size < size:
            try:
                merkle.verify_consistency(old_size, size, source.consistency(old_size, size), old_root, root)
                report.good(f"consistent with the checkpoint of size {old_size} seen last time")
            except (merkle.ProofError, LookupError, ValueError) as exc:
                report.bad(f"not consistent with the checkpoint of size {old_size} seen last time: {exc}")
        else:
            report.good(f"same checkpoint as last time (size {size})")
    return report
