"""Two of everything: the same journey and the same money rules as with one.

A stack of its own with two instances of each service and two workers on one Redis
stream consumer group; its workers are slowed past the reclaim timeout, so that a
message is handed to the second worker while the first still runs it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import sqlalchemy as sa
from conftest_helpers import log_in_to, poll_job, running, side_stack
from devstack import Stack, StackConfig
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from test_journey import (
    test_two_colleagues_share_an_organisation_and_spend_its_credits as journey,
)

from tollgate_ledger.adapters.reconciliation import reconcile


@pytest.fixture(scope="module")
def replicas(stack_config: StackConfig) -> Iterator[Stack]:
    """The platform with two instances of every service and worker."""
    config = side_stack(
        stack_config,
        "replicas",
        1000,
        replicas=2,
        extra_env={
            "TOLLGATE_WORKER_SLOW_DOWN_SECONDS": "1.5",
            "TOLLGATE_QUEUE_RECLAIM_SECONDS": "0.5",
            "TOLLGATE_JOB_LEASE_SECONDS": "10",
        },
    )
    with running(config) as stack:
        yield stack


@pytest.fixture
async def reconciled(replicas: Stack) -> AsyncIterator[AsyncEngine]:
    """The replica stack's jobs schema; the ledger is reconciled after the test."""
    ledger = create_async_engine(replicas.config.database_url("tollgate_ledger_system"))
    jobs = create_async_engine(replicas.config.database_url("tollgate_jobs_system"))
    yield jobs
    report = await reconcile(ledger)
    await ledger.dispose()
    await jobs.dispose()
    assert report.ok, report.violations


@pytest.fixture
def company() -> str:
    """A fresh company domain."""
    return f"rep-{uuid.uuid4().hex[:10]}.example"


def test_the_whole_journey_holds_with_two_of_everything(
    replicas: Stack, company: str, reconciled: AsyncEngine
) -> None:
    """Login, roles, grant, analyse, summarise, polling and isolation."""
    with httpx.Client(base_url=replicas.config.gateway_url) as anonymous:
        journey(log_in_to(replicas), company, anonymous)


async def test_racing_charges_through_two_replicas_never_overdraw(
    replicas: Stack, company: str, reconciled: AsyncEngine
) -> None:
    """50 concurrent analyses against 500 credits: 20 succeed, 30 are 402."""
    admin = log_in_to(replicas)(f"ada@{company}")
    admin.post("/api/credits/grant", json={"amount": 500, "reason": "race"})
    async with httpx.AsyncClient(
        base_url=replicas.config.gateway_url, headers=admin.headers, timeout=30
    ) as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/analyse", json={"text": f"racing text {i}"})
                for i in range(50)
            )
        )
        keyed = await asyncio.gather(
            *(
                client.post(
                    "/api/analyse",
                    json={"text": "one key, many calls"},
                    headers={"Idempotency-Key": "shared"},
                )
                for _ in range(20)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 20 + [402] * 30
    assert {r.status_code for r in keyed} <= {402, 409}
    assert admin.get("/api/credits/balance").json()["balance"] == 0


async def test_two_workers_run_each_job_once_when_a_job_outlives_the_reclaim(
    replicas: Stack, company: str, reconciled: AsyncEngine
) -> None:
    """Slow jobs are reclaimed by the other worker, yet each runs and charges once."""
    admin = log_in_to(replicas)(f"ada@{company}")
    admin.post("/api/credits/grant", json={"amount": 100, "reason": "jobs"})
    job_ids = [
        admin.post("/api/summarise", json={"text": f"Slow job {i}. It ends."}).json()[
            "job_id"
        ]
        for i in range(4)
    ]
    jobs = [poll_job(admin, job_id, timeout=60) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["completed"] * 4
    await asyncio.sleep(2)  # reclaimed copies are delivered, and skipped
    async with reconciled.connect() as db:
        attempts = (
            await db.execute(
                sa.text("SELECT attempts FROM jobs WHERE id = ANY(:ids)"),
                {"ids": [uuid.UUID(j) for j in job_ids]},
            )
        ).scalars()
        assert list(attempts) == [1] * 4
    assert admin.get("/api/credits/balance").json()["balance"] == 60
