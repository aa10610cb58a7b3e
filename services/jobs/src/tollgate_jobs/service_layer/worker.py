"""Running a summarisation job: pending → running → completed | failed.

A worker starts a job by taking a lease on it (compare-and-set in the job record)
and ends it only while that attempt still holds the job, so a message delivered
twice, a finished job, or a slow worker overtaken by another changes nothing. The
outcome is the job record's. A job that fails for good is refunded through the
ledger, which refunds a charge at most once; if the ledger is unreachable the
refund stays due in the record and the sweeper retries it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tollgate_jobs.domain import text as text_rules
from tollgate_jobs.domain.model import Job, JobStatus
from tollgate_jobs.service_layer.ports import JobsPort, LedgerPort, QueuePort
from tollgate_jobs.service_layer.refunds import fail, refund

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long an attempt may hold a job, and how often a job is tried."""

    lease_seconds: float = 60.0
    max_attempts: int = 3
    # A stalled job is retried after this, doubled for every attempt so far.
    retry_base_seconds: float = 2.0
    # A job still pending after this was lost by the queue and is sent again.
    pending_seconds: float = 120.0


class JobRunner:
    """Runs one attempt of a job."""

    def __init__(
        self,
        jobs: JobsPort,
        ledger: LedgerPort,
        summarise: Callable[[str], str] = text_rules.summarise,
        policy: RetryPolicy | None = None,
        slow_down_seconds: float = 0.0,
    ) -> None:
        self._jobs = jobs
        self._ledger = ledger
        self._summarise = summarise
        self._policy = policy or RetryPolicy()
        self._slow_down = slow_down_seconds

    async def run(
        self, organisation_id: uuid.UUID, job_id: uuid.UUID
    ) -> JobStatus | None:
        """Run the job if it is startable; its final status, or None if not run.

        Infrastructure failures (the database unreachable) propagate: the attempt
        keeps its lease until it lapses, and the sweeper retries it later.
        """
        job = await self._jobs.start(
            organisation_id, job_id, self._policy.lease_seconds
        )
        if job is None:
            logger.info("job not startable; skipped", extra={"fields": _ids(job_id)})
            return None
        try:
            if self._slow_down:
                # Test-only: widens the window in which a worker can be killed mid-job.
                await asyncio.sleep(self._slow_down)
            summary = self._summarise(job.text)
        except Exception as error:
            # The summariser is pure: a failure here fails again on every retry.
            logger.exception("job failed", extra={"fields": _ids(job_id)})
            await fail(self._jobs, self._ledger, job, f"Summarisation failed: {error}")
            return JobStatus.FAILED
        done = await self._jobs.finish(
            job, job.attempts, JobStatus.COMPLETED, result=summary
        )
        if done is None:
            logger.warning(
                "attempt overtaken; its outcome is discarded",
                extra={"fields": {**_ids(job_id), "attempt": job.attempts}},
            )
            return None
        logger.info("job completed", extra={"fields": _ids(job_id)})
        return JobStatus.COMPLETED


class Sweeper:
    """Finds jobs that were lost or stalled and refunds that are still due."""

    def __init__(
        self,
        jobs: JobsPort,
        ledger: LedgerPort,
        queue: QueuePort,
        policy: RetryPolicy,
        batch: int = 100,
    ) -> None:
        self._jobs = jobs
        self._ledger = ledger
        self._queue = queue
        self._policy = policy
        self._batch = batch

    async def sweep(self) -> None:
        """One pass: retry or fail stalled jobs, then retry due refunds."""
        stalled = await self._jobs.stalled(
            self._policy.pending_seconds, self._policy.retry_base_seconds, self._batch
        )
        for job in stalled:
            await self._retry_or_fail(job)
        for job in await self._jobs.awaiting_refund(self._batch):
            await refund(self._jobs, self._ledger, job)

    async def _retry_or_fail(self, job: Job) -> None:
        if (
            job.status is JobStatus.RUNNING
            and job.attempts >= self._policy.max_attempts
        ):
            logger.warning("job out of attempts", extra={"fields": _ids(job.id)})
            await fail(
                self._jobs,
                self._ledger,
                job,
                f"The job did not finish after {job.attempts} attempts.",
            )
            return
        requeued = await self._jobs.requeue(job, job.attempts)
        if requeued is not None:
            logger.info("job sent again", extra={"fields": _ids(job.id)})
            await self._queue.enqueue(requeued)


def _ids(job_id: uuid.UUID) -> dict[str, str]:
    return {"job_id": str(job_id)}
