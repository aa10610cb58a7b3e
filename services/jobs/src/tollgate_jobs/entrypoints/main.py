"""The jobs process: ``python -m tollgate_jobs.entrypoints.main``."""

from __future__ import annotations

import asyncio
import functools

import grpc
from prometheus_client import Gauge

from tollgate.jobs.v1 import jobs_service_pb2, jobs_service_pb2_grpc
from tollgate_common import db, logs, server
from tollgate_common.clients import channel, standard_verifier
from tollgate_common.interceptor import CallContextInterceptor
from tollgate_common.settings import load, rate_limiter
from tollgate_jobs.adapters.ledger_client import GrpcLedger
from tollgate_jobs.adapters.postgres import PostgresIdempotency, PostgresJobs
from tollgate_jobs.adapters.queue import TaskiqQueue, make_broker
from tollgate_jobs.entrypoints.errors import ERRORS
from tollgate_jobs.entrypoints.servicer import JobsServicer
from tollgate_jobs.entrypoints.settings import JobsSettings
from tollgate_jobs.service_layer.products import Products
from tollgate_jobs.service_layer.worker import Sweeper


async def run(settings: JobsSettings) -> None:
    """Wire the jobs service together and serve it."""
    engine = db.engine_for(settings)
    system_engine = db.engine_for(settings, settings.system_database_url, pool_size=2)
    broker = make_broker(
        settings.redis_url, settings.queue_stream, settings.queue_reclaim_seconds
    )
    await broker.startup()
    ledger_channel = channel(settings.ledger_target, settings.call_timeout_seconds)
    records, jobs = PostgresIdempotency(engine), PostgresJobs(engine)
    queue = TaskiqQueue(broker)
    ledger = GrpcLedger(ledger_channel)
    sweeper = Sweeper(
        PostgresJobs(system_engine), ledger, queue, settings.retry_policy()
    )
    products = Products(
        ledger=ledger,
        jobs=jobs,
        queue=queue,
        records=records,
        lock_seconds=settings.idempotency_lock_seconds,
    )
    verifier = standard_verifier(
        settings.identity_target,
        settings.token_issuer,
        settings.token_audience,
        settings.call_timeout_seconds,
    )
    interceptor = CallContextInterceptor(
        verifier, ERRORS, limiter=rate_limiter(settings)
    )

    def register(grpc_server: grpc.aio.Server) -> list[str]:
        jobs_service_pb2_grpc.add_JobsServiceServicer_to_server(
            JobsServicer(products), grpc_server
        )
        return [jobs_service_pb2.DESCRIPTOR.services_by_name["JobsService"].full_name]

    async def stop() -> None:
        await broker.shutdown()
        await ledger_channel.close()
        await engine.dispose()
        await system_engine.dispose()

    await server.serve(
        settings,
        register,
        [interceptor],
        healthy=functools.partial(db.reachable, engine),
        on_stop=stop,
        background=[
            server.every(settings.sweep_interval_seconds, sweeper.sweep, "sweeping"),
            server.every(
                settings.sweep_interval_seconds,
                functools.partial(_measure_queue, queue),
                "measuring the queue",
            ),
            server.every(
                settings.idempotency_prune_interval_seconds,
                functools.partial(
                    PostgresIdempotency(system_engine).prune,
                    settings.idempotency_retention_hours * 3600,
                ),
                "pruning idempotency records",
            ),
        ],
    )


QUEUE_DEPTH = Gauge(
    "tollgate_jobs_queue_messages",
    "Messages in the job stream, by state.",
    ["state"],
)


async def _measure_queue(queue: TaskiqQueue) -> None:
    length, pending = await queue.depth()
    QUEUE_DEPTH.labels("in_stream").set(length)
    QUEUE_DEPTH.labels("unacknowledged").set(pending)


def main() -> None:
    """Read the settings once, configure logging, serve."""
    settings = load(JobsSettings)
    logs.configure("jobs", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
