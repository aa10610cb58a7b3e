"""Outgoing gRPC calls: every one carries a deadline, the request id and the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from tollgate_common import tracing
from tollgate_common.auth import JwksCache, JwksFetcher, TokenVerifier
from tollgate_common.context import (
    current_principal,
    current_request_id,
    current_trace_id,
)


class PropagatingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds x-request-id, the end user's bearer token and a default deadline."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Fill in what the caller left out and continue."""
        metadata = list(client_call_details.metadata or ())
        keys = {key for key, _ in metadata}
        if "x-request-id" not in keys:
            metadata.append(("x-request-id", current_request_id()))
        if tracing.HEADER not in keys and current_trace_id():
            metadata.append(
                (tracing.HEADER, tracing.child_traceparent(current_trace_id()))
            )
        principal = current_principal()
        if principal is not None and "authorization" not in keys:
            metadata.append(("authorization", f"Bearer {principal.token}"))
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout or self._timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def channel(target: str, timeout_seconds: float) -> grpc.aio.Channel:
    """An insecure channel to another service of the platform.

    Services talk in plain text on a trusted network; mTLS between them is not set up
    yet, so anything that can reach a service port can call its internal RPCs.
    """
    return grpc.aio.insecure_channel(
        target,
        interceptors=[PropagatingInterceptor(timeout_seconds)],
        options=[("grpc.lb_policy_name", "round_robin")],
    )


def identity_jwks(target: str, timeout_seconds: float) -> JwksFetcher:
    """A fetcher of identity's JWK Set over gRPC, for ``JwksCache``."""
    from google.protobuf.json_format import MessageToDict

    from tollgate.identity.v1 import identity_service_pb2 as pb
    from tollgate.identity.v1 import identity_service_pb2_grpc as pb_grpc

    stub = pb_grpc.IdentityServiceStub(channel(target, timeout_seconds))

    async def fetch() -> list[dict[str, Any]]:
        response = await stub.GetJwks(pb.GetJwksRequest())
        return [
            MessageToDict(key, preserving_proto_field_name=True)
            for key in response.keys
        ]

    return fetch


def standard_verifier(
    identity_target: str, issuer: str, audience: str, timeout_seconds: float
) -> TokenVerifier:
    """The token verifier every service but identity uses."""
    return TokenVerifier(
        JwksCache(identity_jwks(identity_target, timeout_seconds)), issuer, audience
    )
