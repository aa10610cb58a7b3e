"""Jobs under the failures a real deployment sees, with real processes.

A stack of its own (own database, own Redis server on another port) whose worker
is slowed down by a test-only setting and whose leases and sweeps are short, so
that a worker can be killed mid-job, Redis and the ledger stopped and started. The
machine's shared Redis and Postgres are never touched. Each test reconciles.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from conftest_helpers import poll_job, running, side_stack
from devclient import Person, login
from devstack import Stack, StackConfig
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate_jobs.adapters.queue import TaskiqQueue, make_broker
from tollgate_jobs.domain.model import Job, JobStatus
from tollgate_ledger.adapters.reconciliation import reconcile

FAIL_MARKER = "FAIL-ME"
TEXT = "Jobs must end. Every job ends completed or failed. Nothing is lost."


class RedisServer:
    """A redis-server of the test's own, on its own port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(50):
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
            )
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Stop it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def redis(stack_config: StackConfig) -> Iterator[RedisServer]:
    """The fault stack's own Redis."""
    server = RedisServer(stack_config.gateway_port + 2007)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def faults(stack_config: StackConfig, redis: RedisServer) -> Iterator[Stack]:
    """A whole stack tuned for fault injection."""
    config = side_stack(
        stack_config,
        "faults",
        2000,
        redis_url=f"redis://127.0.0.1:{redis.port}/0",
        extra_env={
            "TOLLGATE_WORKER_SLOW_DOWN_SECONDS": "1.5",
            "TOLLGATE_WORKER_FAIL_MARKER": FAIL_MARKER,
            "TOLLGATE_QUEUE_RECLAIM_SECONDS": "2",
            "TOLLGATE_JOB_LEASE_SECONDS": "3",
            "TOLLGATE_JOB_RETRY_BASE_SECONDS": "0.5",
            "TOLLGATE_JOB_PENDING_SECONDS": "4",
            "TOLLGATE_SWEEP_INTERVAL_SECONDS": "0.5",
        },
    )
    with running(config) as stack:
        yield stack


@pytest.fixture
async def ledger_db(faults: Stack) -> AsyncIterator[AsyncEngine]:
    """The fault stack's ledger schema; reconciled after each test."""
    engine = create_async_engine(faults.config.database_url("tollgate_ledger_system"))
    yield engine
    report = await reconcile(engine)
    await engine.dispose()
    assert report.ok, report.violations


@pytest.fixture
async def jobs_db(faults: Stack) -> AsyncIterator[AsyncEngine]:
    """The fault stack's jobs schema."""
    engine = create_async_engine(faults.config.database_url("tollgate_jobs_system"))
    yield engine
    await engine.dispose()


