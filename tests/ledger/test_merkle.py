"""The decision log's Merkle tree: RFC 6962 known answers, the store-backed prover against an independent recursive
reference (MTH, PATH and PROOF written straight from RFC 6962 §2.1 here), and RFC 9162 verification properties."""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.ledger import merkle

# The eight leaves of the RFC 6962 / transparency-dev test tree, and its roots at sizes 1..8 (proof/verify_test.go).
RFC_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

MAX_LEAVES = 300
LEAVES = tuple(f"decision {i}".encode() for i in range(MAX_LEAVES))


# --- an independent reference, straight from RFC 6962 §2.1 -----------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(start: int, end: int, leaves: tuple[bytes, ...] = LEAVES) -> bytes:
    """MTH(D[start:end])."""
    n = end - start
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + leaves[start])
    k = largest_power_of_two_below(n)
    return sha256(b"\x01" + mth(start, start + k, leaves) + mth(start + k, end, leaves))


def rfc_path(m: int, start: int, end: int) -> list[bytes]:
    """PATH(m, D[start:end]) with m relative to start."""
    n = end - start
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return rfc_path(m, start, start + k) + [mth(start + k, end)]
    return rfc_path(m - k, start + k, end) + [mth(start, start + k)]


def rfc_subproof(m: int, start: int, end: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[start:end], b)."""
    n = end - start
    if m == n:
        return [] if b else [mth(start, end)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return rfc_subproof(m, start, start + k, b) + [mth(start + k, end)]
    return rfc_subproof(m - k, start + k, end, False) + [mth(start, start + k)]


@pytest.fixture(scope="module")
def store() -> merkle.InMemoryNodeStore:
    s = merkle.InMemoryNodeStore()
    for size, data in enumerate(LEAVES):
        merkle.append_leaf(s, size, merkle.leaf_hash(data))
    return s


class CountingStore:
    """Counts the round trips a prover makes."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def get_many(self, keys):
        self.calls += 1
        return self.inner.get_many(keys)


def flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


# --- known answers ------------------------------------------------------------------------------------------------


def test_the_empty_tree_has_the_sha256_of_nothing_as_root():
    assert merkle.root([]).hex() == EMPTY
    assert merkle.EMPTY_ROOT.hex() == EMPTY
    assert merkle.root_at(0, merkle.InMemoryNodeStore()).hex() == EMPTY


def test_leaf_and_node_hashes_use_the_rfc_6962_prefixes():
    assert merkle.leaf_hash(b"") == sha256(b"\x00")
    assert merkle.leaf_hash(b"").hex() == RFC_ROOTS[0]
    left, right = sha256(b"l"), sha256(b"r")
    assert merkle.node_hash(left, right) == sha256(b"\x01" + left + right)


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_rfc_6962_test_tree(size):
    hashes = [merkle.leaf_hash(leaf) for leaf in RFC_LEAVES[:size]]
    store = merkle.InMemoryNodeStore()
    for i, h in enumerate(hashes):
        merkle.append_leaf(store, i, h)
    assert merkle.root(hashes).hex() == RFC_ROOTS[size - 1]
    assert merkle.root_at(size, store).hex() == RFC_ROOTS[size - 1]
    assert mth(0, size, tuple(RFC_LEAVES)).hex() == RFC_ROOTS[size - 1]


def test_the_c2sp_merkle_tree_example_proofs():
    """c2sp.org/merkle-tree's 7-entry example: inclusion and consistency proofs by their node labels."""
    leaves = tuple(bytes([i]) for i in range(7))
    store = merkle.InMemoryNodeStore()
    for i, leaf in enumerate(leaves):
        merkle.append_leaf(store, i, merkle.leaf_hash(leaf))
    a, b, c, d, e, f, g = (merkle.leaf_hash(leaf) for leaf in leaves)
    h, i, j = merkle.node_hash(a, b), merkle.node_hash(c, d), merkle.node_hash(e, f)
    k, l_ = merkle.node_hash(h, i), merkle.node_hash(j, g)
    assert merkle.root_at(7, store) == merkle.node_hash(k, l_)
    assert merkle.inclusion_proof(0, 7, store) == [b, i, l_]
    assert merkle.inclusion_proof(3, 7, store) == [c, h, l_]
    assert merkle.inclusion_proof(4, 7, store) == [f, g, k]
    assert merkle.inclusion_proof(6, 7, store) == [j, k]
    assert merkle.consistency_proof(3, 7, store) == [c, d, h, l_]
    assert merkle.consistency_proof(4, 7, store) == [l_]
    assert merkle.consistency_proof(6, 7, store) == [j, g, k]


# --- the store: appends make exactly the nodes a rebuild would, proofs fetch once ---------------------------------


def test_appending_stores_exactly_the_complete_subtrees(store):
    expected = {}
    level = 0
    while (1 << level) <= MAX_LEAVES:
        for index in range(MAX_LEAVES >> level):
            expected[(level, index)] = mth(index << level, (index + 1) << level)
        level += 1
    assert store.get_many(list(expected)) == expected
    # and nothing more: the next node on each level is absent
    beyond = [(lv, MAX_LEAVES >> lv) for lv in range(level + 2)]
    assert store.get_many(beyond) == {}
    assert store.size == MAX_LEAVES


