"""C2SP transparency-log proofs (https://c2sp.org/tlog-proof): a decision's offline-verifiable ``.tlog-proof`` file.

The file is lines separated by newlines (U+000A):

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>          (optional, unauthenticated)
    index <leaf index, decimal, no leading zeroes>
    <base64 inclusion proof hash>       (zero or more: from the leaf's sibling up to the root's child, RFC 6962)
    <empty line>
    <the signed checkpoint, verbatim (c2sp.org/tlog-checkpoint)>

It is what transparency-dev/merkle's ``proof.NewTLogProof`` writes. A verifier checks the checkpoint's signatures,
then the inclusion proof of the leaf at ``index`` against the checkpoint's size and root hash; the extra data is not
covered by any signature and must not be trusted.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from registry.ledger import checkpoint as checkpoints
from registry.ledger import merkle, note

HEADER = "c2sp.org/tlog-proof@v1"
MEDIA_TYPE = "text/plain; charset=utf-8"
FILE_EXTENSION = ".tlog-proof"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class ProofFileError(ValueError):
    """The bytes are not a well-formed tlog-proof file; the message says which line is wrong."""


@dataclass(frozen=True)
class ProofFile:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes  # the signed checkpoint note, verbatim
    extra: bytes | None = None


@dataclass(frozen=True)
class VerifiedProof:
    index: int
    checkpoint: checkpoints.Checkpoint
    signatures: tuple[note.Signature, ...]
    extra: bytes | None  # NOT authenticated


def format_proof_file(
    index: int, hashes: Sequence[bytes], signed_checkpoint: bytes, extra: bytes | None = None
) -> bytes:
    """The tlog-proof file for leaf ``index`` with its inclusion proof ``hashes`` against ``signed_checkpoint``.

    Raises ProofFileError for a negative index, a hash that is not 32 bytes, or an empty checkpoint.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= checkpoints.MAX_SIZE:
        raise ProofFileError(f"index must be an integer from 0 to 2^64 - 1, got {index!r}")
    if not signed_checkpoint:
        raise ProofFileError("the signed checkpoint is empty")
    lines = [HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(bytes(extra)).decode("ascii"))
    lines.append(f"index {index}")
    for position, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != merkle.HASH_SIZE:
            raise ProofFileError(f"proof hash #{position} must be {merkle.HASH_SIZE} bytes")
        lines.append(base64.b64encode(h).decode("ascii"))
    return ("\n".join(lines) + "\n\n").encode("ascii") + bytes(signed_checkpoint)


def parse_proof_file(data: bytes | str) -> ProofFile:
    """Parse a tlog-proof file strictly. Raises ProofFileError naming the line at fault."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray):
        raise ProofFileError("a proof file is bytes")
    head, sep, signed_checkpoint = bytes(data).partition(b"\n\n")
    if not sep:
        raise ProofFileError("no empty line between the proof and the checkpoint")
    if not signed_checkpoint:
        raise ProofFileError("the checkpoint after the empty line is missing")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise ProofFileError("the proof lines must be ASCII") from None
    if lines[0] != HEADER:
        raise ProofFileError(f"line 1 must be {HEADER!r}")
    number = 2
    extra = None
    if len(lines) > 1 and lines[1].startswith("extra "):
        encoded = lines[1][len("extra ") :]
        extra = _b64(encoded, f"line {number} (extra)")
        number += 1
    if len(lines) < number or not lines[number - 1].startswith("index "):
        raise ProofFileError(f"line {number} must be 'index <N>'")
    digits = lines[number - 1][len("index ") :]
    if not _DECIMAL.fullmatch(digits) or int(digits) > checkpoints.MAX_SIZE:
        raise ProofFileError(f"line {number}: the index must be decimal without leading zeroes, below 2^64")
    index = int(digits)
    hashes = []
    for line_number, line in enumerate(lines[number:], start=number + 1):
        h = _b64(line, f"line {line_number} (proof hash)")
        if len(h) != merkle.HASH_SIZE:
            raise ProofFileError(f"line {line_number}: a proof hash is {merkle.HASH_SIZE} bytes, got {len(h)}")
        hashes.append(h)
    return ProofFile(index, tuple(hashes), signed_checkpoint, extra)


def verify_proof_file(
    data: bytes | str,
    leaf: bytes,
    verifiers: Iterable[note.Verifier | str],
    *,
    leaf_is_hash: bool = False,
    origin: str | None = None,
) -> VerifiedProof:
    """Verify a tlog-proof file for ``leaf`` (the leaf's bytes, or with ``leaf_is_hash`` its RFC 6962 leaf hash).

    The checkpoint must be signed by one of ``verifiers`` (and be log ``origin``'s, if given) and the proof must
    show the leaf at the file's index in the checkpointed tree. Raises ProofFileError, note.NoteError,
    checkpoint.CheckpointError or merkle.ProofError naming what failed.
    """
    parsed = parse_proof_file(data)
    opened = checkpoints.open_checkpoint(parsed.checkpoint, verifiers, origin=origin)
    if leaf_is_hash:
        leaf_hash = bytes(leaf)
    else:
        if not isinstance(leaf, bytes | bytearray | memoryview):
            raise TypeError("the leaf must be bytes")
        leaf_hash = merkle.leaf_hash(bytes(leaf))
    cp = opened.checkpoint
    merkle.verify_inclusion(leaf_hash, parsed.index, cp.size, parsed.hashes, cp.root_hash)
    return VerifiedProof(parsed.index, cp, opened.signatures, parsed.extra)


def _b64(value: str, where: str) -> bytes:
    if value == "":
        if where.endswith("(extra)"):
            return b""
        raise ProofFileError(f"{where} is empty")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofFileError(f"{where} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise ProofFileError(f"{where} is not canonical base64")
    return raw
