"""The paid products' use cases: analyse, summarise, and reading a job back.

Summarise follows the order the architecture fixes: charge, record the job, enqueue,
with a refund on every path that does not reach "enqueued". Both products honour an
Idempotency-Key: the first request with a key runs and its outcome is stored; the
ledger charge reference is derived from the key's attempt, so a request retried after
dying half-way is never charged twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tollgate_common.context import Principal
from tollgate_common.errors import DependencyUnavailable, DomainError
from tollgate_jobs.domain import text as text_rules
from tollgate_jobs.domain.errors import (
    REPLAYABLE,
    IdempotencyConflict,
    IdempotencyKeyReused,
    JobNotFound,
)
from tollgate_jobs.domain.model import (
    ANALYSE,
    SUMMARISE,
    Job,
    JobStatus,
    Outcome,
    Product,
    fingerprint,
)
from tollgate_jobs.service_layer.ports import (
    Charge,
    IdempotencyPort,
    JobsPort,
    LedgerPort,
    QueuePort,
)
from tollgate_jobs.service_layer.refunds import refund, refund_unrecorded

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Attempt:
    """One try at a paid request: its ledger reference, and whether a charge stands."""

    reference: str
    # True from the charge until a refund undoes it.
    charged: bool = False


Action = Callable[[Attempt], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A paid call's response body, and whether it is a stored one replayed."""

    body: dict[str, Any]
    replayed: bool = False


class Products:
    """Analyse, summarise and job lookups for the caller's organisation."""

    def __init__(
        self,
        ledger: LedgerPort,
        jobs: JobsPort,
        queue: QueuePort,
        records: IdempotencyPort,
        lock_seconds: float,
    ) -> None:
        self._ledger = ledger
        self._jobs = jobs
        self._queue = queue
        self._records = records
        self._lock_seconds = lock_seconds

    async def analyse(self, caller: Principal, text: str, key: str | None) -> Answer:
        """Charge 25 credits and count the words of a text."""

        async def action(attempt: Attempt) -> dict[str, Any]:
            charge = await self._charge(caller, ANALYSE, attempt)
            return {
                "result": text_rules.analyse(text),
                "credits_remaining": charge.balance,
            }

        return await self._once(caller, key, ANALYSE, {"text": text}, action)

    async def summarise(self, caller: Principal, text: str, key: str | None) -> Answer:
        """Charge 10 credits, record the job and queue it."""

        async def action(attempt: Attempt) -> dict[str, Any]:
            charge = await self._charge(caller, SUMMARISE, attempt)
            job = Job(
                id=uuid.uuid4(),
                organisation_id=caller.organisation_id,
                user_id=caller.user_id,
                status=JobStatus.PENDING,
                text=text,
                charge_id=charge.transaction_id,
                created_at=datetime.now(UTC),
            )
            try:
                job = await self._jobs.create(job)
            except Exception as error:
                why = "the job was not recorded"
                if await refund_unrecorded(self._ledger, job, why):
                    attempt.charged = False
                raise DependencyUnavailable(
                    "The job could not be recorded; the charge was refunded."
                ) from error
            if job.status is JobStatus.PENDING:
                await self._enqueue(job, attempt)
            return {"job_id": str(job.id), "credits_remaining": charge.balance}

        return await self._once(caller, key, SUMMARISE, {"text": text}, action)

    async def job(self, caller: Principal, job_id: str) -> Job:
        """A job of the caller's organisation; JobNotFound for any other id."""
        shown = job_id[:64]  # an id is echoed, but never a client's whole junk
        try:
            ident = uuid.UUID(job_id)
        except ValueError:
            raise JobNotFound(f"No job found with ID {shown}") from None
        if str(ident) != job_id:  # ids are canonical: lower case, with dashes
            raise JobNotFound(f"No job found with ID {shown}")
        job = await self._jobs.get(caller.organisation_id, ident)
        if job is None:
            raise JobNotFound(f"No job found with ID {shown}")
        return job

    async def _charge(
        self, caller: Principal, product: Product, attempt: Attempt
    ) -> Charge:
        charge = await self._ledger.charge(
            caller.organisation_id,
            caller.user_id,
            product.price,
            product.reason,
            attempt.reference,
        )
        attempt.charged = True
        return charge

    async def _enqueue(self, job: Job, attempt: Attempt) -> None:
        try:
            await self._queue.enqueue(job)
        except Exception as error:
            logger.error(
                "could not enqueue job", extra={"fields": {"job_id": str(job.id)}}
            )
            failed = await self._jobs.transition(
                job,
                JobStatus.PENDING,
                JobStatus.FAILED,
                error="The job could not be queued.",
            )
            if await refund(self._jobs, self._ledger, failed or job):
                attempt.charged = False
            raise DependencyUnavailable(
                "The job queue is unavailable; the charge was refunded."
            ) from error

    async def _once(
        self,
        caller: Principal,
        key: str | None,
        product: Product,
        body: dict[str, Any],
        action: Action,
    ) -> Answer:
        """Run ``action`` at most once per Idempotency-Key, replaying its outcome.

        The work runs shielded from the caller: a client that hangs up, or a
        deadline that passes, does not stop it half-way between a charge and the
        record of what the charge paid for.
        """
        if key is None:
            fresh = Attempt(f"{product.endpoint}:{uuid.uuid4()}")
            return Answer(await asyncio.shield(action(fresh)))
        org = caller.organisation_id
        claim = await self._records.claim(
            org,
            key,
            product.endpoint,
            fingerprint(product.endpoint, body),
            self._lock_seconds,
        )
        if not claim.claimed:
            return _replay(claim.existing, product, body)
        attempt = Attempt(f"{product.endpoint}:{key}:{claim.attempt}")
        return await asyncio.shield(self._settle(org, key, attempt, action))

    async def _settle(
        self, org: uuid.UUID, key: str, attempt: Attempt, action: Action
    ) -> Answer:
        """Run a claimed request and store its outcome, or free the key if it may."""
        try:
            response = await action(attempt)
        except DomainError as error:
            if type(error).__name__ in REPLAYABLE:
                await self._records.complete(
                    org,
                    key,
                    Outcome(
                        error_type=type(error).__name__,
                        error_message=error.message,
                        error_context=error.context,
                    ),
                )
            elif not attempt.charged:
                await self._records.release(org, key)
            raise
        except Exception:
            # With a charge standing the key stays claimed: the claim lapses and a
            # retry takes it over with this attempt, so the ledger replays the
            # charge made here instead of charging again.
            if not attempt.charged:
                await self._records.release(org, key)
            raise
        await self._records.complete(org, key, Outcome(body=response))
        return Answer(response)


def _replay(record: Any, product: Product, body: dict[str, Any]) -> Answer:
    if record is None:
        raise IdempotencyConflict("A request with this Idempotency-Key is in progress.")
    if record.endpoint != product.endpoint or record.fingerprint != fingerprint(
        product.endpoint, body
    ):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request."
        )
    if not record.completed or record.outcome is None:
        raise IdempotencyConflict("A request with this Idempotency-Key is in progress.")
    outcome = record.outcome
    if outcome.error_type is not None:
        error = REPLAYABLE[outcome.error_type](
            outcome.error_message, **(outcome.error_context or {})
        )
        error.replayed = True
        raise error
    assert outcome.body is not None
    return Answer(outcome.body, replayed=True)
