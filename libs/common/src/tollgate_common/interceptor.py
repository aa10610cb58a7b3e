"""The one server interceptor: call context, authentication, metrics and errors.

For every unary RPC it takes the request id from the metadata (Envoy sets one), checks
the bearer token unless the method is anonymous, validates the request against the
rules its proto declares, runs the handler, and turns any
exception into the public error of ``grpc_errors``: domain errors through the service's
table, anything else into ``internal_error`` with the request id, logged with its trace.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from tollgate_common import errors, grpc_errors, tracing, validation
from tollgate_common.auth import TokenVerifier, bearer_token
from tollgate_common.context import principal_var, request_id_var, trace_id_var
from tollgate_common.failures import unreachable
from tollgate_common.idempotency import REPLAYED_HEADER
from tollgate_common.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

RPCS = Counter(
    "tollgate_grpc_server_handled_total",
    "RPCs completed, by method and public status.",
    ["method", "http_status"],
)
LATENCY = Histogram(
    "tollgate_grpc_server_handling_seconds",
    "RPC latency, by method.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """Sets up the call context and maps failures to the public errors."""

    def __init__(
        self,
        verifier: TokenVerifier | None,
        error_table: Mapping[type[errors.DomainError], grpc_errors.PublicError],
        anonymous_methods: Collection[str] = (),
        limiter: RateLimiter | None = None,
        undecodable: Mapping[str, type[errors.DomainError]] | None = None,
    ) -> None:
        self._verifier = verifier
        self._table = {**grpc_errors.COMMON_ERRORS, **error_table}
        self._anonymous = frozenset(anonymous_methods)
        self._limiter = limiter
        # What a request that does not even decode is, per method (default: 400).
        self._undecodable = dict(undecodable or {})

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap unary handlers of our own services; leave health and reflection."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            handler is None
            or handler.unary_unary is None
            or method.startswith("/grpc.")
        ):
            return handler
        behaviour = self._wrap(method, handler.unary_unary)
        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, inner: Behaviour) -> Behaviour:
        name = method.rsplit("/", 1)[-1]

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            metadata = dict(context.invocation_metadata() or ())
            request_id_var.set(str(metadata.get("x-request-id") or uuid.uuid4()))
            trace_id_var.set(tracing.trace_id_from(metadata.get(tracing.HEADER)))
            principal_var.set(None)
            status = 200
            try:
                if isinstance(request, _Undecodable):
                    kind = self._undecodable.get(method, errors.MalformedRequest)
                    raise kind("The request is not valid (it is not UTF-8 text).")
                await self._authenticate(method, metadata)
                validation.validate(method, request)
                return await inner(request, context)
            except errors.DomainError as error:
                public = grpc_errors.lookup(error, self._table)
                status = public.http_status
                log = logger.info if status < 500 else logger.error
                log("%s failed: %s", name, public.error)
                body = grpc_errors.envelope(
                    public.error, error.message, **error.context
                )
                extra = [(REPLAYED_HEADER, "true")] if error.replayed else []
                if isinstance(error, errors.RateLimited):
                    extra.append(("retry-after", str(error.retry_after)))
                await grpc_errors.abort(context, status, body, extra)
            except grpc.aio.AbortError:
                status = _abort_status(context)
                raise
            except Exception as error:
                if unreachable(error):
                    status = 503
                    logger.warning(
                        "%s: a dependency is unavailable", name, exc_info=True
                    )
                    body = grpc_errors.envelope(
                        "service_unavailable",
                        "A service this call needs is unavailable; try again later.",
                    )
                else:
                    status = 500
                    logger.exception("%s failed unexpectedly", name)
                    body = grpc_errors.envelope(
                        "internal_error",
                        "Something went wrong on our side.",
                        request_id=request_id_var.get(),
                    )
                await grpc_errors.abort(context, status, body)
            finally:
                RPCS.labels(name, str(status)).inc()
                LATENCY.labels(name).observe(time.perf_counter() - started)

        return behaviour

    async def _authenticate(self, method: str, metadata: dict[str, Any]) -> None:
        token = bearer_token(metadata.get("authorization"))
        if token is None:
            if method in self._anonymous:
                return
            raise errors.AuthenticationRequired("A bearer token is required.")
        if self._verifier is None:
            return
        principal = await self._verifier.verify(token)
        principal_var.set(principal)
        # Internal calls are counted where the public call came in, not again here.
        if self._limiter is not None and method not in self._anonymous:
            wait = self._limiter.acquire(principal.organisation_id)
            if wait is not None:
                raise errors.RateLimited(
                    "Too many requests for this organisation; slow down.", wait
                )


class _Undecodable:
    """Stands for a request whose bytes did not parse, so the handler can refuse it."""


def _tolerant(
    deserializer: Callable[[bytes], Any] | None,
) -> Callable[[bytes], Any] | None:
    # gRPC would answer a parse failure (a string field that is not UTF-8, say)
    # with a bare INTERNAL before any interceptor runs; this lets it be a 400.
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:
            return _Undecodable()

    return deserialize


def _abort_status(context: grpc.aio.ServicerContext) -> int:
    for key, value in context.trailing_metadata() or ():
        if key == grpc_errors.HTTP_STATUS_HEADER:
            return int(value)
    return 500
