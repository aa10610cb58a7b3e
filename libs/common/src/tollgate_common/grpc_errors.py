"""How errors leave a service: a gRPC status plus what the gateway needs.

Every error is sent as a gRPC status with a ``google.rpc.ErrorInfo`` detail (for gRPC
clients) and two trailing metadata entries the gateway's Lua filter reads:
``x-http-status`` and ``x-error-envelope``, the public body of API.md. Keeping the
envelope here means the gateway holds no knowledge of individual errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from tollgate_common import errors

Metadata = Sequence[tuple[str, str | bytes]]
HTTP_STATUS_HEADER = "x-http-status"
ENVELOPE_HEADER = "x-error-envelope"


@dataclass(frozen=True, slots=True)
class PublicError:
    """How one kind of failure looks from outside."""

    grpc_code: grpc.StatusCode
    http_status: int
    error: str


COMMON_ERRORS: Mapping[type[errors.DomainError], PublicError] = {
    errors.AuthenticationRequired: PublicError(
        grpc.StatusCode.UNAUTHENTICATED, 401, "authentication_required"
    ),
    errors.Forbidden: PublicError(grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"),
    errors.MalformedRequest: PublicError(
        grpc.StatusCode.INVALID_ARGUMENT, 400, "malformed_request"
    ),
    errors.InvalidRequest: PublicError(
        grpc.StatusCode.INVALID_ARGUMENT, 422, "validation_error"
    ),
    errors.DependencyUnavailable: PublicError(
        grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable"
    ),
    errors.RateLimited: PublicError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limited"
    ),
}
INTERNAL = PublicError(grpc.StatusCode.INTERNAL, 500, "internal_error")


def envelope(error: str, message: str, **context: Any) -> dict[str, Any]:
    """The public error body of API.md."""
    return {"detail": {"error": error, "message": message, **context}}


def grpc_code_for(http_status: int) -> grpc.StatusCode:
    """The gRPC code that best says an HTTP status (for replayed responses)."""
    return _CODES_BY_HTTP_STATUS.get(http_status, grpc.StatusCode.UNKNOWN)


def lookup(
    error: BaseException, table: Mapping[type[errors.DomainError], PublicError]
) -> PublicError:
    """The entry of the most specific class of ``error`` in ``table``."""
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]  # type: ignore[index]
    return INTERNAL


async def abort(
    context: grpc.aio.ServicerContext,
    http_status: int,
    body: Mapping[str, Any],
    extra_metadata: Metadata = (),
) -> None:
    """End the call with an error whose public form is ``http_status`` and ``body``."""
    detail = body.get("detail", {})
    code = grpc_code_for(http_status)
    info = error_details_pb2.ErrorInfo(
        reason=str(detail.get("error", "")),
        domain="tollgate",
        metadata={
            k: str(v) for k, v in detail.items() if k not in ("error", "message")
        },
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    status = status_pb2.Status(
        code=code.value[0], message=str(detail.get("message", "")), details=[packed]
    )
    metadata = (
        (HTTP_STATUS_HEADER, str(http_status)),
        (ENVELOPE_HEADER, json.dumps(body, ensure_ascii=True)),
        ("grpc-status-details-bin", status.SerializeToString()),
        *extra_metadata,
    )
    await context.abort(code, status.message, trailing_metadata=metadata)


_CODES_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    402: grpc.StatusCode.FAILED_PRECONDITION,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
