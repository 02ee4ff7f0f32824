"""C2SP signed notes, checked against golang.org/x/mod/sumdb/note: its documented PeterNeumann example (signer key,
verifier key, signed note) and the EnochRoot co-signature from its tests, plus its malformed-note cases."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest

from registry.ledger import note

# From the package documentation and sumdb/note/note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
SIGNED = TEXT + "\n" + PETER_SIG


def test_key_id_is_the_first_four_bytes_of_sha256_of_name_newline_type_and_key():
    verifier = note.Verifier.from_key_string(PETER_VKEY)
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()[:4]
    assert note.key_id("PeterNeumann", verifier.public_key) == int.from_bytes(expected, "big") == 0xC74F20A3
    assert verifier.key_id == 0xC74F20A3
    assert verifier.key_string == PETER_VKEY


def test_the_signer_key_derives_the_documented_verifier_key_and_round_trips():
    signer = note.Signer.from_key_string(PETER_SKEY)
    assert signer.verifier.key_string == PETER_VKEY
    assert signer.key_string == PETER_SKEY
    assert "AYEK" not in repr(signer)


def test_our_signature_equals_the_go_package_byte_for_byte():
    signer = note.Signer.from_key_string(PETER_SKEY)
    assert note.sign(TEXT, signer) == SIGNED.encode("utf-8")
    assert note.sign(TEXT.encode(), signer) == SIGNED.encode("utf-8")


def test_opening_the_documented_note():
    opened = note.open(SIGNED.encode(), [PETER_VKEY])
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [("PeterNeumann", 0xC74F20A3)]
    text, signatures = note.open_note(SIGNED, [note.Verifier.from_key_string(PETER_VKEY)])
    assert text == TEXT and len(signatures) == 1


def test_signatures_from_unknown_keys_are_ignored_and_known_ones_checked():
    both = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    assert [s.name for s in note.open(both, [PETER_VKEY]).signatures] == ["PeterNeumann"]
    assert [s.name for s in note.open(both, [ENOCH_VKEY]).signatures] == ["EnochRoot"]
    assert [s.name for s in note.open(both, [PETER_VKEY, ENOCH_VKEY]).signatures] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(note.UnverifiedNoteError):
        note.open(both, [])


def test_a_key_sharing_only_the_name_or_only_the_id_is_unknown():
    peter = note.Verifier.from_key_string(PETER_VKEY)
    other_id = base64.b64encode((peter.key_id + 1).to_bytes(4, "big") + bytes(64)).decode()
    same_id = base64.b64encode(peter.key_id.to_bytes(4, "big") + bytes(64)).decode()
    msg = SIGNED + f"— PeterNeumann {other_id}\n— CarmenSandiego {same_id}\n"
    assert len(note.open(msg, [peter]).signatures) == 1


def test_a_tampered_text_or_signature_is_rejected():
    with pytest.raises(note.InvalidSignatureError, match="PeterNeumann"):
        note.open(SIGNED.replace("problem,", "problem;"), [PETER_VKEY])
    with pytest.raises(note.InvalidSignatureError):
        note.open(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [PETER_VKEY])


def test_repeated_signatures_count_once():
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    assert len(note.open(msg, [PETER_VKEY]).signatures) == 1


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("— ", "- "),
        TEXT + "\n" + PETER_SIG.replace("AM=", "AM"),  # unpadded base64
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # no signature after the key ID
        TEXT + "\n" + PETER_SIG * 101,
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
    ],
)
def test_malformed_notes_are_rejected(msg):
    with pytest.raises(note.MalformedNoteError):
        note.open(msg, [PETER_VKEY])


def test_invalid_utf8_is_malformed():
    with pytest.raises(note.MalformedNoteError, match="UTF-8"):
        note.open(b"\xff" + SIGNED.encode(), [PETER_VKEY])


def test_the_text_may_contain_blank_lines_and_runs_to_the_last_one():
    signer = note.Signer.generate("registry.example/decision-log")
    text = "first\n\nsecond\n"
    assert note.open(note.sign(text, signer), [signer.verifier]).text == text


def test_sign_refuses_text_without_final_newline_or_with_control_characters():
    signer = note.Signer.generate("a")
    with pytest.raises(note.MalformedNoteError, match="newline"):
        note.sign("abc", signer)
    with pytest.raises(note.MalformedNoteError, match="control"):
        note.sign("a\tb\n", signer)
    with pytest.raises(note.NoteError, match="signer"):
        note.sign("abc\n")


def test_generated_keys_round_trip():
    signer = note.Signer.generate("registry.example/decision-log")
    again = note.Signer.from_key_string(signer.key_string)
    assert again.verifier == signer.verifier
    assert note.Verifier.from_key_string(signer.verifier.key_string) == signer.verifier
    msg = note.sign("hello\n", signer)
    assert note.open(msg, [signer.verifier.key_string]).text == "hello\n"
    assert not signer.verifier.verify(b"hello!\n", signer.sign(b"hello\n"))


def test_two_different_keys_with_one_name_and_id_are_ambiguous():
    signer = note.Signer.generate("PeterNeumann")
    forged = replace(signer.verifier)  # another public key claiming Peter's key ID
    object.__setattr__(forged, "key_id", 0xC74F20A3)
    with pytest.raises(note.AmbiguousKeyError):
        note.open(SIGNED, [PETER_VKEY, forged])


def mangled(key: str):
    """Every proper substring and every one-character increment, like the Go package's key tests."""
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                yield key[i:j]
    for i in range(len(key)):
        yield key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]


def test_mangled_verifier_keys_are_refused():
    for key in mangled(PETER_VKEY):
        with pytest.raises(note.KeyFormatError):
            note.Verifier.from_key_string(key)
    # a key of the wrong length and an unknown algorithm, each with a key ID that matches
    with pytest.raises(note.KeyFormatError):
        note.Verifier.from_key_string("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(note.KeyFormatError, match="algorithm"):
        note.Verifier.from_key_string("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_mangled_signer_keys_are_refused():
    for key in mangled(PETER_SKEY):
        with pytest.raises(note.KeyFormatError):
            note.Signer.from_key_string(key)
