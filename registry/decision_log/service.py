"""Appending decisions to the log and proving from it, in the caller's transaction. No Flask here.

Appends are serialised by the one ``log_head`` row (its UPDATE takes a row lock on PostgreSQL; SQLite has one
writer at a time), so leaf ``n`` is always the ``n``-th append. Each append stores the leaf, the O(log n) new
complete-subtree hashes (:mod:`registry.ledger.merkle`), and a signed checkpoint of the new tree — all in the same
transaction as the decision itself, so a decision is never effective without its entry, nor logged without taking
effect. Proofs read only the stored subtree hashes they need, in one query.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from registry.cities.models import City
from registry.decision_log import records
from registry.decision_log.keys import LogKeys
from registry.decision_log.models import LogCheckpoint, LogEntry, LogHead, LogNode
from registry.errors import NotFound, Unprocessable
from registry.ledger import checkpoint as checkpoints
from registry.ledger import merkle
from registry.ledger import proof_file as proof_files
from registry.ledger.canonical import canonical_json

ENTRY = LogEntry.__table__
NODE = LogNode.__table__
HEAD = LogHead.__table__
MAX_ENTRIES_PER_PAGE = 1000


class DatabaseNodes:
    """The stored complete-subtree hashes, read in one query per batch (merkle's NodeStore)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_many(self, keys):
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(keys), _NODES_PER_QUERY):
            chunk = keys[start : start + _NODES_PER_QUERY]
            params = {}
            for k, (level, index) in enumerate(chunk):
                params[f"l{k}"], params[f"i{k}"] = level, index
            rows = self.session.execute(_nodes_query(len(chunk)), params).all()
            found.update({(row.level, row.index): bytes(row.hash) for row in rows})
        return found  # merkle raises MissingNodeError, naming them, if any is absent


_NODES_PER_QUERY = 200  # 400 parameters: under SQLite's oldest limit of 999


@functools.cache
def _nodes_query(count: int) -> sa.Select:
    """The nodes at ``count`` keys, parameters ``l0, i0, l1, i1, …``: an OR of primary-key lookups.

    Not ``tuple_(level, index).in_(keys)``: SQLite runs ``(level, index) IN (VALUES …)`` as a scan of the whole
    table, so appends and proofs took time proportional to the size of the log (160 ms at 1,000,000 entries).
    Built once per count, because building the expression costs more than running it.
    """
    return sa.select(NODE.c.level, NODE.c.index, NODE.c.hash).where(
        sa.or_(
            *(
                sa.and_(NODE.c.level == sa.bindparam(f"l{k}"), NODE.c.index == sa.bindparam(f"i{k}"))
                for k in range(count)
            )
        )
    )


def tree_size(session: Session) -> int:
    return int(session.execute(sa.select(HEAD.c.tree_size).where(HEAD.c.id == 1)).scalar_one())


def root_hash(session: Session, size: int | None = None) -> bytes:
    size = tree_size(session) if size is None else size
    return merkle.root_at(size, DatabaseNodes(session))


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes
    tree_size: int
    checkpoint: str


def leaf_for(session: Session, *, filing, transition, decision=None) -> bytes:
    """The exact leaf bytes: canonical JSON (RFC 8785) of the step's decision record."""
    city = session.get(City, filing.city_code)
    body = records.record(
        filing=filing, transition=transition, decision=decision, city_name_zh=city.name_zh if city else ""
    )
    return canonical_json(body)


