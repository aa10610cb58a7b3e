"""What the jobs use cases need from the outside world."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from tollgate_jobs.domain.model import Job, JobStatus, Outcome


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge the ledger recorded."""

    transaction_id: uuid.UUID
    balance: int


class LedgerPort(Protocol):
    """The ledger service, the only writer of credits."""

    async def charge(
        self,
        organisation_id: uuid.UUID,
        user_id: uuid.UUID,
        amount: int,
        reason: str,
        reference: str,
    ) -> Charge:
        """Charge once per reference; InsufficientCredits or DependencyUnavailable."""

    async def refund(
        self, organisation_id: uuid.UUID, charge_id: uuid.UUID, reason: str
    ) -> None:
        """Reverse a charge, at most once; DependencyUnavailable when unreachable."""


class QueuePort(Protocol):
    """Where jobs wait for a worker."""

    async def enqueue(self, job: Job) -> None:
        """Hand the job to the workers; DependencyUnavailable when unreachable."""


@dataclass(frozen=True, slots=True)
class Record:
    """An idempotency record as stored."""

    endpoint: str
    fingerprint: str
    completed: bool
    attempt: str
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of claiming a key: ours to run under ``attempt``, or taken."""

    claimed: bool
    attempt: str
    existing: Record | None = None


class IdempotencyPort(Protocol):
    """Idempotency records, one per (organisation, key), kept by a unique key."""

    async def claim(
        self,
        organisation_id: uuid.UUID,
        key: str,
        endpoint: str,
        fingerprint: str,
        lock_seconds: float,
    ) -> Claim:
        """Insert an in-progress record, or report the one already there.

        An in-progress record whose lock has run out (its request died half-way) is
        taken over with its first attempt id, so that the ledger replays a charge
        the dead request may have made instead of charging again.
        """

    async def complete(
        self, organisation_id: uuid.UUID, key: str, outcome: Outcome
    ) -> None:
        """Store the final outcome of the request."""

    async def release(self, organisation_id: uuid.UUID, key: str) -> None:
        """Forget the record: the request changed nothing and may be retried."""


class JobsPort(Protocol):
    """Job records; every status change is compare-and-set."""

    async def create(self, job: Job) -> Job:
        """Insert the job, or return the one already recorded for its charge."""

    async def get(self, organisation_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
        """A job of an organisation."""

    async def transition(
        self,
        job: Job,
        from_status: JobStatus,
        to_status: JobStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> Job | None:
        """Move a job if it is in ``from_status``; None if it was not."""

    async def start(
        self, organisation_id: uuid.UUID, job_id: uuid.UUID, lease_seconds: float
    ) -> Job | None:
        """Begin an attempt: pending, or running with a lapsed lease, → running.

        Returns the job with its new attempt number, or None if it is not startable
        (finished, or running under a live lease).
        """

    async def finish(
        self,
        job: Job,
        attempt: int,
        to_status: JobStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> Job | None:
        """End attempt ``attempt``; None if another attempt has taken the job over."""

    async def stalled(
        self, pending_seconds: float, retry_base_seconds: float, limit: int
    ) -> list[Job]:
        """Jobs pending too long, or running under a lease that lapsed a backoff ago."""

    async def requeue(self, job: Job, attempt: int) -> Job | None:
        """Put a stalled job back to pending for another attempt."""

    async def awaiting_refund(self, limit: int) -> list[Job]:
        """Failed jobs whose charge has not been refunded yet."""

    async def mark_refunded(self, job: Job) -> None:
        """Record that a failed job's charge was refunded."""
