"""The error base every service's exceptions derive from, free of gRPC.

A service declares one base class (``LedgerError``, ...) below ``DomainError``; its
entrypoint maps each class to a public status in one table (see ``grpc_errors``).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure with a message for a person and context fields for a machine."""

    # Set when the failure is a stored outcome answered again for an Idempotency-Key.
    replayed: bool = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class AuthenticationRequired(DomainError):
    """No token, or one that does not verify."""


class Forbidden(DomainError):
    """The caller's role does not allow the call."""


class MalformedRequest(DomainError):
    """The request cannot be read at all (not JSON, not an object, not UTF-8)."""


class InvalidRequest(DomainError):
    """A field is missing or out of range; the message names it."""


class DependencyUnavailable(DomainError):
    """A database, queue or other service could not be reached."""


class RateLimited(DomainError):
    """The organisation is over its rate limit; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
