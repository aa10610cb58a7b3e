"""Jobs and idempotency records in Postgres."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollgate_jobs.domain.model import Job, JobStatus, Outcome
from tollgate_jobs.service_layer.ports import Claim, Record

# Row-level security confines each transaction to the organisation it acts for.
_ACT_FOR = sa.text("SELECT set_config('tollgate.organisation_id', :org, true)")


@contextlib.asynccontextmanager
async def _acting_for(
    engine: AsyncEngine, organisation_id: uuid.UUID
) -> AsyncIterator[AsyncConnection]:
    """A transaction in which the policies show one organisation's rows."""
    async with engine.begin() as db:
        await db.execute(_ACT_FOR, {"org": str(organisation_id)})
        yield db


_JOB_COLUMNS = (
    "id, organisation_id, user_id, status, text, charge_id, created_at, result, "
    "error, attempts"
)

# The primary key (organisation_id, key) decides who runs a request; a lapsed
# in-progress lock is taken over in the same statement, keeping its attempt id.
_CLAIM = sa.text(
    """
    INSERT INTO idempotency_records AS r
        (organisation_id, key, endpoint, fingerprint, state, attempt, locked_until)
    VALUES (:org, :key, :endpoint, :fingerprint, 'in_progress', :attempt,
            now() + make_interval(secs => :lock))
    ON CONFLICT (organisation_id, key) DO UPDATE
        SET locked_until = now() + make_interval(secs => :lock)
        WHERE r.state = 'in_progress' AND r.locked_until < now()
          AND r.endpoint = EXCLUDED.endpoint AND r.fingerprint = EXCLUDED.fingerprint
    RETURNING attempt
    """
)
_RECORD = sa.text(
    "SELECT endpoint, fingerprint, state, attempt, outcome FROM idempotency_records "
    "WHERE organisation_id = :org AND key = :key"
)
_COMPLETE = sa.text(
    "UPDATE idempotency_records "
    "SET state = 'completed', outcome = CAST(:outcome AS jsonb) "
    "WHERE organisation_id = :org AND key = :key"
)
_RELEASE = sa.text(
    "DELETE FROM idempotency_records "
    "WHERE organisation_id = :org AND key = :key AND state = 'in_progress'"
)
_PRUNE = sa.text(
    "DELETE FROM idempotency_records "
    "WHERE created_at < now() - make_interval(secs => :seconds)"
)
_CREATE_JOB = sa.text(
    f"""
    WITH inserted AS (
        INSERT INTO jobs (id, organisation_id, user_id, status, text, charge_id,
                          created_at)
        VALUES (:id, :org, :user_id, 'pending', :text, :charge_id, :created_at)
        ON CONFLICT (organisation_id, charge_id) DO NOTHING
        RETURNING {_JOB_COLUMNS}
    )
    SELECT {_JOB_COLUMNS} FROM inserted
    UNION ALL
    SELECT {_JOB_COLUMNS} FROM jobs
    WHERE organisation_id = :org AND charge_id = :charge_id
    LIMIT 1
    """
)
_GET_JOB = sa.text(
    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE organisation_id = :org AND id = :id"
)
_TRANSITION = sa.text(
    f"""
    UPDATE jobs SET status = :to_status, result = coalesce(:result, result),
        error = coalesce(:error, error), updated_at = now(),
        attempts = attempts + CASE WHEN :to_status = 'running' THEN 1 ELSE 0 END,
        refund_state = CASE WHEN :to_status = 'failed' THEN 'pending'
                            ELSE refund_state END
    WHERE organisation_id = :org AND id = :id AND status = :from_status
    RETURNING {_JOB_COLUMNS}
    """
)
_REFUNDED = sa.text(
    "UPDATE jobs SET refund_state = 'done' WHERE organisation_id = :org AND id = :id"
)
_START = sa.text(
    f"""
    UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = now(),
        lease_until = now() + make_interval(secs => :lease)
    WHERE organisation_id = :org AND id = :id
      AND (status = 'pending' OR (status = 'running' AND lease_until < now()))
    RETURNING {_JOB_COLUMNS}
    """
)
_FINISH = sa.text(
    f"""
    UPDATE jobs SET status = :to_status, result = :result, error = :error,
        updated_at = now(), lease_until = NULL,
        refund_state = CASE WHEN :to_status = 'failed' THEN 'pending'
                            ELSE refund_state END
    WHERE organisation_id = :org AND id = :id AND status = 'running'
      AND attempts = :attempt
    RETURNING {_JOB_COLUMNS}
    """
)
# A running job is retried only once its lease has been over for a backoff that
# doubles with every attempt, so a dependency that is down is not hammered.
_STALLED = sa.text(
    f"""
    SELECT {_JOB_COLUMNS} FROM jobs
    WHERE (status = 'pending'
           AND updated_at < now() - make_interval(secs => :pending))
       OR (status = 'running' AND lease_until < now()
           - make_interval(secs => :base * power(2, greatest(attempts - 1, 0))))
    ORDER BY updated_at LIMIT :limit
    """
)
_REQUEUE = sa.text(
    f"""
    UPDATE jobs SET status = 'pending', updated_at = now(), lease_until = NULL
    WHERE organisation_id = :org AND id = :id AND attempts = :attempt
      AND (status = 'pending' OR (status = 'running' AND lease_until < now()))
    RETURNING {_JOB_COLUMNS}
    """
)
_AWAITING_REFUND = sa.text(
    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'failed' "
    "AND refund_state = 'pending' ORDER BY updated_at LIMIT :limit"
)


