"""C2SP tlog-checkpoints: the spec's example text, strict parsing, and signing with a note key."""

from __future__ import annotations

import base64

import pytest

from registry.ledger import checkpoint, merkle, note

ORIGIN = "registry.example.gov.cn/decision-log"
ROOT = merkle.leaf_hash(b"a decision")
SPEC_EXAMPLE = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


@pytest.fixture(scope="module")
def signer():
    return note.Signer.generate(ORIGIN)


def test_the_spec_example_parses():
    cp = checkpoint.parse_checkpoint(SPEC_EXAMPLE)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.text() == SPEC_EXAMPLE


def test_format_and_parse_round_trip_with_extensions():
    text = checkpoint.format_checkpoint(ORIGIN, 42, ROOT, ["ext one", "ext two"])
    assert text == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\next one\next two\n"
    assert checkpoint.parse_checkpoint(text) == checkpoint.Checkpoint(ORIGIN, 42, ROOT, ("ext one", "ext two"))
    assert checkpoint.parse_checkpoint(checkpoint.format_checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT)).size == 0


ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n42\n{ROOT64}", "end with a newline"),
        (f"{ORIGIN}\n42\n", "origin, a tree size and a root"),
        (f"\n42\n{ROOT64}\n", "line 1 is empty"),
        (f"{ORIGIN}\n042\n{ROOT64}\n", "leading zeroes"),
        (f"{ORIGIN}\n00\n{ROOT64}\n", "leading zeroes"),
        (f"{ORIGIN}\n+42\n{ROOT64}\n", "decimal"),
        (f"{ORIGIN}\n-1\n{ROOT64}\n", "decimal"),
        (f"{ORIGIN}\n 42\n{ROOT64}\n", "decimal"),
        (f"{ORIGIN}\n4_2\n{ROOT64}\n", "decimal"),
        (f"{ORIGIN}\n٤٢\n{ROOT64}\n", "decimal"),  # Arabic-Indic digits: int() takes them, the format does not
        (f"{ORIGIN}\n18446744073709551616\n{ROOT64}\n", "larger than"),
        (f"{ORIGIN}\n42\n{ROOT64[:-1]}\n", "base64"),
        (f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n42\n{ROOT64}\n\n", "line 4 is empty"),
        (f"{ORIGIN}\n42\n{ROOT64}\next\n\nmore\n", "line 5 is empty"),
        (f"{ORIGIN}\r\n42\n{ROOT64}\n", "control character"),
    ],
)
def test_malformed_checkpoints_are_rejected(text, message):
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.parse_checkpoint(text)


def test_non_canonical_base64_root_is_rejected():
    last = ROOT64[-2]
    # the same 32 bytes with different (non-zero) padding bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(checkpoint.CheckpointError, match="canonical"):
        checkpoint.parse_checkpoint(f"{ORIGIN}\n42\n{ROOT64[:-2]}{sibling}=\n")


@pytest.mark.parametrize(
    "args",
    [("", 1, ROOT), ("a\nb", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 2**64, ROOT), (ORIGIN, 1, ROOT[:16])],
)
def test_format_refuses_what_cannot_be_a_checkpoint(args):
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.format_checkpoint(*args)


def test_signed_checkpoint_round_trip(signer):
    cp = checkpoint.Checkpoint(ORIGIN, 7, ROOT)
    signed = checkpoint.sign_checkpoint(cp, signer)
    assert signed.startswith(cp.text().encode() + "\n— ".encode())
    opened = checkpoint.open_checkpoint(signed, [signer.verifier.key_string], origin=ORIGIN)
    assert opened.checkpoint == cp
    assert [s.name for s in opened.signatures] == [ORIGIN]


def test_a_tampered_or_foreign_checkpoint_is_rejected(signer):
    signed = checkpoint.sign_checkpoint(checkpoint.Checkpoint(ORIGIN, 7, ROOT), signer)
    with pytest.raises(note.InvalidSignatureError):
        checkpoint.open_checkpoint(signed.replace(b"\n7\n", b"\n8\n"), [signer.verifier])
    with pytest.raises(note.UnverifiedNoteError):
        checkpoint.open_checkpoint(signed, [note.Signer.generate(ORIGIN).verifier])
    with pytest.raises(checkpoint.CheckpointError, match="not 'another.example/log'"):
        checkpoint.open_checkpoint(signed, [signer.verifier], origin="another.example/log")


def test_a_validly_signed_note_that_is_not_a_checkpoint_is_rejected(signer):
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.open_checkpoint(note.sign("just some text\n", signer), [signer.verifier])


def test_with_an_origin_the_logs_own_signature_is_required(signer):
    witness = note.Signer.generate("witness.example")
    cp = checkpoint.Checkpoint(ORIGIN, 7, ROOT)
    cosigned = checkpoint.sign_checkpoint(cp, signer, witness)
    opened = checkpoint.open_checkpoint(cosigned, [signer.verifier, witness.verifier], origin=ORIGIN)
    assert [s.name for s in opened.signatures] == [ORIGIN, "witness.example"]
    only_witness = checkpoint.sign_checkpoint(cp, witness)
    assert checkpoint.open_checkpoint(only_witness, [witness.verifier]).checkpoint == cp
    with pytest.raises(checkpoint.CheckpointError, match="no verified signature by the log's key"):
        checkpoint.open_checkpoint(only_witness, [signer.verifier, witness.verifier], origin=ORIGIN)
