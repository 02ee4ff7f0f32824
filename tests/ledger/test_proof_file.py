"""C2SP tlog-proof files: the spec's example parses, a real log's proofs verify offline, tampering is caught."""

from __future__ import annotations

import base64

import pytest

from registry.ledger import checkpoint, merkle, note, proof_file
from registry.ledger.canonical import canonical_json

ORIGIN = "registry.example.gov.cn/decision-log"

SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

— example.com/fancylog hI2DJw[...]1roloI=
"""


class Log:
    """A small decision log: records as canonical JSON leaves, a store, a signed checkpoint."""

    def __init__(self, count: int):
        self.signer = note.Signer.generate(ORIGIN)
        self.store = merkle.InMemoryNodeStore()
        self.leaves = [canonical_json({"decision": i, "outcome": "approved", "filing": f"F-{i}"}) for i in range(count)]
        for i, leaf in enumerate(self.leaves):
            merkle.append_leaf(self.store, i, merkle.leaf_hash(leaf))
        cp = checkpoint.Checkpoint(ORIGIN, count, merkle.root_at(count, self.store))
        self.signed = checkpoint.sign_checkpoint(cp, self.signer)

    def proof(self, index: int, extra: bytes | None = None) -> bytes:
        hashes = merkle.inclusion_proof(index, len(self.leaves), self.store)
        return proof_file.format_proof_file(index, hashes, self.signed, extra)


@pytest.fixture(scope="module")
def log():
    return Log(13)


def test_the_spec_example_parses():
    parsed = proof_file.parse_proof_file(SPEC_EXAMPLE)
    assert parsed.index == 73894
    assert parsed.extra == base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert parsed.hashes[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert len(parsed.hashes) == 5
    assert parsed.checkpoint.startswith(b"example.com/fancylog\n109482\n")


def test_the_layout_is_the_one_transparency_dev_writes(log):
    data = log.proof(12, extra=b"decision 12")
    hashes = merkle.inclusion_proof(12, 13, log.store)
    lines = ["c2sp.org/tlog-proof@v1", "extra " + base64.b64encode(b"decision 12").decode(), "index 12"]
    lines += [base64.b64encode(h).decode() for h in hashes]
    assert data == ("\n".join(lines) + "\n\n").encode() + log.signed
    assert proof_file.parse_proof_file(data) == proof_file.ProofFile(12, tuple(hashes), log.signed, b"decision 12")


@pytest.mark.parametrize("index", range(13))
def test_every_decision_proof_verifies_offline(log, index):
    verified = proof_file.verify_proof_file(log.proof(index), log.leaves[index], [log.signer.verifier.key_string])
    assert verified.index == index
    assert verified.checkpoint.size == 13 and verified.checkpoint.origin == ORIGIN
    assert verified.extra is None
    by_hash = proof_file.verify_proof_file(
        log.proof(index), merkle.leaf_hash(log.leaves[index]), [log.signer.verifier], leaf_is_hash=True, origin=ORIGIN
    )
    assert by_hash.index == index


def test_a_single_entry_log_has_an_empty_proof():
    one = Log(1)
    data = one.proof(0)
    assert b"index 0\n\n" in data
    assert proof_file.verify_proof_file(data, one.leaves[0], [one.signer.verifier]).index == 0


def test_another_leaf_or_index_is_rejected(log):
    with pytest.raises(merkle.ProofError):
        proof_file.verify_proof_file(log.proof(3), log.leaves[4], [log.signer.verifier])
    moved = log.proof(3).replace(b"index 3\n", b"index 2\n")
    with pytest.raises(merkle.ProofError):
        proof_file.verify_proof_file(moved, log.leaves[3], [log.signer.verifier])
    beyond = log.proof(3).replace(b"index 3\n", b"index 13\n")
    with pytest.raises(merkle.ProofError, match="not below tree size 13"):
        proof_file.verify_proof_file(beyond, log.leaves[3], [log.signer.verifier])


def test_a_flipped_hash_is_rejected(log):
    data = log.proof(5)
    parsed = proof_file.parse_proof_file(data)
    bad_hash = bytes([parsed.hashes[1][0] ^ 1]) + parsed.hashes[1][1:]
    bad = proof_file.format_proof_file(5, [parsed.hashes[0], bad_hash, *parsed.hashes[2:]], parsed.checkpoint)
    with pytest.raises(merkle.ProofError):
        proof_file.verify_proof_file(bad, log.leaves[5], [log.signer.verifier])


def test_a_checkpoint_that_is_forged_or_from_another_key_is_rejected(log):
    data = log.proof(5)
    with pytest.raises(note.UnverifiedNoteError):
        proof_file.verify_proof_file(data, log.leaves[5], [note.Signer.generate(ORIGIN).verifier])
    forged = data.replace(b"\n13\n", b"\n14\n")
    with pytest.raises(note.InvalidSignatureError):
        proof_file.verify_proof_file(forged, log.leaves[5], [log.signer.verifier])
    with pytest.raises(checkpoint.CheckpointError):
        proof_file.verify_proof_file(data, log.leaves[5], [log.signer.verifier], origin="another.example/log")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"c2sp.org/tlog-proof@v2\nindex 0\n\nx\n", "line 1"),
        (b"c2sp.org/tlog-proof@v1\nindex 01\n\nx\n", "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindex -1\n\nx\n", "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindx 1\n\nx\n", "line 2 must be 'index <N>'"),
        (b"c2sp.org/tlog-proof@v1\nextra ***\nindex 1\n\nx\n", "line 2 \\(extra\\) is not base64"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx\n", "32 bytes, got 3"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n" + b"A" * 43 + b"=\n", "no empty line"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n\n", "checkpoint after the empty line is missing"),
    ],
)
def test_malformed_proof_files_are_rejected(data, message):
    with pytest.raises(proof_file.ProofFileError, match=message):
        proof_file.parse_proof_file(data)