class PostgresIdempotency:
    """``IdempotencyPort`` on the idempotency_records table.

    ``prune`` works across organisations and needs the jobs ``_system`` role's
    engine; everything else acts for one organisation.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(
        self,
        organisation_id: uuid.UUID,
        key: str,
        endpoint: str,
        fingerprint: str,
        lock_seconds: float,
    ) -> Claim:
        """Insert or take over an in-progress record, or report the existing one."""
        params = {
            "org": organisation_id,
            "key": key,
            "endpoint": endpoint,
            "fingerprint": fingerprint,
            "attempt": uuid.uuid4().hex,
            "lock": lock_seconds,
        }
        async with _acting_for(self._engine, organisation_id) as db:
            attempt = (await db.execute(_CLAIM, params)).scalar()
            if attempt is not None:
                return Claim(True, attempt)
            found = await db.execute(_RECORD, {"org": organisation_id, "key": key})
            row = found.mappings().first()
        if row is None:
            # Released between the two statements: the caller may simply retry.
            return Claim(False, "", None)
        outcome = row["outcome"]
        return Claim(
            False,
            row["attempt"],
            Record(
                endpoint=row["endpoint"],
                fingerprint=row["fingerprint"],
                completed=row["state"] == "completed",
                attempt=row["attempt"],
                outcome=Outcome(**outcome) if outcome else None,
            ),
        )

    async def complete(
        self, organisation_id: uuid.UUID, key: str, outcome: Outcome
    ) -> None:
        """Store the outcome."""
        async with _acting_for(self._engine, organisation_id) as db:
            await db.execute(
                _COMPLETE,
                {"org": organisation_id, "key": key, "outcome": outcome.to_json()},
            )

    async def release(self, organisation_id: uuid.UUID, key: str) -> None:
        """Delete an in-progress record."""
        async with _acting_for(self._engine, organisation_id) as db:
            await db.execute(_RELEASE, {"org": organisation_id, "key": key})

    async def prune(self, older_than_seconds: float) -> int:
        """Delete records past their retention; returns how many."""
        async with self._engine.begin() as db:
            result = await db.execute(_PRUNE, {"seconds": older_than_seconds})
            return result.rowcount


class PostgresJobs:
    """``JobsPort`` on the jobs table.

    ``stalled`` and ``awaiting_refund`` look across organisations and need the jobs
    ``_system`` role's engine; everything else acts for the job's organisation.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, job: Job) -> Job:
        """Insert the job, or return the one recorded for its charge."""
        found = await self._one(
            _CREATE_JOB,
            job.organisation_id,
            id=job.id,
            user_id=job.user_id,
            text=job.text,
            charge_id=job.charge_id,
            created_at=job.created_at,
        )
        assert found is not None
        return found

    async def get(self, organisation_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
        """A job of an organisation."""
        return await self._one(_GET_JOB, organisation_id, id=job_id)

    async def transition(
        self,
        job: Job,
        from_status: JobStatus,
        to_status: JobStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> Job | None:
        """Compare-and-set the status."""
        return await self._one(
            _TRANSITION,
            job.organisation_id,
            id=job.id,
            from_status=from_status.value,
            to_status=to_status.value,
            result=result,
            error=error,
        )

    async def start(
        self, organisation_id: uuid.UUID, job_id: uuid.UUID, lease_seconds: float
    ) -> Job | None:
        """Begin an attempt under a lease."""
        return await self._one(_START, organisation_id, id=job_id, lease=lease_seconds)

    async def finish(
        self,
        job: Job,
        attempt: int,
        to_status: JobStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> Job | None:
        """End an attempt, if it still holds the job."""
        return await self._one(
            _FINISH,
            job.organisation_id,
            id=job.id,
            attempt=attempt,
            to_status=to_status.value,
            result=result,
            error=error,
        )

    async def stalled(
        self, pending_seconds: float, retry_base_seconds: float, limit: int
    ) -> list[Job]:
        """Jobs that need the sweeper."""
        return await self._many(
            _STALLED, pending=pending_seconds, base=retry_base_seconds, limit=limit
        )

    async def requeue(self, job: Job, attempt: int) -> Job | None:
        """Back to pending."""
        return await self._one(
            _REQUEUE, job.organisation_id, id=job.id, attempt=attempt
        )

    async def awaiting_refund(self, limit: int) -> list[Job]:
        """Failed and not refunded."""
        return await self._many(_AWAITING_REFUND, limit=limit)

    async def mark_refunded(self, job: Job) -> None:
        """Record the refund."""
        async with _acting_for(self._engine, job.organisation_id) as db:
            await db.execute(_REFUNDED, {"org": job.organisation_id, "id": job.id})

    async def _one(
        self, query: sa.TextClause, organisation_id: uuid.UUID, **params: Any
    ) -> Job | None:
        async with _acting_for(self._engine, organisation_id) as db:
            result = await db.execute(query, {"org": organisation_id, **params})
            row = result.mappings().first()
        return _job(row) if row else None

    async def _many(self, query: sa.TextClause, **params: Any) -> list[Job]:
        async with self._engine.connect() as db:
            rows = (await db.execute(query, params)).mappings().all()
        return [_job(row) for row in rows]


def _job(row: Any) -> Job:
    return Job(
        id=row["id"],
        organisation_id=row["organisation_id"],
        user_id=row["user_id"],
        status=JobStatus(row["status"]),
        text=row["text"],
        charge_id=row["charge_id"],
        created_at=row["created_at"],
        result=row["result"],
        error=row["error"],
        attempts=row["attempts"],
    )
