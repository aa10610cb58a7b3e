"""The identity process: ``python -m tollgate_identity.entrypoints.main``."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from importlib import resources

import grpc
from grpc_health.v1 import health_pb2_grpc

from tollgate.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from tollgate_common import db, logs, server
from tollgate_common.auth import JwksCache, TokenVerifier
from tollgate_common.clients import channel
from tollgate_common.interceptor import CallContextInterceptor
from tollgate_common.settings import load
from tollgate_identity.adapters.keys import KeyStore
from tollgate_identity.adapters.oidc import OidcProvider
from tollgate_identity.adapters.postgres import PostgresDirectory
from tollgate_identity.domain.errors import LoginFailed
from tollgate_identity.entrypoints.errors import ERRORS
from tollgate_identity.entrypoints.servicer import (
    ANONYMOUS_METHODS,
    COMPLETE_LOGIN,
    IdentityServicer,
)
from tollgate_identity.entrypoints.settings import IdentitySettings
from tollgate_identity.service_layer.login import Login, TokenPolicy


def consumer_domains() -> frozenset[str]:
    """The mailbox providers listed in the package's data file."""
    text = resources.files("tollgate_identity.data").joinpath("consumer_domains.txt")
    lines = (line.strip().lower() for line in text.read_text().splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


async def run(settings: IdentitySettings) -> None:
    """Wire identity together and serve it."""
    engine = db.engine_for(settings)
    login_engine = db.engine_for(settings, settings.system_database_url)
    keys = KeyStore(
        settings.signing_keys_dir,
        timedelta(seconds=settings.signing_key_activation_seconds),
    )
    keys.ensure_key(create=settings.signing_keys_create)
    provider = OidcProvider(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret.get_secret_value(),
        settings.oidc_redirect_uri,
        settings.call_timeout_seconds,
    )
    login = Login(
        provider=provider,
        directory=PostgresDirectory(engine, login_engine),
        signer=keys,
        policy=TokenPolicy(
            settings.token_issuer,
            settings.token_audience,
            timedelta(seconds=settings.token_lifetime_seconds),
        ),
        consumer_domains=consumer_domains(),
        attempt_lifetime=timedelta(seconds=settings.login_attempt_seconds),
    )

    async def local_jwks() -> list[dict[str, str]]:
        return list(keys.jwks())

    verifier = TokenVerifier(
        JwksCache(local_jwks, min_refresh_seconds=1.0),
        settings.token_issuer,
        settings.token_audience,
    )
    peers = [
        channel(target, settings.call_timeout_seconds)
        for target in (settings.ledger_target, settings.jobs_target)
    ]
    cookie = "Path=/auth; HttpOnly; SameSite=Lax"
    if settings.login_cookie_secure:
        cookie += "; Secure"
    servicer = IdentityServicer(
        login,
        keys,
        cookie,
        settings.login_attempt_seconds,
        functools.partial(db.reachable, engine),
        [health_pb2_grpc.HealthStub(peer) for peer in peers],
    )

    def register(grpc_server: grpc.aio.Server) -> list[str]:
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(
            servicer, grpc_server
        )
        return [
            identity_service_pb2.DESCRIPTOR.services_by_name[
                "IdentityService"
            ].full_name
        ]

    async def stop() -> None:
        for peer in peers:
            await peer.close()
        await provider.close()
        await engine.dispose()
        await login_engine.dispose()

    await server.serve(
        settings,
        register,
        [
            CallContextInterceptor(
                verifier,
                ERRORS,
                ANONYMOUS_METHODS,
                # Junk in the callback's query is a failed login like any other.
                undecodable={COMPLETE_LOGIN: LoginFailed},
            )
        ],
        healthy=functools.partial(db.reachable, engine),
        on_stop=stop,
    )


def main() -> None:
    """Read the settings once, configure logging, serve."""
    settings = load(IdentitySettings)
    logs.configure("identity", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
