"""The platform behind PgBouncer in transaction pooling mode.

A stack of its own whose services reach Postgres only through PgBouncer, with a
pool of two server connections per role: no prepared-statement errors, no
connection left inside a transaction, and a saturated pool answered by a fast 503.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from conftest_helpers import log_in_to, running, side_stack
from devstack import Stack, StackConfig
from test_journey import (
    test_two_colleagues_share_an_organisation_and_spend_its_credits as journey,
)


@pytest.fixture(scope="module")
def pooled(stack_config: StackConfig) -> Iterator[Stack]:
    """The platform with PgBouncer between every service and Postgres."""
    config = side_stack(
        stack_config,
        "pooled",
        3000,
        pgbouncer_port=16432 + 3000 + stack_config.gateway_port - 18000,
        pgbouncer_pool_size=2,
    )
    with running(config) as stack:
        yield stack


def pools(stack: Stack) -> list[dict[str, str]]:
    """PgBouncer's SHOW POOLS for the stack's database (its console is simple-query)."""
    shown = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.config.pgbouncer_port),
            "-U",
            "postgres",
            "-d",
            "pgbouncer",
            "-A",
            "-F",
            "\t",
            "-c",
            "SHOW POOLS",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    header, *rows = [line.split("\t") for line in shown.stdout.splitlines()[:-1]]
    found = [dict(zip(header, row, strict=True)) for row in rows]
    return [pool for pool in found if pool["database"] == stack.config.database]


@pytest.fixture
def company() -> str:
    """A fresh company domain."""
    return f"pool-{uuid.uuid4().hex[:10]}.example"


async def test_the_journey_runs_through_pgbouncer_without_leaks(
    pooled: Stack, company: str
) -> None:
    """No prepared-statement error anywhere; no server connection left busy."""
    with httpx.Client(base_url=pooled.config.gateway_url) as anonymous:
        journey(log_in_to(pooled), company, anonymous)

    logs = "".join(p.read_text() for p in pooled.logs.glob("*.log"))
    assert "prepared statement" not in logs
    await asyncio.sleep(0.5)
    for pool in pools(pooled):
        assert (pool["sv_active"], pool["cl_waiting"]) == ("0", "0"), pool


async def test_a_saturated_pool_is_a_fast_503(pooled: Stack, company: str) -> None:
    """With the ledger's server connections all held, calls fail fast, not hang."""
    client = log_in_to(pooled)(f"ada@{company}")
    holders = []
    for _ in range(pooled.config.pgbouncer_pool_size):
        holder = await asyncpg.connect(
            host="127.0.0.1",
            port=pooled.config.pgbouncer_port,
            user="tollgate_ledger",
            database=pooled.config.database,
            statement_cache_size=0,
        )
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT 1")
        holders.append((holder, transaction))
    try:
        started = time.monotonic()
        response = await asyncio.to_thread(client.get, "/api/credits/balance")
        elapsed = time.monotonic() - started
    finally:
        for holder, transaction in holders:
            await transaction.rollback()
            await holder.close()

    assert response.status_code == 503, response.text
    assert response.json()["detail"]["error"] == "service_unavailable"
    assert elapsed < 6
    assert client.get("/api/credits/balance").status_code == 200