def append(session: Session, *, keys: LogKeys, filing, transition, decision=None) -> Appended:
    """Append the record of ``transition`` (a step in ``records.LOGGED``) and sign the new checkpoint."""
    grown = session.execute(
        sa.update(HEAD).where(HEAD.c.id == 1).values(tree_size=HEAD.c.tree_size + 1).returning(HEAD.c.tree_size)
    ).scalar_one()
    index = int(grown) - 1
    leaf = leaf_for(session, filing=filing, transition=transition, decision=decision)
    leaf_hash = merkle.leaf_hash(leaf)
    store = DatabaseNodes(session)
    new_nodes = merkle.nodes_to_store_on_append(index, leaf_hash, store.get_many)
    session.execute(
        sa.insert(ENTRY).values(
            index=index,
            leaf=leaf,
            leaf_hash=leaf_hash.hex(),
            kind=records.LOGGED[transition.action],
            filing_id=filing.id,
            transition_id=transition.id,
            decision_id=decision.id if decision is not None else None,
            created_at=transition.at,
        )
    )
    session.execute(sa.insert(NODE), [{"level": lv, "index": ix, "hash": h} for lv, ix, h in new_nodes])
    root = merkle.root_at(index + 1, store)
    note = checkpoints.sign_checkpoint(checkpoints.Checkpoint(keys.origin, index + 1, root), keys.signer)
    session.add(LogCheckpoint(tree_size=index + 1, root_hash=root.hex(), note=_text(note)))
    session.flush()
    return Appended(index=index, leaf_hash=leaf_hash, tree_size=index + 1, checkpoint=_text(note))


def _text(note: bytes | str) -> str:
    return note.decode("utf-8") if isinstance(note, bytes) else note


# --- reading -------------------------------------------------------------------------------------------------------


def latest_checkpoint(session: Session, keys: LogKeys) -> str:
    """The newest signed checkpoint; for an empty log, the signed checkpoint of size 0 (Ed25519 is deterministic,
    so it is the same note every time)."""
    row = session.exec(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)).first()
    if row is not None:
        return row.note
    empty = checkpoints.Checkpoint(keys.origin, 0, merkle.root_at(0, DatabaseNodes(session)))
    return _text(checkpoints.sign_checkpoint(empty, keys.signer))


def checkpoint_at(session: Session, size: int) -> str | None:
    row = session.get(LogCheckpoint, size)
    return row.note if row is not None else None


def _bad(name: str, message: str) -> Unprocessable:
    return Unprocessable(message, code="bad_query", pointer=f"/query/{name}")


def entries(session: Session, start: int, end: int | None) -> list[dict]:
    size = tree_size(session)
    if start < 0:
        raise _bad("start", "start is a leaf index, 0 or more.")
    end = min(size, start + MAX_ENTRIES_PER_PAGE) if end is None else end
    if end < start:
        raise _bad("end", "end (exclusive) is not before start.")
    if end > size:
        raise _bad("end", f"end is at most the tree size, {size}.")
    if end - start > MAX_ENTRIES_PER_PAGE:
        raise _bad("end", f"At most {MAX_ENTRIES_PER_PAGE} entries per request.")
    rows = session.execute(
        sa.select(ENTRY.c.index, ENTRY.c.leaf, ENTRY.c.leaf_hash)
        .where(ENTRY.c.index >= start, ENTRY.c.index < end)
        .order_by(ENTRY.c.index)
    ).all()
    return [
        {"index": r.index, "leaf": base64.b64encode(bytes(r.leaf)).decode("ascii"), "leaf_hash": r.leaf_hash}
        for r in rows
    ]


def inclusion(session: Session, index: int, size: int | None) -> dict:
    current = tree_size(session)
    size = current if size is None else size
    if not 0 < size <= current:
        raise _bad("tree_size", f"tree_size is from 1 to the current size, {current}.")
    if not 0 <= index < size:
        raise _bad("index", f"index is from 0 to tree_size - 1 ({size - 1}).")
    hashes = merkle.inclusion_proof(index, size, DatabaseNodes(session))
    return {"index": index, "tree_size": size, "hashes": [h.hex() for h in hashes]}


def consistency(session: Session, first: int, second: int | None) -> dict:
    current = tree_size(session)
    second = current if second is None else second
    if not 0 <= second <= current:
        raise _bad("second", f"second is from 0 to the current size, {current}.")
    if not 0 <= first <= second:
        raise _bad("first", "first is from 0 to second.")
    if first == 0 < second:
        raise _bad("first", "first is at least 1: there is no consistency proof from the empty tree (RFC 9162).")
    hashes = merkle.consistency_proof(first, second, DatabaseNodes(session))
    return {"first": first, "second": second, "hashes": [h.hex() for h in hashes]}


