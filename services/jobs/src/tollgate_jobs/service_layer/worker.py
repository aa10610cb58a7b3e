"""Running a summarisation job: pending → running → completed | failed.

Every step is compare-and-set on the job record, so a message delivered twice, or a
job already finished, does nothing; a failed job's charge is refunded through the
ledger, which refunds a charge at most once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from tollgate_jobs.domain import text as text_rules
from tollgate_jobs.domain.model import SUMMARISE, Job, JobStatus
from tollgate_jobs.service_layer.ports import JobsPort, LedgerPort

logger = logging.getLogger(__name__)


class JobRunner:
    """Runs one job to a terminal status."""

    def __init__(
        self,
        jobs: JobsPort,
        ledger: LedgerPort,
        summarise: Callable[[str], str] = text_rules.summarise,
        slow_down_seconds: float = 0.0,
    ) -> None:
        self._jobs = jobs
        self._ledger = ledger
        self._summarise = summarise
        self._slow_down = slow_down_seconds

    async def run(self, job_id: uuid.UUID) -> JobStatus | None:
        """Run the job if it is pending; return its final status, or None if not run."""
        job = await self._jobs.transition(job_id, JobStatus.PENDING, JobStatus.RUNNING)
        if job is None:
            logger.info("job not pending; skipped", extra={"fields": _ids(job_id)})
            return None
        try:
            if self._slow_down:
                # Test-only: widens the window in which a worker can be killed mid-job.
                await asyncio.sleep(self._slow_down)
            summary = self._summarise(job.text)
        except Exception as error:
            logger.exception("job failed", extra={"fields": _ids(job_id)})
            await self._fail(job, f"Summarisation failed: {type(error).__name__}")
            return JobStatus.FAILED
        await self._jobs.transition(
            job_id, JobStatus.RUNNING, JobStatus.COMPLETED, result=summary
        )
        logger.info("job completed", extra={"fields": _ids(job_id)})
        return JobStatus.COMPLETED

    async def _fail(self, job: Job, reason: str) -> None:
        failed = await self._jobs.transition(
            job.id, JobStatus.RUNNING, JobStatus.FAILED, error=reason
        )
        if failed is None:
            return
        await self._ledger.refund(
            job.organisation_id, job.charge_id, f"Refund: {SUMMARISE.endpoint} failed"
        )
        await self._jobs.mark_refunded(job.id)


def _ids(job_id: uuid.UUID) -> dict[str, str]:
    return {"job_id": str(job_id)}
