"""IdentityService over gRPC: protobuf in, use case, protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tollgate.identity.v1 import identity_service_pb2 as pb
from tollgate.identity.v1 import identity_service_pb2_grpc as pb_grpc
from tollgate_common.context import current_principal
from tollgate_common.errors import AuthenticationRequired
from tollgate_common.grpc_errors import HTTP_STATUS_HEADER
from tollgate_identity.service_layer.login import Login
from tollgate_identity.service_layer.ports import SignerPort

# One login cookie per browser: a login started in a second tab replaces the first
# tab's cookie, so the first tab's callback then fails and has to start again.
LOGIN_COOKIE = "tollgate_login"
COMPLETE_LOGIN = "/tollgate.identity.v1.IdentityService/CompleteLogin"
ANONYMOUS_METHODS = frozenset(
    f"/tollgate.identity.v1.IdentityService/{name}"
    for name in ("StartLogin", "CompleteLogin", "GetJwks", "GetPlatformHealth")
)


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    """Translates between IdentityService messages and the login use cases."""

    def __init__(
        self,
        login: Login,
        signer: SignerPort,
        cookie_attributes: str,
        cookie_seconds: int,
        own_database: Callable[[], Awaitable[bool]],
        peers: Sequence[health_pb2_grpc.HealthStub],
    ) -> None:
        self._login = login
        self._signer = signer
        self._cookie_attributes = cookie_attributes
        self._cookie_seconds = cookie_seconds
        self._own_database = own_database
        self._peers = peers

    async def StartLogin(
        self, request: pb.StartLoginRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartLoginResponse:
        """Redirect to the provider, binding the attempt to this browser."""
        start = await self._login.start()
        await context.send_initial_metadata(
            (
                (HTTP_STATUS_HEADER, "302"),
                ("location", start.authorization_url),
                (
                    "set-cookie",
                    f"{LOGIN_COOKIE}={start.browser_secret}; "
                    f"Max-Age={self._cookie_seconds}; {self._cookie_attributes}",
                ),
                ("cache-control", "no-store"),
            )
        )
        return pb.StartLoginResponse(authorization_url=start.authorization_url)

    async def CompleteLogin(
        self, request: pb.CompleteLoginRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteLoginResponse:
        """Finish the login and return an access token."""
        issued = await self._login.complete(
            request.code, request.state, request.error, _login_cookie(context)
        )
        await context.send_initial_metadata(
            (
                (
                    "set-cookie",
                    f"{LOGIN_COOKIE}=; Max-Age=0; {self._cookie_attributes}",
                ),
                ("cache-control", "no-store"),
            )
        )
        return pb.CompleteLoginResponse(
            access_token=issued.access_token,
            token_type="bearer",
            expires_in=issued.expires_in,
        )

    async def GetMe(
        self, request: pb.GetMeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMeResponse:
        """The caller and their organisation."""
        principal = current_principal()
        if principal is None:
            raise AuthenticationRequired("A bearer token is required.")
        user, organisation = await self._login.me(
            principal.user_id, principal.organisation_id
        )
        return pb.GetMeResponse(
            user=pb.User(
                id=str(user.id),
                email=user.email,
                name=user.name,
                role=user.role.value,
                organisation_id=str(user.organisation_id),
                created_at=_timestamp(user.created_at),
            ),
            organisation=pb.Organisation(
                id=str(organisation.id),
                name=organisation.name,
                slug=organisation.slug,
                created_at=_timestamp(organisation.created_at),
            ),
        )

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJwksResponse:
        """The public signing keys."""
        return pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in self._signer.jwks()])

    async def GetPlatformHealth(
        self, request: pb.GetPlatformHealthRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPlatformHealthResponse:
        """Whether identity, ledger and jobs all reach their databases."""
        results = await asyncio.gather(
            self._own_database(), *(_serving(peer) for peer in self._peers)
        )
        healthy = all(results)
        if not healthy:
            await context.send_initial_metadata(((HTTP_STATUS_HEADER, "503"),))
        return pb.GetPlatformHealthResponse(
            status="healthy" if healthy else "unhealthy",
            database="reachable" if healthy else "unreachable",
            timestamp=_timestamp(datetime.now(UTC)),
        )


async def _serving(peer: health_pb2_grpc.HealthStub) -> bool:
    try:
        response = await peer.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
    except grpc.aio.AioRpcError:
        return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


def _login_cookie(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key != "cookie" or not isinstance(value, str):
            continue
        try:
            cookies = SimpleCookie(value)
        except CookieError:
            return None
        if LOGIN_COOKIE in cookies:
            return cookies[LOGIN_COOKIE].value
    return None


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