@pytest.mark.parametrize("size", [0, 1, 2, 3, 6, 7, 8, 15, 255, 299])
def test_one_append_creates_the_subtrees_that_end_at_the_new_leaf(store, size):
    nodes = merkle.nodes_to_store_on_append(size, merkle.leaf_hash(LEAVES[size]), store.get_many)
    ends_here = [(lv, i) for lv in range(10) for i in [((size + 1) >> lv) - 1] if (i + 1) << lv == size + 1]
    assert [(lv, i) for lv, i, _ in nodes] == ends_here
    assert all(h == mth(i << lv, (i + 1) << lv) for lv, i, h in nodes)


def test_an_append_asks_for_its_siblings_once():
    calls = []

    def get_many(keys):
        calls.append(list(keys))
        return {key: bytes(32) for key in keys}

    nodes = merkle.nodes_to_store_on_append(0b10111, bytes(32), get_many)
    assert calls == [[(0, 22), (1, 10), (2, 4)]]
    assert [(lv, i) for lv, i, _ in nodes] == [(0, 23), (1, 11), (2, 5), (3, 2)]


@pytest.mark.parametrize(("size1", "size2"), [(1, 300), (37, 255), (128, 299), (299, 300)])
def test_each_proof_is_one_round_trip(store, size1, size2):
    counting = CountingStore(store)
    merkle.inclusion_proof(size1 - 1, size2, counting)
    merkle.consistency_proof(size1, size2, counting)
    merkle.root_at(size2, counting)
    assert counting.calls == 3
    plans = (merkle.plan_inclusion(size1 - 1, size2), merkle.plan_root(size2))
    nodes = merkle.fetch(counting, *plans)
    assert counting.calls == 4
    proof, (root,) = (plan.build(nodes) for plan in plans)
    merkle.verify_inclusion(merkle.leaf_hash(LEAVES[size1 - 1]), size1 - 1, size2, proof, root)


def test_proofs_stay_logarithmic(store):
    for size in (64, 255, 300):
        plan = merkle.plan_inclusion(size // 3, size)
        assert len(plan.keys) <= 2 * (size - 1).bit_length()


def test_a_store_missing_nodes_is_reported_not_papered_over(store):
    empty = merkle.InMemoryNodeStore()
    with pytest.raises(merkle.MissingNodeError, match=r"\(0, 1\)"):
        merkle.inclusion_proof(0, 2, empty)
    with pytest.raises(merkle.MissingNodeError):
        merkle.nodes_to_store_on_append(1, bytes(32), empty.get_many)


def test_the_in_memory_store_is_append_only():
    s = merkle.InMemoryNodeStore()
    merkle.append_leaf(s, 0, merkle.leaf_hash(b"a"))
    merkle.append_leaf(s, 0, merkle.leaf_hash(b"a"))  # the same node again: a no-op
    with pytest.raises(ValueError, match="append-only"):
        s.put_many([(0, 0, merkle.leaf_hash(b"b"))])
    with pytest.raises(ValueError, match="gap"):
        s.put_many([(0, 5, merkle.leaf_hash(b"b"))])
    assert s.size == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: merkle.inclusion_proof(5, 5, s), "not in a tree of size 5"),
        (lambda s: merkle.inclusion_proof(0, 0, s), "not in a tree of size 0"),
        (lambda s: merkle.consistency_proof(6, 5, s), "larger than second"),
        (lambda s: merkle.consistency_proof(0, 5, s), "empty tree"),
        (lambda s: merkle.inclusion_proof(-1, 5, s), "non-negative"),
    ],
)
def test_impossible_proof_requests_are_refused(store, call, message):
    with pytest.raises(ValueError, match=message):
        call(store)


def test_equal_sizes_need_no_proof(store):
    assert merkle.consistency_proof(0, 0, store) == []
    assert merkle.consistency_proof(17, 17, store) == []
    merkle.verify_consistency(17, 17, [], mth(0, 17), mth(0, 17))
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)


# --- properties ---------------------------------------------------------------------------------------------------


@st.composite
def size_and_index(draw):
    size = draw(st.integers(1, MAX_LEAVES))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw):
    size2 = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(1, size2)), size2


@settings(max_examples=300, deadline=None)
@given(size_and_index())
def test_root_of_every_size_is_the_rfc_mth(store, case):
    size, _ = case
    assert merkle.root_at(size, store) == mth(0, size)
    assert merkle.root([merkle.leaf_hash(leaf) for leaf in LEAVES[:size]]) == mth(0, size)


@settings(max_examples=300, deadline=None)
@given(size_and_index())
def test_every_inclusion_proof_is_the_rfc_path_and_verifies(store, case):
    size, index = case
    proof = merkle.inclusion_proof(index, size, store)
    assert proof == rfc_path(index, 0, size)
    assert len(proof) == merkle.inclusion_proof_length(index, size)
    leaf = merkle.leaf_hash(LEAVES[index])
    merkle.verify_inclusion(leaf, index, size, proof, mth(0, size))
    assert merkle.root_from_inclusion_proof(leaf, index, size, proof) == mth(0, size)


