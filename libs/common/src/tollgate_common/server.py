"""Running a service: a grpc.aio server with health, reflection and a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from tollgate_common.settings import ServiceSettings

logger = logging.getLogger(__name__)

HEALTH_INTERVAL_SECONDS = 1.0
# Always SERVING while the process runs: for liveness probes, which must not restart
# a service just because its database is down (readiness uses the service's name).
LIVENESS = "tollgate.liveness"


async def serve(
    settings: ServiceSettings,
    register: Callable[[grpc.aio.Server], Sequence[str]],
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    healthy: Callable[[], Awaitable[bool]],
    on_stop: Callable[[], Awaitable[None]] | None = None,
    background: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight RPCs within the grace.

    ``background`` loops (sweepers, pruning) run beside the server and are cancelled
    when it stops.
    """
    server = grpc.aio.server(interceptors=list(interceptors))
    service_names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    server.add_insecure_port(settings.grpc_listen)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")

    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    logger.info(
        "serving",
        extra={"fields": {"listen": settings.grpc_listen, "services": service_names}},
    )
    tasks = [
        asyncio.create_task(
            _watch_health(health_servicer, [*service_names, ""], healthy)
        ),
        *(asyncio.create_task(loop()) for loop in background),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    logger.info("stopping", extra={"fields": {"grace": settings.grpc_grace_seconds}})
    await health_servicer.enter_graceful_shutdown()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await server.stop(settings.grpc_grace_seconds)
    if on_stop is not None:
        await on_stop()
    logger.info("stopped")


async def _watch_health(
    servicer: health.aio.HealthServicer,
    names: Sequence[str],
    healthy: Callable[[], Awaitable[bool]],
) -> None:
    """Keep grpc.health.v1 in step with whether the service reaches its database."""
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    last = None
    while True:
        ok = await healthy()
        if ok != last:
            logger.info("health changed", extra={"fields": {"healthy": ok}})
            last = ok
        for name in names:
            await servicer.set(name, serving if ok else not_serving)
        await asyncio.sleep(HEALTH_INTERVAL_SECONDS)


def every(
    seconds: float, action: Callable[[], Awaitable[object]], name: str
) -> Callable[[], Awaitable[None]]:
    """A background loop running ``action`` every ``seconds``, logging its failures."""

    async def loop() -> None:
        while True:
            try:
                await action()
            except Exception:
                logger.exception("%s failed; will try again", name)
            await asyncio.sleep(seconds)

    return loop
