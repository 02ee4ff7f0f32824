"""C2SP signed notes with Ed25519 keys (https://c2sp.org/signed-note), as golang.org/x/mod/sumdb/note writes them.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more signature lines
``— <key name> <base64(4-byte key ID || signature)>`` each ending in a newline. No ASCII control character other than
the newline may appear anywhere. The text runs up to the LAST blank line.

Keys (signature type 0x01, Ed25519):

- key ID = the first 4 bytes, big-endian, of SHA-256(key name || 0x0A || 0x01 || 32-byte public key);
- verifier key string: ``<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>``;
- signer key string: ``PRIVATE+KEY+<name>+<key ID as 8 hex digits>+<base64(0x01 || 32-byte seed)>``.

Opening a note: signatures from unknown keys (name and key ID not both known) are ignored; a signature from a known
key must verify or the whole note is rejected; at least one known key must have signed. Repeated signatures by one
key count once (as in the Go package); more than 100 signature lines is treated as malformed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
_SIG_PREFIX = "— "  # em dash U+2014, space
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note or key cannot be used; the message says why."""


class MalformedNoteError(NoteError):
    """The bytes are not a well-formed signed note."""


class KeyFormatError(NoteError):
    """A signer or verifier key string is malformed, of an unknown algorithm, or its key ID does not match."""


class InvalidSignatureError(NoteError):
    """A known key's signature on the note does not verify."""


class UnverifiedNoteError(NoteError):
    """The note is well formed but no known key signed it."""


class AmbiguousKeyError(NoteError):
    """Two different known keys share a name and key ID."""


