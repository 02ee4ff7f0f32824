"""The log's Ed25519 signing key and its origin line. No Flask here.

The key is a C2SP signed-note signer key (``PRIVATE+KEY+<name>+<keyid>+<base64>``) in the file named by
``REGISTRY_LOG_SIGNING_KEY_FILE``; its name is the log's origin (the checkpoint's first line), as C2SP recommends.
``registry log keygen`` writes one. In demo mode a key is generated on first start into the instance folder.
The services find the keys of their database through :func:`for_session`, set up once by ``create_app``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from registry.errors import ServiceUnavailable
from registry.ledger import note

DEMO_KEY_FILE = "log-signing-key"


class LogKeyError(ServiceUnavailable):
    """The signing key is missing or unreadable; the message says what to do (HTTP 503: nothing was changed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="log_key_unavailable")


@dataclass(frozen=True)
class LogKeys:
    signer: note.Signer

    @property
    def origin(self) -> str:
        return self.signer.name

    @cached_property
    def verifier(self) -> note.Verifier:
        return self.signer.verifier

    @property
    def verifier_key(self) -> str:
        """The public verifier key in signed-note form, ``name+keyid+base64key``."""
        return self.signer.verifier.key_string


def default_origin(province_code: str) -> str:
    return f"algorithm-registry.example/{province_code}/decision-log"


def write_new_key(path: Path, origin: str) -> LogKeys:
    """Generate a key named ``origin`` into ``path`` (mode 0600; refuses to overwrite)."""
    signer = note.Signer.generate(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(signer.key_string + "\n")
    return LogKeys(signer)


def read_key(path: Path) -> LogKeys:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LogKeyError(f"Cannot read the decision log's signing key {path}: {exc}") from None
    try:
        return LogKeys(note.Signer.from_key_string(text))
    except note.KeyFormatError as exc:
        raise LogKeyError(f"{path} is not a signed-note signer key: {exc}") from None


def load(config) -> LogKeys:
    """The configured key; else the instance folder's (made on first use in demo mode). Raises LogKeyError."""
    configured = config.get("LOG_SIGNING_KEY_FILE")
    if configured:
        return read_key(Path(str(configured)))
    path = Path(str(config["INSTANCE_PATH"])) / DEMO_KEY_FILE
    if path.exists():  # made by an earlier demo start in this instance
        return read_key(path)
    if config.get("DEMO"):
        origin = str(config.get("LOG_ORIGIN") or default_origin(str(config.get("PROVINCE_CODE", "410000"))))
        try:
            return write_new_key(path, origin)
        except FileExistsError:  # another process made it first
            return read_key(path)
    raise LogKeyError(
        "REGISTRY_LOG_SIGNING_KEY_FILE is not set: decisions cannot be logged. Make a key with "
        "`registry log keygen --out /secure/path/log-signing-key` and point the setting at it."
    )


_LOADERS: dict[int, Callable[[], LogKeys]] = {}
_LOADED: dict[int, LogKeys] = {}


def configure(engine: Engine, loader: Callable[[], LogKeys]) -> None:
    """Say how to get the keys for the decisions written through ``engine`` (read on first use)."""
    _LOADERS[id(engine)] = loader
    _LOADED.pop(id(engine), None)


def for_engine(engine: Engine) -> LogKeys:
    key = id(engine)
    if key not in _LOADED:
        loader = _LOADERS.get(key)
        if loader is None:
            raise LogKeyError("The decision log has no signing key configured for this database.")
        _LOADED[key] = loader()
    return _LOADED[key]


def for_session(session: Session) -> LogKeys:
    bind = session.get_bind()
    return for_engine(getattr(bind, "engine", bind))