def proof_file(session: Session, index: int) -> bytes:
    """The C2SP tlog-proof file of entry ``index``: its inclusion proof against the newest signed checkpoint."""
    newest = session.exec(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)).first()
    size = newest.tree_size if newest is not None else 0  # the proof and its checkpoint agree on the size
    if not 0 <= index < size:
        raise NotFound(f"The log has no entry {index} (it has {size}).", code="no_such_entry")
    hashes = merkle.inclusion_proof(index, size, DatabaseNodes(session))
    return proof_files.format_proof_file(index, hashes, newest.note.encode("utf-8"))


def entry_or_none(session: Session, decision_id: int) -> LogEntry | None:
    """The log entry of a decision that took effect (None before)."""
    return session.exec(select(LogEntry).where(LogEntry.decision_id == decision_id)).first()


def entries_for_filing(session: Session, filing_id: int) -> list[LogEntry]:
    return list(session.exec(select(LogEntry).where(LogEntry.filing_id == filing_id).order_by(LogEntry.index)))


# --- checking the log against the database (``registry log verify`` on the registry's own host) -------------------


class DatabaseSource:
    """The log as :mod:`registry.decision_log.verify` reads it, straight from the database (one session)."""

    def __init__(self, session: Session, keys: LogKeys) -> None:
        self.session, self.keys = session, keys

    def public_key(self) -> str:
        return self.keys.verifier_key

    def checkpoint(self) -> str:
        return latest_checkpoint(self.session, self.keys)

    def entries(self, start: int, end: int) -> list[dict]:
        return entries(self.session, start, end)

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, tree_size, DatabaseNodes(self.session))

    def consistency(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, DatabaseNodes(self.session))


def records_that_disagree(session: Session) -> list[str]:
    """What the database says now against what the log says: each entry rebuilt from its rows must equal its leaf,
    and every decision that took effect (and every logged kind of step) must have its entry."""
    from registry.decisions.models import Decision, DecisionState
    from registry.filings.models import Filing, FilingTransition

    problems: list[str] = []
    logged_steps: set[int] = set()
    for entry in session.exec(select(LogEntry).order_by(LogEntry.index)):
        logged_steps.add(entry.transition_id)
        filing = session.get(Filing, entry.filing_id)
        step = session.get(FilingTransition, entry.transition_id)
        decision = session.get(Decision, entry.decision_id) if entry.decision_id is not None else None
        if filing is None or step is None or (entry.decision_id is not None and decision is None):
            problems.append(f"entry {entry.index}: its filing, step or decision row is gone")
            continue
        try:
            rebuilt = leaf_for(session, filing=filing, transition=step, decision=decision)
        except (KeyError, ValueError) as exc:
            problems.append(f"entry {entry.index}: its record cannot be rebuilt from the rows ({exc})")
            continue
        if rebuilt != bytes(entry.leaf):
            problems.append(
                f"entry {entry.index} ({entry.kind} of filing {entry.filing_id}"
                + (f", decision {entry.decision_id}" if entry.decision_id else "")
                + f"): the rows now say something else than the log: {_difference(bytes(entry.leaf), rebuilt)}"
            )
    for decision in session.exec(select(Decision).where(Decision.state == DecisionState.EFFECTIVE)):
        if session.exec(select(LogEntry.index).where(LogEntry.decision_id == decision.id)).first() is None:
            problems.append(f"decision {decision.id} took effect but has no log entry")
    for step in session.exec(select(FilingTransition).where(FilingTransition.action.in_(list(records.LOGGED)))):
        if step.id not in logged_steps:
            problems.append(f"step {step.id} ({step.action} of filing {step.filing_id}) has no log entry")
    return problems


def _difference(logged: bytes, now: bytes) -> str:
    import json

    before, after = json.loads(logged), json.loads(now)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return ", ".join(f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in changed[:5])