def key_id(name: str, public_key: bytes) -> int:
    """The key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[:4] as a big-endian integer."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + bytes(public_key)).digest()
    return int.from_bytes(digest[:4], "big")


def is_valid_name(name: str) -> bool:
    """A key name is non-empty UTF-8 with no Unicode space, no plus sign and no control character."""
    if not isinstance(name, str) or not name or "+" in name:
        return False
    if any(c.isspace() or ord(c) < 0x20 for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 public key with its name; ``key_id`` is computed from both."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise KeyFormatError(f"invalid key name {self.name!r}: it must be non-empty, without spaces or '+'")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise KeyFormatError("an Ed25519 public key is 32 bytes")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise KeyFormatError("not an Ed25519 public key") from None
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """Parse ``name+hex8+base64(0x01||public key)``. Raises KeyFormatError."""
        if not isinstance(vkey, str):
            raise KeyFormatError("a verifier key is a string")
        parts = vkey.split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise KeyFormatError("a verifier key has the form <name>+<8 hex digits>+<base64 key>")
        name, hex8, key64 = parts
        raw = _parse_key_fields(name, hex8, key64)
        verifier = cls(name, raw)
        if verifier.key_id != int(hex8, 16):
            raise KeyFormatError(f"verifier key ID {hex8} does not match the key (it is {verifier.key_id:08x})")
        return verifier

    @property
    def key_string(self) -> str:
        """The verifier key in signed-note form, ``name+hex8+base64(0x01||public key)``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 private key with its name. Its repr never shows the key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.verifier = Verifier(name, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """The key with this 32-byte RFC 8032 seed (private key)."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyFormatError("an Ed25519 seed is 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_key_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+name+hex8+base64(0x01||seed)``; the key ID must match the derived public key.

        Raises KeyFormatError (whose message never contains the key).
        """
        if not isinstance(skey, str):
            raise KeyFormatError("a signer key is a string")
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise KeyFormatError("a signer key has the form PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        _, _, name, hex8, key64 = parts
        seed = _parse_key_fields(name, hex8, key64)
        signer = cls.from_seed(name, seed)
        if signer.key_id != int(hex8, 16):
            raise KeyFormatError(f"signer key ID {hex8} does not match the key")
        return signer

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def key_string(self) -> str:
        """The secret signer key string, ``PRIVATE+KEY+name+hex8+base64(0x01||seed)``: keep it secret."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(bytes(message))

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True)
class Signature:
    """A signature line of a note: the key's name and ID, and the base64 of (key ID || signature)."""

    name: str
    key_id: int
    base64: str


class OpenedNote(NamedTuple):
    text: str
    signatures: tuple[Signature, ...]  # the verified ones, in note order


def sign(text: str | bytes, *signers: Signer) -> bytes:
    """The signed note of ``text`` by each signer, in order. Raises MalformedNoteError if the text does not end in a
    newline or contains a control character other than newline, NoteError without a signer."""
    body = _text_bytes(text)
    if not body.endswith(b"\n"):
        raise MalformedNoteError("note text must end with a newline")
    _check_characters(body)
    if not signers:
        raise NoteError("sign needs at least one signer")
    lines = []
    for signer in signers:
        payload = signer.key_id.to_bytes(4, "big") + signer.sign(body)
        lines.append(f"{_SIG_PREFIX}{signer.name} {base64.b64encode(payload).decode('ascii')}\n")
    return body + b"\n" + "".join(lines).encode("utf-8")


def open_note(note: bytes | str, verifiers: Iterable[Verifier | str]) -> OpenedNote:
    """Parse ``note`` and check its signatures against the known ``verifiers`` (Verifier objects or key strings).

    Returns the text and the verified signatures. Raises MalformedNoteError, InvalidSignatureError (a known key's
    signature fails), UnverifiedNoteError (no known key signed), AmbiguousKeyError, KeyFormatError (a bad key string).
    """
    known: dict[tuple[str, int], Verifier] = {}
    ambiguous: set[tuple[str, int]] = set()
    for v in verifiers:
        verifier = Verifier.from_key_string(v) if isinstance(v, str) else v
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot].public_key != verifier.public_key:
            ambiguous.add(slot)
        known[slot] = verifier

    data = _text_bytes(note)
    _check_characters(data)
    split = data.rfind(b"\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block or not block.endswith(b"\n"):
        raise MalformedNoteError("note has no signature lines, or its last line does not end with a newline")
    sig_lines = block[:-1].decode("utf-8").split("\n")
    if len(sig_lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signature lines")

    verified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(sig_lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {number} does not start with an em dash and a space")
        name, space, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not space or not is_valid_name(name):
            raise MalformedNoteError(f"signature line {number} has no valid key name")
        raw = _strict_b64(b64)
        if raw is None or len(raw) < 5:
            raise MalformedNoteError(f"signature line {number} is not base64 of a key ID and a signature")
        kid = int.from_bytes(raw[:4], "big")
        slot = (name, kid)
        if slot not in known or slot in seen:
            continue  # unknown keys are ignored (c2sp.org/signed-note); a key's repeats count once
        if slot in ambiguous:
            raise AmbiguousKeyError(f"two different known keys are named {name}+{kid:08x}")
        seen.add(slot)
        if not known[slot].verify(text, raw[4:]):
            raise InvalidSignatureError(f"the signature of key {name}+{kid:08x} does not verify")
        verified.append(Signature(name, kid, b64))
    if not verified:
        raise UnverifiedNoteError("no known key signed this note")
    return OpenedNote(text.decode("utf-8"), tuple(verified))


open = open_note  # the name the Go package uses; this module reads no files


def _parse_key_fields(name: str, hex8: str, key64: str) -> bytes:
    if not is_valid_name(name):
        raise KeyFormatError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")
    if not _HEX8.fullmatch(hex8):
        raise KeyFormatError("the key ID must be 8 hex digits")
    raw = _strict_b64(key64)
    if not raw:
        raise KeyFormatError("the key is not canonical base64")
    if raw[0] != ALG_ED25519:
        raise KeyFormatError(f"unknown signature algorithm {raw[0]:#04x}; only Ed25519 (0x01) is supported")
    if len(raw) != 33:
        raise KeyFormatError("an Ed25519 key is 32 bytes after its algorithm byte")
    return raw[1:]


def _strict_b64(value: str) -> bytes | None:
    """Decode standard base64 with padding; None unless ``value`` is exactly the canonical encoding."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if value and base64.b64encode(raw).decode("ascii") == value else None


def _text_bytes(value: str | bytes) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedNoteError("note is not valid UTF-8") from None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise MalformedNoteError("a note is bytes or text")


def _check_characters(data: bytes) -> None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNoteError("note is not valid UTF-8") from None
    bad = _CONTROL.search(decoded)
    if bad:
        raise MalformedNoteError(f"note contains the control character {bad.group()!r}; only newline is allowed")
