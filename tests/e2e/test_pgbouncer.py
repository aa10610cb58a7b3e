"""The platform behind PgBouncer in transaction pooling mode.

A stack of its own whose services reach Postgres only through PgBouncer, with a
pool of two server connections per role: no prepared-statement errors, no
connection left inside a transaction, and a saturated pool answered by a fast 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from devstack import Stack, StackConfig
from test_journey import (
    test_two_colleagues_share_an_organisation_and_spend_its_credits as journey,
)
from test_replicas import log_in_to


@pytest.fixture(scope="module")
def pooled(stack_config: StackConfig) -> Iterator[Stack]:
    """The platform with PgBouncer between every service and Postgres."""
    config = dataclasses.replace(
        stack_config,
        name=f"{stack_config.name}-pooled",
        gateway_port=stack_config.gateway_port + 3000,
        admin_port=stack_config.admin_port + 3000,
        grpc_base_port=stack_config.grpc_base_port + 3000,
        metrics_base_port=stack_config.metrics_base_port + 3000,
        oidc_port=stack_config.oidc_port + 3000,
        database=f"{stack_config.database}_pooled",
        queue_stream=f"{stack_config.queue_stream}-pooled",
        pgbouncer_port=16432 + 3000 + stack_config.gateway_port - 18000,
        pgbouncer_pool_size=2,
    )
    stack = Stack(config)
    stack.down()
    stack.up()
    yield stack
    stack.down()


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
