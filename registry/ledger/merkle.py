"""The Merkle tree of the decision log: RFC 6962 hashing, proofs from stored nodes, RFC 9162 verification.

Hashing is exactly RFC 6962 §2.1 (SHA-256, ``0x00`` before a leaf, ``0x01`` before two child hashes; the empty tree
hashes to SHA-256 of nothing). Proofs are the RFC 6962 ``PATH`` and ``PROOF`` lists, ordered from the leaf (or the old
tree's last subtree) upwards; the verifiers follow RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by
step.

Growth. Node ``(level, index)`` is the hash of the complete subtree over leaves ``[index·2^level, (index+1)·2^level)``;
level 0 holds the leaf hashes. Such a node never changes once its last leaf exists, so a log keeps every one of them
(about two per leaf) and nothing else. Appending leaf ``n`` creates ``1 + t`` nodes, where ``t`` is the number of
trailing one bits of ``n``, from ``t`` stored left siblings. Any hash a proof or a root needs is either such a node or,
on the tree's right edge, the fold of the complete subtrees that cover its range. Every proof is first *planned* (the
list of every node it needs), then fetched with ONE ``NodeStore.get_many`` call, then computed: O(log n) nodes and
hashes whatever the size of the log, and a database store answers in one query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # e3b0c442…b855, MTH({}) in RFC 6962 §2.1
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeKey = tuple[int, int]  # (level, index)
Node = tuple[int, int, bytes]  # (level, index, hash)


class ProofError(ValueError):
    """A proof does not verify; the message says which check failed."""


class MissingNodeError(LookupError):
    """The node store lacks nodes a proof or an append needs: the store does not hold the log it claims to."""

    def __init__(self, keys: Iterable[NodeKey]):
        self.keys = sorted(keys)
        shown = ", ".join(f"({level}, {index})" for level, index in self.keys[:8])
        more = f" and {len(self.keys) - 8} more" if len(self.keys) > 8 else ""
        super().__init__(f"node store is missing node(s) (level, index): {shown}{more}")


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a list of leaf hashes, by merging complete subtrees left to right.

    Raises ValueError if a leaf hash is not 32 bytes.
    """
    stack: list[tuple[int, bytes]] = []  # complete subtrees (level, hash), levels strictly decreasing
    for position, h in enumerate(leaf_hashes):
        _require_hash(h, f"leaf hash #{position}", ValueError)
        h = bytes(h)
        level = 0
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))
    return _fold([h for _, h in stack]) if stack else EMPTY_ROOT


# --- node storage -------------------------------------------------------------------------------------------------


class NodeStore(Protocol):
    """Where the complete-subtree nodes live. ``get_many`` returns the nodes it has among ``keys``; one call should
    cost one round trip (a database implementation answers it with a single query)."""

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]: ...


class WritableNodeStore(NodeStore, Protocol):
    def put_many(self, nodes: Sequence[Node]) -> None: ...