@pytest.fixture
def admin(faults: Stack) -> Iterator[httpx.Client]:
    """An admin of a fresh organisation with 100 credits, on the fault stack."""
    domain = f"faults-{uuid.uuid4().hex[:8]}.example"
    person = Person(sub=f"admin@{domain}", email=f"admin@{domain}", name="Admin")
    token = login(faults.config.gateway_url, faults.config.oidc_issuer, person)
    with httpx.Client(
        base_url=faults.config.gateway_url,
        headers={"authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    ) as client:
        assert client.post(
            "/api/credits/grant", json={"amount": 100, "reason": "faults"}
        ).is_success
        yield client


def balance(client: httpx.Client) -> int:
    """The organisation's balance."""
    return int(client.get("/api/credits/balance").json()["balance"])


def wait_for(client: httpx.Client, job_id: str, status: str, timeout: float) -> None:
    """Wait until a job has reached ``status``."""
    deadline = time.monotonic() + timeout
    while client.get(f"/api/jobs/{job_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"job never reached {status}"
        time.sleep(0.05)


async def test_jobs_survive_a_worker_killed_mid_job(
    faults: Stack, admin: httpx.Client, ledger_db: AsyncEngine
) -> None:
    """kill -9 during a job: every job still ends completed, charged once."""
    job_ids = [
        admin.post("/api/summarise", json={"text": TEXT}).json()["job_id"]
        for _ in range(3)
    ]
    wait_for(admin, job_ids[0], "running", timeout=10)

    faults.stop("worker", signal.SIGKILL)
    faults.start_worker()

    jobs = [poll_job(admin, job_id, timeout=40) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["completed"] * 3
    assert balance(admin) == 70


async def test_redis_down_during_summarise_is_503_with_nothing_charged(
    faults: Stack, redis: RedisServer, admin: httpx.Client, ledger_db: AsyncEngine
) -> None:
    """The queue is gone: 503 service_unavailable and the charge refunded."""
    redis.stop()
    try:
        response = admin.post("/api/summarise", json={"text": TEXT})
        assert response.status_code == 503
        assert response.json()["detail"]["error"] == "service_unavailable"
        assert balance(admin) == 100
    finally:
        redis.start()
        faults.stop("worker")
        faults.start_worker()
    after = admin.post("/api/summarise", json={"text": TEXT})
    assert after.status_code == 200
    assert poll_job(admin, after.json()["job_id"], timeout=30)["status"] == "completed"


async def test_a_refund_waits_for_the_ledger_and_lands_once(
    faults: Stack, admin: httpx.Client, ledger_db: AsyncEngine
) -> None:
    """The ledger is down when a job fails; once it is back, one refund lands."""
    job_id = admin.post(
        "/api/summarise", json={"text": f"{TEXT} {FAIL_MARKER}"}
    ).json()["job_id"]
    wait_for(admin, job_id, "running", timeout=10)
    faults.stop("ledger")
    try:
        wait_for(admin, job_id, "failed", timeout=15)
        time.sleep(1.5)  # several sweeps find the ledger still down
    finally:
        faults.start_service("ledger")

    deadline = time.monotonic() + 20
    while balance_or_none(admin) != 100:
        assert time.monotonic() < deadline, "the refund never landed"
        time.sleep(0.2)
    time.sleep(1.5)  # more sweeps, which must not refund again
    org = admin.get("/api/me").json()["organisation"]["id"]
    async with ledger_db.connect() as db:
        refunds = (
            await db.execute(
                sa.text(
                    "SELECT count(*) FROM transactions "
                    "WHERE kind = 'refund' AND organisation_id = :org"
                ),
                {"org": org},
            )
        ).scalar_one()
    assert refunds == 1
    assert balance(admin) == 100
    job = admin.get(f"/api/jobs/{job_id}").json()
    assert job["error"].startswith("Summarisation failed")


def balance_or_none(client: httpx.Client) -> int | None:
    """The balance, or None while the ledger is still starting."""
    response = client.get("/api/credits/balance")
    return int(response.json()["balance"]) if response.is_success else None


async def test_a_message_delivered_twice_runs_once(
    faults: Stack, admin: httpx.Client, ledger_db: AsyncEngine, jobs_db: AsyncEngine
) -> None:
    """Extra deliveries of a job's message neither rerun nor recharge it."""
    job_id = admin.post("/api/summarise", json={"text": TEXT}).json()["job_id"]
    org = uuid.UUID(admin.get("/api/me").json()["organisation"]["id"])
    job = Job(
        uuid.UUID(job_id), org, org, JobStatus.PENDING, "", org, datetime.now(UTC)
    )
    broker = make_broker(faults.config.redis_url, faults.config.queue_stream, 2)
    await broker.startup()
    try:
        for _ in range(2):
            await TaskiqQueue(broker).enqueue(job)
    finally:
        await broker.shutdown()

    assert poll_job(admin, job_id, timeout=20)["status"] == "completed"
    time.sleep(2)  # the duplicates are delivered and skipped
    async with jobs_db.connect() as db:
        attempts = (
            await db.execute(
                sa.text("SELECT attempts FROM jobs WHERE id = :id"), {"id": job_id}
            )
        ).scalar_one()
    assert attempts == 1
    assert balance(admin) == 90
