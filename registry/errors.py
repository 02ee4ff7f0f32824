"""Domain errors. They know nothing of HTTP; registry.problems turns each into an RFC 9457 answer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DomainError(Exception):
    """Base class: a message for a person, a stable code for a program, and optional details."""

    message: str
    code: str = "error"
    pointer: str | None = None  # JSON Pointer to the field at fault, when there is one
    extra: dict = field(default_factory=dict)

    status = 400

    def __str__(self) -> str:
        return self.message


class BadRequest(DomainError):
    status = 400


class Unauthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class PayloadTooLarge(DomainError):
    status = 413


class UnsupportedMediaType(DomainError):
    status = 415


class Unprocessable(DomainError):
    status = 422


@dataclass
class ValidationFailed(Unprocessable):
    """A document broke its schema: every error, each with its JSON Pointer (schemas.validation.FieldError)."""

    errors: list = field(default_factory=list)


@dataclass
class IllegalTransition(Conflict):
    """An action that the lifecycle does not allow from the filing's current state."""

    current_state: str = ""
    allowed_actions: tuple[str, ...] = ()


class TooManyRequests(DomainError):
    """Too many attempts from one address; ``extra["retry_after"]``: seconds until it may try again."""

    status = 429


class ServiceUnavailable(DomainError):
    """The registry is not set up to do this now (e.g. no signing key for the decision log); nothing was changed."""

    status = 503


class InsufficientStorage(DomainError):
    """The file store has no room for a file (disk full, quota, file size limit); nothing was kept. The same
    request succeeds once space is freed."""

    status = 507
