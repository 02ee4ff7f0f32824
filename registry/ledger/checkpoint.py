"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint): the signed tree head of the decision log.

The note text is at least three non-empty lines, each ending in a newline:

1. the origin, a non-empty unique name of the log (recommended: a schema-less URL without spaces or "+"),
2. the tree size in ASCII decimal, no leading zeroes (``0`` for the empty tree),
3. the base64 of the RFC 6962 root hash (32 bytes),
4. optional extension lines, each non-empty (opaque; the spec does not recommend them).

The checkpoint is signed as a C2SP signed note (``note.py``); the log's key name should be its origin.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from registry.ledger import note
from registry.ledger.merkle import HASH_SIZE

MAX_SIZE = 2**64 - 1  # tree sizes are uint64 in every implementation of the format
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x1f]")


class CheckpointError(ValueError):
    """The text is not a well-formed checkpoint, or not the checkpoint expected; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return format_checkpoint(self.origin, self.size, self.root_hash, self.extensions)


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint note text. Raises CheckpointError for an empty or multi-line origin, a size outside uint64,
    a root that is not 32 bytes, or an empty or multi-line extension line."""
    if not isinstance(origin, str) or not origin or _CONTROL.search(origin):
        raise CheckpointError("the origin must be a non-empty line without control characters")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise CheckpointError(f"the tree size must be an integer from 0 to 2^64 - 1, got {size!r}")
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise CheckpointError(f"the root hash must be {HASH_SIZE} bytes")
    for line in extensions:
        if not isinstance(line, str) or not line or _CONTROL.search(line):
            raise CheckpointError("an extension line must be non-empty, without control characters")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse checkpoint note text strictly (see the module doc). Raises CheckpointError naming the line at fault."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("checkpoint is not valid UTF-8") from None
    if not isinstance(text, str):
        raise CheckpointError("checkpoint text must be a string")
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs an origin, a tree size and a root hash line")
    for number, line in enumerate(lines, start=1):
        if not line:
            raise CheckpointError(f"checkpoint line {number} is empty")
        if _CONTROL.search(line):
            raise CheckpointError(f"checkpoint line {number} contains a control character")
    origin, size_line, root_line, *extensions = lines
    if not _DECIMAL.fullmatch(size_line):
        raise CheckpointError("tree size (line 2) must be decimal digits without leading zeroes")
    size = int(size_line)
    if size > MAX_SIZE:
        raise CheckpointError("tree size (line 2) is larger than 2^64 - 1")
    try:
        root = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError("root hash (line 3) is not base64") from None
    if base64.b64encode(root).decode("ascii") != root_line:
        raise CheckpointError("root hash (line 3) is not canonical base64")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash (line 3) is {len(root)} bytes, not {HASH_SIZE}")
    return Checkpoint(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, *signers: note.Signer) -> bytes:
    """The signed-note form of ``checkpoint``, signed by each signer (the log's own key first)."""
    return note.sign(checkpoint.text(), *signers)


@dataclass(frozen=True)
class OpenedCheckpoint:
    checkpoint: Checkpoint
    signatures: tuple[note.Signature, ...]


def open_checkpoint(
    data: bytes | str, verifiers: Iterable[note.Verifier | str], *, origin: str | None = None
) -> OpenedCheckpoint:
    """Verify a signed checkpoint with the known ``verifiers`` and parse it.

    With ``origin``, the checkpoint must be that log's and carry a verified signature by a key named ``origin`` (the
    log's own key, as the spec recommends naming it), not only, say, a witness's cosignature. Raises note.NoteError
    subclasses for the note and its signatures, CheckpointError for the text, a wrong origin or a missing log
    signature.
    """
    opened = note.open_note(data, verifiers)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None:
        if checkpoint.origin != origin:
            raise CheckpointError(f"checkpoint is from log {checkpoint.origin!r}, not {origin!r}")
        if not any(signature.name == origin for signature in opened.signatures):
            raise CheckpointError(f"checkpoint has no verified signature by the log's key {origin!r}")
    return OpenedCheckpoint(checkpoint, opened.signatures)
