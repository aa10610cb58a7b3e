"""The ledger process: ``python -m tollgate_ledger.entrypoints.main``."""

from __future__ import annotations

import asyncio
import functools

import grpc

from tollgate.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from tollgate_common import db, logs, server
from tollgate_common.clients import standard_verifier
from tollgate_common.interceptor import CallContextInterceptor
from tollgate_common.settings import load, rate_limiter
from tollgate_ledger.adapters.postgres import PostgresUnitOfWork
from tollgate_ledger.entrypoints.errors import ERRORS
from tollgate_ledger.entrypoints.servicer import INTERNAL_METHODS, LedgerServicer
from tollgate_ledger.entrypoints.settings import LedgerSettings
from tollgate_ledger.service_layer.ledger import Ledger


async def run(settings: LedgerSettings) -> None:
    """Wire the ledger together and serve it."""
    engine = db.engine_for(settings)
    ledger = Ledger(functools.partial(PostgresUnitOfWork, engine))
    verifier = standard_verifier(
        settings.identity_target,
        settings.token_issuer,
        settings.token_audience,
        settings.call_timeout_seconds,
    )
    interceptor = CallContextInterceptor(
        verifier, ERRORS, INTERNAL_METHODS, limiter=rate_limiter(settings)
    )

    def register(grpc_server: grpc.aio.Server) -> list[str]:
        ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server(
            LedgerServicer(ledger), grpc_server
        )
        return [
            ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
        ]

    await server.serve(
        settings,
        register,
        [interceptor],
        healthy=functools.partial(db.reachable, engine),
        on_stop=engine.dispose,
    )


def main() -> None:
    """Read the settings once, configure logging, serve."""
    settings = load(LedgerSettings)
    logs.configure("ledger", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
