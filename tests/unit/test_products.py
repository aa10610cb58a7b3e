"""The paid products' use cases on in-memory fakes: charging, idempotency, refunds."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fakes import FakeJobs, FakeLedger, FakeQueue, FakeRecords, statuses

from tollgate_common.context import Principal
from tollgate_common.errors import DependencyUnavailable
from tollgate_jobs.domain.errors import (
    IdempotencyConflict,
    IdempotencyKeyReused,
    InsufficientCredits,
    JobNotFound,
)
from tollgate_jobs.domain.model import JobStatus
from tollgate_jobs.service_layer.products import Products
from tollgate_jobs.service_layer.worker import JobRunner, RetryPolicy, Sweeper

TEXT = "Some text that is long enough. It has two sentences."


@pytest.fixture
def parts() -> tuple[FakeLedger, FakeJobs, FakeQueue, FakeRecords]:
    """Fresh fakes."""
    return FakeLedger(), FakeJobs(), FakeQueue(), FakeRecords()


@pytest.fixture
def products(parts) -> Products:
    """The use cases on the fakes."""
    ledger, jobs, queue, records = parts
    return Products(ledger, jobs, queue, records, lock_seconds=30)


@pytest.fixture
def caller() -> Principal:
    """A member of a fresh organisation."""
    return Principal(uuid.uuid4(), uuid.uuid4(), "member", "token")


async def test_analyse_charges_25_and_counts(products, caller, parts) -> None:
    """A plain call charges once and answers the analysis."""
    answer = await products.analyse(caller, "The cat and the hat.", None)
    assert answer.body == {
        "result": "Analysis complete. Word count: 5. Unique words: 4.",
        "credits_remaining": 75,
    }
    assert not answer.replayed


async def test_a_key_replays_the_stored_answer_without_charging(
    products, caller, parts
) -> None:
    """Same key and body: the first answer again, flagged as replayed."""
    first = await products.analyse(caller, TEXT, "k")
    again = await products.analyse(caller, TEXT, "k")
    assert again.body == first.body and again.replayed
    assert parts[0].balances[caller.organisation_id] == 75


async def test_a_key_reused_with_another_body_or_endpoint_is_refused(
    products, caller
) -> None:
    """The key names one request."""
    await products.analyse(caller, TEXT, "k")
    with pytest.raises(IdempotencyKeyReused):
        await products.analyse(caller, TEXT + " More.", "k")
    with pytest.raises(IdempotencyKeyReused):
        await products.summarise(caller, TEXT, "k")


async def test_a_stored_402_is_replayed_as_402(products, caller, parts) -> None:
    """Insufficient credits is stored and comes back, marked replayed."""
    parts[0].start = 10
    with pytest.raises(InsufficientCredits) as first:
        await products.analyse(caller, TEXT, "poor")
    parts[0].balances[caller.organisation_id] = 1000
    with pytest.raises(InsufficientCredits) as again:
        await products.analyse(caller, TEXT, "poor")
    assert again.value.replayed and not first.value.replayed
    assert again.value.context == {"balance": 10, "required": 25}


async def test_keys_are_scoped_to_the_organisation(products, caller) -> None:
    """Another organisation's identical key is its own request."""
    other = Principal(uuid.uuid4(), uuid.uuid4(), "member", "token")
    await products.analyse(caller, TEXT, "k")
    answer = await products.analyse(other, TEXT, "k")
    assert not answer.replayed


async def test_a_queue_outage_fails_the_job_and_refunds(
    products, caller, parts
) -> None:
    """503, the job recorded failed, the charge refunded, the key free again."""
    ledger, jobs, queue, records = parts
    queue.down = True
    with pytest.raises(DependencyUnavailable):
        await products.summarise(caller, TEXT, "k")
    assert ledger.balances[caller.organisation_id] == 100
    assert statuses(jobs) == [JobStatus.FAILED]
    assert records.rows == {}

    queue.down = False
    answer = await products.summarise(caller, TEXT, "k")
    assert answer.body["credits_remaining"] == 90
    assert ledger.balances[caller.organisation_id] == 90