class InMemoryNodeStore:
    """A NodeStore in memory: one bytearray of 32-byte hashes per level (nodes of a level are created in order).

    Append-only: storing a node again with the same hash is a no-op, with another hash or past the end it fails.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    @property
    def size(self) -> int:
        """The number of leaves stored."""
        return len(self._levels[0]) // HASH_SIZE if self._levels else 0

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        found = {}
        for level, index in keys:
            if 0 <= level < len(self._levels) and index >= 0:
                start = index * HASH_SIZE
                buf = self._levels[level]
                if start + HASH_SIZE <= len(buf):
                    found[(level, index)] = bytes(buf[start : start + HASH_SIZE])
        return found

    def put_many(self, nodes: Sequence[Node]) -> None:
        """Store nodes. Raises ValueError on a gap, a rewrite with another hash, or a hash that is not 32 bytes."""
        for level, index, h in nodes:
            _require_hash(h, f"node ({level}, {index})", ValueError)
            while len(self._levels) <= level:
                self._levels.append(bytearray())
            buf = self._levels[level]
            count = len(buf) // HASH_SIZE
            if index == count:
                buf += h
            elif 0 <= index < count:
                if buf[index * HASH_SIZE : (index + 1) * HASH_SIZE] != h:
                    raise ValueError(
                        f"node ({level}, {index}) is already stored with another hash; the log is append-only"
                    )
            else:
                raise ValueError(f"node ({level}, {index}) would leave a gap: level {level} holds {count} node(s)")


def _fetch(get_many: Callable[[Sequence[NodeKey]], Mapping[NodeKey, bytes]], keys: Sequence[NodeKey]):
    if not keys:
        return {}
    found = get_many(list(keys))
    missing = [key for key in keys if key not in found]
    if missing:
        raise MissingNodeError(missing)
    return found


# --- appending ----------------------------------------------------------------------------------------------------


def append_siblings(size: int) -> list[NodeKey]:
    """The stored nodes that appending leaf number ``size`` (0-based) combines with: its left siblings, bottom up."""
    _require_size(size, "size")
    return [(level, (size >> level) - 1) for level in range(_trailing_ones(size))]


def nodes_to_store_on_append(
    size: int, leaf_hash: bytes, get_left_siblings: Callable[[Sequence[NodeKey]], Mapping[NodeKey, bytes]]
) -> list[Node]:
    """The new nodes, bottom up, when leaf number ``size`` (so the tree grows to ``size + 1``) is appended.

    ``get_left_siblings`` is called at most once with every key of ``append_siblings(size)`` (``store.get_many``
    fits). Raises ValueError for a bad size or hash, MissingNodeError if a sibling is not stored.
    """
    _require_size(size, "size")
    _require_hash(leaf_hash, "leaf hash", ValueError)
    leaf_hash = bytes(leaf_hash)
    siblings = _fetch(get_left_siblings, append_siblings(size))
    nodes: list[Node] = [(0, size, leaf_hash)]
    h = leaf_hash
    for level in range(_trailing_ones(size)):
        h = node_hash(siblings[(level, (size >> level) - 1)], h)
        nodes.append((level + 1, size >> (level + 1), h))
    return nodes


def append_leaf(store: WritableNodeStore, size: int, leaf_hash: bytes) -> list[Node]:
    """Append leaf number ``size`` to ``store`` and return the nodes stored."""
    nodes = nodes_to_store_on_append(size, leaf_hash, store.get_many)
    store.put_many(nodes)
    return nodes


# --- planning and proving -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofPlan:
    """What a root or proof needs: ``parts[i]`` lists the complete subtrees (left to right) whose fold is hash ``i``;
    ``keys`` is every node of every part, once, in the order first needed."""

    parts: tuple[tuple[NodeKey, ...], ...]

    @property
    def keys(self) -> list[NodeKey]:
        return list(dict.fromkeys(key for part in self.parts for key in part))

    def build(self, nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
        """The hashes of the plan from fetched nodes. Raises MissingNodeError if ``nodes`` lacks one."""
        missing = [key for key in self.keys if key not in nodes]
        if missing:
            raise MissingNodeError(missing)
        return [_fold([nodes[key] for key in part]) for part in self.parts]


def subtree_keys(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees covering leaves ``[start, end)``, left to right, each as large as alignment allows."""
    keys = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _path_parts(level: int, index: int, size: int) -> list[tuple[NodeKey, ...]]:
    """The audit path of node (level, index) in the tree of ``size`` leaves: for each level up to the root, the
    sibling's range (cut at ``size``) when that sibling exists (a left node with no right sibling moves up as is)."""
    parts = []
    for up in range(level, (size - 1).bit_length()):
        start = ((index >> (up - level)) ^ 1) << up
        if start < size:
            parts.append(tuple(subtree_keys(start, min(start + (1 << up), size))))
    return parts


