"""Idempotency records and job records against the real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_jobs.adapters.postgres import PostgresIdempotency, PostgresJobs
from tollgate_jobs.domain.model import Job, JobStatus, Outcome


async def test_racing_claims_of_one_key_let_exactly_one_run(
    jobs_engine: AsyncEngine,
) -> None:
    """The primary key decides: of 30 racing claims, one wins."""
    records, org = PostgresIdempotency(jobs_engine), uuid.uuid4()
    claims = await asyncio.gather(
        *(records.claim(org, "k", "/api/analyse", "fp", 30) for _ in range(30))
    )
    assert sum(c.claimed for c in claims) == 1


async def test_a_lapsed_claim_is_taken_over_with_its_first_attempt(
    jobs_engine: AsyncEngine,
) -> None:
    """A request that died keeps its attempt id, so its charge can be replayed."""
    records, org = PostgresIdempotency(jobs_engine), uuid.uuid4()
    first = await records.claim(org, "k", "/api/analyse", "fp", 0.05)
    await asyncio.sleep(0.1)
    taken = await records.claim(org, "k", "/api/analyse", "fp", 30)
    blocked = await records.claim(org, "k", "/api/analyse", "fp", 30)
    assert first.claimed and taken.claimed and not blocked.claimed
    assert taken.attempt == first.attempt


async def test_a_completed_record_is_reported_with_its_outcome(
    jobs_engine: AsyncEngine,
) -> None:
    """Completion stores the outcome for replays."""
    records, org = PostgresIdempotency(jobs_engine), uuid.uuid4()
    await records.claim(org, "k", "/api/analyse", "fp", 30)
    await records.complete(org, "k", Outcome(body={"result": "r"}))
    again = await records.claim(org, "k", "/api/analyse", "fp", 30)
    assert not again.claimed
    assert again.existing is not None and again.existing.completed
    assert again.existing.outcome == Outcome(body={"result": "r"})


async def test_records_past_their_retention_are_pruned(
    jobs_engine: AsyncEngine, jobs_system_engine: AsyncEngine
) -> None:
    """Old keys go; recent ones stay."""
    records, org = PostgresIdempotency(jobs_engine), uuid.uuid4()
    await records.claim(org, "old", "/api/analyse", "fp", 30)
    await records.claim(org, "new", "/api/analyse", "fp", 30)
    async with jobs_engine.begin() as db:
        await db.execute(
            sa.text("SELECT set_config('tollgate.organisation_id', :o, true)"),
            {"o": str(org)},
        )
        await db.execute(
            sa.text(
                "UPDATE idempotency_records "
                "SET created_at = now() - interval '25 hours' "
                "WHERE organisation_id = :org AND key = 'old'"
            ),
            {"org": org},
        )
    assert await PostgresIdempotency(jobs_system_engine).prune(24 * 3600) >= 1
    async with jobs_system_engine.connect() as db:
        keys = (
            await db.execute(
                sa.text(
                    "SELECT key FROM idempotency_records WHERE organisation_id = :o"
                ),
                {"o": org},
            )
        ).scalars()
        assert list(keys) == ["new"]


async def test_job_status_changes_are_compare_and_set(jobs_engine: AsyncEngine) -> None:
    """Only the allowed move from the current status happens, once."""
    jobs = PostgresJobs(jobs_engine)
    job = await jobs.create(
        Job(
            id=uuid.uuid4(),
            organisation_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            status=JobStatus.PENDING,
            text="text",
            charge_id=uuid.uuid4(),
            created_at=datetime.now(UTC),
        )
    )
    moves = await asyncio.gather(
        *(jobs.start(job.organisation_id, job.id, 30) for _ in range(10))
    )
    assert sum(m is not None for m in moves) == 1
    assert await jobs.transition(job, JobStatus.PENDING, JobStatus.FAILED) is None
    done = await jobs.finish(job, 1, JobStatus.COMPLETED, result="summary")
    assert done is not None and done.result == "summary"


async def test_one_charge_records_one_job(jobs_engine: AsyncEngine) -> None:
    """Recording a job twice for one charge returns the first."""
    jobs, charge, org = PostgresJobs(jobs_engine), uuid.uuid4(), uuid.uuid4()

    def job() -> Job:
        return Job(
            uuid.uuid4(),
            org,
            uuid.uuid4(),
            JobStatus.PENDING,
            "t",
            charge,
            datetime.now(UTC),
        )

    first, second = await jobs.create(job()), await jobs.create(job())
    assert first.id == second.id


def new_job() -> Job:
    """A pending job of a fresh organisation."""
    return Job(
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
        JobStatus.PENDING,
        "t",
        uuid.uuid4(),
        datetime.now(UTC),
    )


async def test_an_overtaken_attempt_cannot_finish_the_job(
    jobs_engine: AsyncEngine,
) -> None:
    """After a lease lapses the job is the next attempt's; the first cannot end it."""
    jobs = PostgresJobs(jobs_engine)
    job = await jobs.create(new_job())
    first = await jobs.start(job.organisation_id, job.id, lease_seconds=0.05)
    assert first is not None and first.attempts == 1
    assert await jobs.start(job.organisation_id, job.id, lease_seconds=30) is None
    await asyncio.sleep(0.1)
    second = await jobs.start(job.organisation_id, job.id, lease_seconds=30)
    assert second is not None and second.attempts == 2

    late = await jobs.finish(job, 1, JobStatus.COMPLETED, result="late")
    done = await jobs.finish(job, 2, JobStatus.COMPLETED, result="on time")
    assert late is None
    assert done is not None and done.result == "on time"


async def test_stalled_jobs_are_found_after_their_backoff(
    jobs_engine: AsyncEngine, jobs_system_engine: AsyncEngine
) -> None:
    """A lapsed lease is stalled once the backoff has passed, not before."""
    jobs, sweeping = PostgresJobs(jobs_engine), PostgresJobs(jobs_system_engine)
    job = await jobs.create(new_job())
    await jobs.start(job.organisation_id, job.id, lease_seconds=0.05)
    await asyncio.sleep(0.1)

    soon = {
        j.id for j in await sweeping.stalled(3600, retry_base_seconds=60, limit=1000)
    }
    await asyncio.sleep(0.3)
    later = {
        j.id for j in await sweeping.stalled(3600, retry_base_seconds=0.2, limit=1000)
    }

    assert job.id not in soon
    assert job.id in later
    requeued = await jobs.requeue(job, attempt=1)
    assert requeued is not None and requeued.status is JobStatus.PENDING


async def test_row_level_security_confines_jobs_to_their_organisation(
    jobs_engine: AsyncEngine,
) -> None:
    """Acting for another organisation, or for none, a job does not exist."""
    jobs = PostgresJobs(jobs_engine)
    job = await jobs.create(new_job())
    assert await jobs.get(uuid.uuid4(), job.id) is None
    assert await jobs.start(uuid.uuid4(), job.id, 30) is None
    async with jobs_engine.connect() as db:
        unset = await db.execute(sa.text("SELECT count(*) FROM jobs"))
        assert unset.scalar_one() == 0
    assert await jobs.get(job.organisation_id, job.id) is not None


async def test_the_app_role_cannot_sweep_across_organisations(
    jobs_engine: AsyncEngine,
) -> None:
    """Cross-tenant queries through the app role see nothing: the sweeper has a role."""
    jobs = PostgresJobs(jobs_engine)
    job = await jobs.create(new_job())
    await jobs.start(job.organisation_id, job.id, lease_seconds=0)
    assert await jobs.stalled(0, 0, 1000) == []
