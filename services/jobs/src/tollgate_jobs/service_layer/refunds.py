"""Failing a job and refunding its charge, exactly once, wherever that happens.

The ledger refunds a charge at most once, so these may run again safely; a refund
that cannot happen now stays due in the job record (refund_state 'pending') and the
sweeper retries it until it lands.
"""

from __future__ import annotations

import logging

from tollgate_jobs.domain.model import SUMMARISE, Job, JobStatus
from tollgate_jobs.service_layer.ports import JobsPort, LedgerPort

logger = logging.getLogger(__name__)


async def fail(jobs: JobsPort, ledger: LedgerPort, job: Job, reason: str) -> None:
    """End the job's current attempt as failed and refund its charge."""
    failed = await jobs.finish(job, job.attempts, JobStatus.FAILED, error=reason)
    if failed is not None:
        await refund(jobs, ledger, failed)


async def refund(jobs: JobsPort, ledger: LedgerPort, job: Job) -> bool:
    """Refund a failed job's charge; on failure it stays due for the sweeper."""
    try:
        await ledger.refund(
            job.organisation_id, job.charge_id, f"Refund: {SUMMARISE.endpoint} failed"
        )
    except Exception:
        logger.warning(
            "refund not possible now; it stays due",
            extra={"fields": {"job_id": str(job.id)}},
        )
        return False
    await jobs.mark_refunded(job)
    logger.info("job refunded", extra={"fields": {"job_id": str(job.id)}})
    return True


async def refund_unrecorded(ledger: LedgerPort, job: Job, why: str) -> bool:
    """Refund the charge of a job that could not even be recorded; True if done."""
    try:
        await ledger.refund(
            job.organisation_id, job.charge_id, f"Refund: {SUMMARISE.endpoint} ({why})"
        )
    except Exception:
        # No record holds this refund: it is lost until an operator reconciles the
        # charge by hand. It needs the jobs database and the ledger down at once.
        logger.exception(
            "refund of an unrecorded job failed",
            extra={"fields": {"charge_id": str(job.charge_id)}},
        )
        return False
    return True