def plan_root(size: int) -> ProofPlan:
    """Plan the root hash of the tree of ``size`` leaves (no parts for the empty tree)."""
    _require_size(size, "size")
    return ProofPlan(parts=(tuple(subtree_keys(0, size)),) if size else ())


def plan_inclusion(index: int, size: int) -> ProofPlan:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` leaves. Raises ValueError unless
    0 <= index < size."""
    _require_size(index, "index")
    _require_size(size, "size")
    if index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return ProofPlan(parts=tuple(_path_parts(0, index, size)))


def plan_consistency(size1: int, size2: int) -> ProofPlan:
    """Plan the consistency proof from the tree of ``size1`` leaves to the tree of ``size2`` leaves.

    The proof is the largest complete subtree ending at ``size1`` (left out when it is the whole old tree, since the
    verifier has that root) followed by that subtree's audit path in the new tree; this equals RFC 6962 ``PROOF``.
    Raises ValueError if size1 > size2, or if size1 == 0 < size2 (a proof from the empty tree proves nothing and
    RFC 9162 verifiers reject it).
    """
    _require_size(size1, "size1")
    _require_size(size2, "size2")
    if size1 > size2:
        raise ValueError(f"first size {size1} is larger than second size {size2}")
    if size1 == size2:
        return ProofPlan(parts=())
    if size1 == 0:
        raise ValueError("there is no consistency proof from the empty tree (RFC 9162 requires 0 < first)")
    level = _trailing_zeros(size1)
    index = (size1 >> level) - 1
    parts = [] if index == 0 else [((level, index),)]
    parts += _path_parts(level, index, size2)
    return ProofPlan(parts=tuple(parts))


def fetch(store: NodeStore, *plans: ProofPlan) -> Mapping[NodeKey, bytes]:
    """Fetch every node the plans need with one ``get_many`` call. Raises MissingNodeError."""
    keys = list(dict.fromkeys(key for plan in plans for key in plan.keys))
    return _fetch(store.get_many, keys)


def root_at(size: int, store: NodeStore) -> bytes:
    """The root hash of the tree of the first ``size`` leaves (one fetch)."""
    plan = plan_root(size)
    return plan.build(fetch(store, plan))[0] if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, store: NodeStore) -> list[bytes]:
    """The RFC 6962 inclusion proof (PATH) of leaf ``index`` in the tree of ``size`` leaves (one fetch)."""
    plan = plan_inclusion(index, size)
    return plan.build(fetch(store, plan))


def consistency_proof(size1: int, size2: int, store: NodeStore) -> list[bytes]:
    """The RFC 6962 consistency proof (PROOF) from ``size1`` to ``size2`` leaves (one fetch)."""
    plan = plan_consistency(size1, size2)
    return plan.build(fetch(store, plan))


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------------------------------------------------


def _steps(fn: int, sn: int) -> int:
    """How many proof hashes the RFC 9162 verification loop consumes from (fn, sn) until sn reaches 0."""
    steps = 0
    while sn:
        if fn & 1 or fn == sn:
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
        steps += 1
    return steps


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the inclusion proof of leaf ``index`` in a tree of ``size`` leaves has (0 <= index < size)."""
    return _steps(index, size - 1)


def consistency_proof_length(size1: int, size2: int) -> int:
    """How many hashes the consistency proof from ``size1`` to ``size2`` has (0 < size1 < size2)."""
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    return _steps(fn, sn) + (0 if size1 & (size1 - 1) == 0 else 1)


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``index`` in a tree of ``size`` leaves.

    Raises ProofError naming the failed check: the index is not below the size, a hash is not 32 bytes, or the proof
    has too many or too few hashes.
    """
    _require_proof_int(index, "leaf index")
    _require_proof_int(size, "tree size")
    _require_hash(leaf_hash, "leaf hash", ProofError)
    leaf_hash = bytes(leaf_hash)
    proof = _require_proof_hashes(proof)
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of size {size} needs {want} hash(es), got {len(proof)}"
        )
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof has fewer hashes than the tree has levels")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``size`` leaves whose root is ``root``.

    Returns None; raises ProofError naming the failed check.
    """
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != bytes(root):
        raise ProofError(
            f"inclusion proof leads to root {computed.hex()}, not the expected root {bytes(root).hex()} "
            f"(leaf {index}, tree size {size})"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that ``proof`` shows the tree of ``size1`` leaves (root ``root1``) is a prefix of the tree of ``size2``
    leaves (root ``root2``).

    Equal sizes need an empty proof and equal roots (the empty tree's root is SHA-256 of nothing); a proof from the
    empty tree to a larger one is refused, as RFC 9162 defines verification only for 0 < first. Returns None; raises
    ProofError naming the failed check.
    """
    _require_proof_int(size1, "first size")
    _require_proof_int(size2, "second size")
    proof = _require_proof_hashes(proof)
    root1, root2 = bytes(root1), bytes(root2)
    if size1 > size2:
        raise ProofError(f"first size {size1} is larger than second size {size2}")
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal ({size1}) so the proof must be empty, got {len(proof)} hash(es)")
        if size1 == 0 and (root1 != EMPTY_ROOT or root2 != EMPTY_ROOT):
            raise ProofError("a tree of size 0 has the empty root e3b0c442…b855, and a given root is not it")
        if root1 != root2:
            raise ProofError(f"sizes are equal ({size1}) but the roots differ")
        return
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing (RFC 9162 requires 0 < first)")
    if not proof:
        raise ProofError(f"consistency proof from size {size1} to {size2} is empty")
    want = consistency_proof_length(size1, size2)
    if len(proof) != want:
        raise ProofError(f"consistency proof from size {size1} to {size2} needs {want} hash(es), got {len(proof)}")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old tree is itself the first subtree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof has fewer hashes than the tree has levels")
    if fr != root1:
        raise ProofError(f"consistency proof leads to first root {fr.hex()}, not the expected {root1.hex()}")
    if sr != root2:
        raise ProofError(f"consistency proof leads to second root {sr.hex()}, not the expected {root2.hex()}")


# --- hex form (the JSON API) ----------------------------------------------------------------------------------------


def hashes_to_hex(hashes: Iterable[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def hashes_from_hex(values: Sequence[str]) -> list[bytes]:
    """Parse a list of lower- or upper-case hex SHA-256 hashes. Raises ValueError naming the position at fault."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError("hashes must be a list of hex strings")
    out = []
    for position, value in enumerate(values):
        if not isinstance(value, str) or len(value) != 2 * HASH_SIZE:
            raise ValueError(f"hash #{position} is not {2 * HASH_SIZE} hex digits")
        try:
            out.append(bytes.fromhex(value))
        except ValueError:
            raise ValueError(f"hash #{position} is not {2 * HASH_SIZE} hex digits") from None
    return out


# --- helpers ------------------------------------------------------------------------------------------------------


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of adjacent complete subtrees, left to right: the MTH of the range they cover."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _trailing_ones(n: int) -> int:
    return ((n ^ (n + 1)).bit_length()) - 1


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def _require_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")


def _require_proof_int(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")


def _require_hash(value: bytes, what: str, error: type[Exception]) -> None:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray | memoryview) else type(value).__name__
        raise error(f"{what} must be {HASH_SIZE} bytes, got {size}")


def _require_proof_hashes(proof: Sequence[bytes] | None) -> list[bytes]:
    if proof is None:
        return []
    if isinstance(proof, bytes | bytearray | str):
        raise ProofError("proof must be a list of hashes")
    hashes = []
    for position, h in enumerate(proof):
        _require_hash(h, f"proof hash #{position}", ProofError)
        hashes.append(bytes(h))
    return hashes
