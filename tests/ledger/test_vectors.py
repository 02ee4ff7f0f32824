"""The transparency-dev/merkle proof vectors (tests/ledger/vectors, Apache-2.0): every happy path is accepted and
reproduced byte for byte by the store-backed prover, every ``wantErr`` case is rejected."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from registry.ledger import merkle

VECTORS = Path(__file__).parent / "vectors" / "testdata"
# The leaves behind the vector trees (vectors/README.md).
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]  # fmt: skip


def load(folder: str) -> list:
    files = sorted((VECTORS / folder).rglob("*.json"))
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def b64(value: str) -> bytes:
    return base64.b64decode(value)


def hashes(proof) -> list[bytes]:
    return [b64(h) for h in proof or []]


def inclusion_case(case: dict) -> tuple:
    size = case["end"] if "end" in case else case["treeSize"]  # a subtree [0, end) is the tree of size end
    return b64(case["leafHash"]), case["leafIdx"], size, hashes(case["proof"]), b64(case["root"])


def consistency_case(case: dict) -> tuple:
    if "end" in case:
        return case["end"], case["size"], hashes(case["proof"]), b64(case["root1"]), b64(case["root2"])
    return case["size1"], case["size2"], hashes(case["proof"]), b64(case["root1"]), b64(case["root2"])


@pytest.fixture(scope="module")
def store():
    s = merkle.InMemoryNodeStore()
    for i, leaf in enumerate(LEAVES):
        merkle.append_leaf(s, i, merkle.leaf_hash(leaf))
    return s


def test_the_vectors_are_there():
    assert len(load("inclusion")) == 98 and len(load("consistency")) == 98  # every file of both folders
    assert (VECTORS.parent / "LICENSE").is_file() and (VECTORS.parent / "README.md").is_file()


@pytest.mark.parametrize("case", load("inclusion") + load("subtreeinclusion"))
def test_inclusion_vector(case, store):
    leaf, index, size, proof, root = inclusion_case(case)
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, index, size, proof, root)
        return
    merkle.verify_inclusion(leaf, index, size, proof, root)
    assert merkle.root_from_inclusion_proof(leaf, index, size, proof) == root
    if size <= len(LEAVES) and leaf == merkle.leaf_hash(LEAVES[index]):
        # a tree of the eight known leaves: our prover gives the same proof and root
        assert merkle.inclusion_proof(index, size, store) == proof
        assert merkle.root_at(size, store) == root


@pytest.mark.parametrize("case", load("consistency") + load("subtreeconsistency"))
def test_consistency_vector(case, store):
    size1, size2, proof, root1, root2 = consistency_case(case)
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(size1, size2, proof, root1, root2)
        return
    merkle.verify_consistency(size1, size2, proof, root1, root2)
    known = [merkle.leaf_hash(leaf) for leaf in LEAVES[:size2]]
    if 0 < size1 and size2 <= len(LEAVES) and root2 == merkle.root(known):  # a tree of the eight known leaves
        assert merkle.consistency_proof(size1, size2, store) == proof


def test_vector_roots_are_the_roots_of_the_known_leaves(store):
    """Every root named by a happy-path vector over the eight leaves is the MTH of that many leaves."""
    seen = {}
    for param in load("inclusion") + load("consistency"):
        case = param.values[0]
        if case["wantErr"]:
            continue
        if "treeSize" in case:
            seen[case["treeSize"]] = b64(case["root"])
        elif case["size1"] != case["size2"]:
            seen[case["size1"]], seen[case["size2"]] = b64(case["root1"]), b64(case["root2"])
    assert set(seen) >= {1, 2, 3, 5, 6, 7, 8}
    for size, root in seen.items():
        assert merkle.root([merkle.leaf_hash(leaf) for leaf in LEAVES[:size]]) == root, size
        assert merkle.root_at(size, store) == root
