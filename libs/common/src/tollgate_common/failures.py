"""Telling "a peer could not be reached" from a bug, for every service.

Such a failure may be retried and moved nothing (every write is one transaction),
so it is a 503, not a 500.
"""

from __future__ import annotations

import errno

import asyncpg
import grpc
import sqlalchemy.exc

# Failures that mean "a database, queue or service could not be reached": the call
# may be retried, and it moved nothing, since every write is one transaction.
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    # PgBouncer ends a client that waited past query_wait_timeout with 08P01.
    asyncpg.exceptions.ProtocolViolationError,
)
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
_UNAVAILABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def unreachable(error: BaseException | None) -> bool:
    """Whether ``error`` or anything that caused it is a failure to reach a peer."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _UNAVAILABLE_TYPES):
            return True
        if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
            return True
        if (
            isinstance(error, grpc.aio.AioRpcError)
            and error.code() in _UNAVAILABLE_CODES
        ):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False