@settings(max_examples=300, deadline=None)
@given(size_and_index(), st.data())
def test_a_tampered_inclusion_proof_fails(store, case, data):
    size, index = case
    proof = merkle.inclusion_proof(index, size, store)
    leaf, root = merkle.leaf_hash(LEAVES[index]), mth(0, size)
    if proof:  # a flipped bit anywhere in any hash
        position = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = [*proof]
        bad[position] = flip(bad[position], bit)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, index, size, bad, root)
        with pytest.raises(merkle.ProofError, match="needs"):
            merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(merkle.ProofError, match="needs"):
        merkle.verify_inclusion(leaf, index, size, [*proof, root], root)
    other = data.draw(st.integers(0, 2 * MAX_LEAVES).filter(lambda i: i != index))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, other, size, proof, root)
    # A proof proves (size, root) together: a different size with that size's own root must fail.
    other_size = data.draw(st.integers(1, MAX_LEAVES).filter(lambda s: s != size))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, index, other_size, proof, mth(0, other_size))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, index, size, proof, flip(root, data.draw(st.integers(0, 255))))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(b"another decision"), index, size, proof, root)


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_every_consistency_proof_is_the_rfc_proof_and_verifies(store, sizes):
    size1, size2 = sizes
    proof = merkle.consistency_proof(size1, size2, store)
    assert proof == (rfc_subproof(size1, 0, size2, True) if size1 < size2 else [])
    if size1 < size2:
        assert len(proof) == merkle.consistency_proof_length(size1, size2)
    merkle.verify_consistency(size1, size2, proof, mth(0, size1), mth(0, size2))


@settings(max_examples=300, deadline=None)
@given(two_sizes().filter(lambda s: s[0] < s[1]), st.data())
def test_a_tampered_consistency_proof_fails(store, sizes, data):
    size1, size2 = sizes
    proof = merkle.consistency_proof(size1, size2, store)
    root1, root2 = mth(0, size1), mth(0, size2)
    position = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof]
    bad[position] = flip(bad[position], data.draw(st.integers(0, 255)))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, bad, root1, root2)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, [root1, *proof], root1, root2)
    other1 = data.draw(st.integers(1, size2).filter(lambda s: s != size1))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(other1, size2, proof, mth(0, other1), root2)
    other2 = data.draw(st.integers(size1, MAX_LEAVES).filter(lambda s: s != size2))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, other2, proof, root1, mth(0, other2))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, proof, flip(root1, data.draw(st.integers(0, 255))), root2)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, proof, root1, flip(root2, data.draw(st.integers(0, 255))))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, proof, root2, root1)


# --- verifier edge cases ------------------------------------------------------------------------------------------


def test_verifier_messages_name_the_failed_check(store):
    leaf = merkle.leaf_hash(LEAVES[3])
    proof = merkle.inclusion_proof(3, 10, store)
    with pytest.raises(merkle.ProofError, match="leaf index 10 is not below tree size 10"):
        merkle.verify_inclusion(leaf, 10, 10, proof, mth(0, 10))
    with pytest.raises(merkle.ProofError, match="needs 4 hash"):
        merkle.verify_inclusion(leaf, 3, 10, proof[:3], mth(0, 10))
    with pytest.raises(merkle.ProofError, match="proof hash #1 must be 32 bytes"):
        merkle.verify_inclusion(leaf, 3, 10, [proof[0], b"short", *proof[2:]], mth(0, 10))
    with pytest.raises(merkle.ProofError, match="leaf hash must be 32 bytes"):
        merkle.verify_inclusion(b"", 3, 10, proof, mth(0, 10))
    with pytest.raises(merkle.ProofError, match="not the expected root"):
        merkle.verify_inclusion(leaf, 3, 10, proof, mth(0, 11))
    with pytest.raises(merkle.ProofError, match="empty tree"):
        merkle.verify_consistency(0, 5, [], merkle.EMPTY_ROOT, mth(0, 5))
    with pytest.raises(merkle.ProofError, match="empty root"):
        merkle.verify_consistency(0, 0, [], b"x", b"x")
    with pytest.raises(merkle.ProofError, match="must be empty"):
        merkle.verify_consistency(4, 4, [mth(0, 4)], mth(0, 4), mth(0, 4))
    with pytest.raises(merkle.ProofError, match="first root"):
        merkle.verify_consistency(3, 10, merkle.consistency_proof(3, 10, store), mth(0, 4), mth(0, 10))


def test_hex_round_trip_and_errors():
    hashes = [mth(0, 3), mth(0, 4)]
    assert merkle.hashes_from_hex(merkle.hashes_to_hex(hashes)) == hashes
    with pytest.raises(ValueError, match="hash #1"):
        merkle.hashes_from_hex([hashes[0].hex(), "zz" * 32])
    with pytest.raises(ValueError, match="list"):
        merkle.hashes_from_hex("00" * 32)