async def test_a_job_of_another_organisation_is_not_found(products, caller) -> None:
    """Tenant isolation, and malformed ids are not found either."""
    job_id = (await products.summarise(caller, TEXT, None)).body["job_id"]
    other = Principal(uuid.uuid4(), uuid.uuid4(), "admin", "token")
    with pytest.raises(JobNotFound):
        await products.job(other, job_id)
    with pytest.raises(JobNotFound):
        await products.job(caller, "not-a-uuid")
    assert (await products.job(caller, job_id)).status is JobStatus.PENDING


async def test_the_worker_runs_a_job_once_even_if_delivered_twice(
    products, caller, parts
) -> None:
    """Two deliveries of one message: one run, one summary."""
    ledger, jobs, _, _ = parts
    job_id = uuid.UUID((await products.summarise(caller, TEXT, None)).body["job_id"])
    runner = JobRunner(jobs, ledger)

    outcomes = await asyncio.gather(
        runner.run(caller.organisation_id, job_id),
        runner.run(caller.organisation_id, job_id),
    )

    assert sorted(map(str, outcomes)) == sorted(["None", "completed"])
    assert jobs.jobs[job_id].status is JobStatus.COMPLETED
    assert jobs.jobs[job_id].result


async def test_a_failing_job_is_refunded_exactly_once(products, caller, parts) -> None:
    """A summariser failure ends the job failed and refunds its charge."""
    ledger, jobs, _, _ = parts
    job_id = uuid.UUID((await products.summarise(caller, TEXT, None)).body["job_id"])

    def broken(text: str) -> str:
        raise ZeroDivisionError

    runner = JobRunner(jobs, ledger, summarise=broken)

    assert await runner.run(caller.organisation_id, job_id) is JobStatus.FAILED
    assert await runner.run(caller.organisation_id, job_id) is None
    assert jobs.jobs[job_id].error.startswith("Summarisation failed")
    assert ledger.balances[caller.organisation_id] == 100
    assert job_id in jobs.refunded


async def test_a_refund_the_ledger_refuses_stays_due_until_the_sweeper_lands_it(
    products, caller, parts
) -> None:
    """With the ledger down the job fails unrefunded; the sweep refunds it once."""
    ledger, jobs, queue, _ = parts
    job_id = uuid.UUID((await products.summarise(caller, TEXT, None)).body["job_id"])

    def broken(text: str) -> str:
        raise ValueError("bad text")

    ledger.down = True
    assert (
        await JobRunner(jobs, ledger, summarise=broken).run(
            caller.organisation_id, job_id
        )
        is JobStatus.FAILED
    )
    assert ledger.balances[caller.organisation_id] == 90
    sweeper = Sweeper(jobs, ledger, queue, RetryPolicy())
    await sweeper.sweep()
    assert job_id not in jobs.refunded

    ledger.down = False
    await sweeper.sweep()
    await sweeper.sweep()
    assert ledger.balances[caller.organisation_id] == 100
    assert job_id in jobs.refunded


async def test_a_caller_that_hangs_up_mid_charge_is_charged_once_on_retry(
    products, caller, parts
) -> None:
    """The work finishes shielded from the cancelled call; the retry replays it."""
    ledger = parts[0]
    original = ledger.charge

    async def slow_charge(*args):
        await asyncio.sleep(0.05)
        return await original(*args)

    ledger.charge = slow_charge
    call = asyncio.ensure_future(products.analyse(caller, TEXT, "hang-up"))
    await asyncio.sleep(0.01)
    call.cancel()
    await asyncio.sleep(0.1)

    again = await products.analyse(caller, TEXT, "hang-up")
    assert again.replayed
    assert ledger.balances[caller.organisation_id] == 75


async def test_a_failure_after_the_charge_keeps_the_key_so_a_retry_cannot_recharge(
    products, caller, parts
) -> None:
    """If the outcome cannot be stored, the key stays claimed rather than freed."""
    ledger, _, _, records = parts

    async def broken_complete(*args):
        raise RuntimeError("the jobs database went away")

    records.complete = broken_complete
    with pytest.raises(RuntimeError):
        await products.analyse(caller, TEXT, "k")
    with pytest.raises(IdempotencyConflict):
        await products.analyse(caller, TEXT, "k")
    assert ledger.balances[caller.organisation_id] == 75
