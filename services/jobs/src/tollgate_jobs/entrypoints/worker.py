"""The Taskiq worker: ``taskiq worker tollgate_jobs.entrypoints.worker:broker``.

Taskiq imports this module to find the broker, so this is where the worker reads its
settings and wires its dependencies, once per worker process at start-up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, start_http_server
from taskiq import TaskiqEvents, TaskiqState

from tollgate_common import db, logs
from tollgate_common.clients import channel
from tollgate_common.context import request_id_var
from tollgate_common.settings import load
from tollgate_jobs.adapters.ledger_client import GrpcLedger
from tollgate_jobs.adapters.postgres import PostgresJobs
from tollgate_jobs.adapters.queue import SUMMARISE_TASK, make_broker
from tollgate_jobs.domain import text as text_rules
from tollgate_jobs.entrypoints.settings import JobsSettings
from tollgate_jobs.service_layer.worker import JobRunner

OUTCOMES = Counter(
    "tollgate_jobs_attempts_total",
    "Job deliveries handled by this worker, by outcome (skipped: not startable).",
    ["outcome"],
)

logger = logging.getLogger(__name__)
settings = load(JobsSettings)
broker = make_broker(
    settings.redis_url, settings.queue_stream, settings.queue_reclaim_seconds
)


def summariser(fail_marker: str) -> Callable[[str], str]:
    """The summariser, or for tests one that fails on texts with the marker."""
    if not fail_marker:
        return text_rules.summarise

    def summarise(text: str) -> str:
        if fail_marker in text:
            raise RuntimeError("the text carries the test-only failure marker")
        return text_rules.summarise(text)

    return summarise


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def start(state: TaskiqState) -> None:
    """Open the database pool and the ledger channel."""
    logs.configure("worker", settings.log_level)
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr="127.0.0.1")
        except OSError:
            # taskiq restarts a crashed worker process while the old one may still
            # hold the port; the worker runs on, without metrics, rather than die.
            logger.warning("metrics port %s is taken", settings.metrics_port)
    state.engine = db.engine_for(settings)
    state.channel = channel(settings.ledger_target, settings.call_timeout_seconds)
    state.runner = JobRunner(
        PostgresJobs(state.engine),
        GrpcLedger(state.channel),
        summarise=summariser(settings.worker_fail_marker),
        policy=settings.retry_policy(),
        slow_down_seconds=settings.worker_slow_down_seconds,
    )


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def stop(state: TaskiqState) -> None:
    """Close what ``start`` opened."""
    await state.channel.close()
    await state.engine.dispose()


@broker.task(task_name=SUMMARISE_TASK)
async def summarise(job_id: str, organisation_id: str, **_: Any) -> None:
    """Run one summarisation job of an organisation."""
    request_id_var.set(f"job:{job_id}")
    runner: JobRunner = broker.state.runner
    status = await runner.run(uuid.UUID(organisation_id), uuid.UUID(job_id))
    OUTCOMES.labels(status.value if status else "skipped").inc()
