"""Fixtures shared by every test: the test stack's configuration and database.

The suite runs its own stack (ports 18000, 19901, 26051-26053, 19400), its own
database ``tollgate_test`` and its own Redis stream, so it never disturbs a stack
started with ``make up`` nor reconfigures the machine's shared servers. Setting
``TOLLGATE_TEST_SLOT=N`` (1 to 9) moves all of it (ports + 10 N, database and stream
suffixed), so that several suites can run side by side.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_common.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from devstack import Stack, StackConfig  # noqa: E402

SLOT = int(os.environ.get("TOLLGATE_TEST_SLOT", "0"))
SUFFIX = f"_{SLOT}" if SLOT else ""
TEST_STACK = StackConfig(
    name=f"test{SUFFIX}",
    gateway_port=18000 + 10 * SLOT,
    admin_port=19901 + 10 * SLOT,
    # Below the kernel's ephemeral range (32768 and up), so an outgoing
    # connection's local port can never be holding one of them.
    grpc_base_port=26051 + 10 * SLOT,
    metrics_base_port=19101 + 10 * SLOT,
    oidc_port=19400 + 10 * SLOT,
    database=f"tollgate_test{SUFFIX}",
    queue_stream=f"tollgate-test{SUFFIX}:jobs",
    fresh_database=True,
    # TOLLGATE_TEST_PGBOUNCER=1: everything, the tests' own engines included,
    # reaches Postgres through PgBouncer in transaction pooling.
    pgbouncer_port=16432 + 10 * SLOT
    if os.environ.get("TOLLGATE_TEST_PGBOUNCER")
    else 0,
)


@pytest.fixture(scope="session")
def stack_config() -> StackConfig:
    """Where the test stack listens."""
    return TEST_STACK


@pytest.fixture(scope="session")
def prepared_database(stack_config: StackConfig) -> Iterator[StackConfig]:
    """The test database with every service's migrations applied."""
    stack = Stack(stack_config)
    stack.prepare_database()
    if stack_config.pgbouncer_port:
        stack.stop("pgbouncer")
        stack.pids.mkdir(parents=True, exist_ok=True)
        stack.logs.mkdir(parents=True, exist_ok=True)
        stack.start_pgbouncer()
    yield stack_config
    stack.stop("pgbouncer")


def engine(config: StackConfig, role: str, pool_size: int = 5) -> AsyncEngine:
    """An engine for one role, the way the services would reach the database."""
    return make_engine(
        config.service_database_url(role),
        pool_size=pool_size,
        behind_pooler=bool(config.pgbouncer_port),
    )


@pytest.fixture(scope="session")
def running_stack(prepared_database: StackConfig) -> Iterator[Stack]:
    """The whole platform, started once for the session and stopped after it."""
    stack = Stack(prepared_database)
    stack.down()
    stack.up(prepare=False)
    yield stack
    stack.down()


@pytest.fixture(scope="session")
async def ledger_engine(prepared_database: StackConfig) -> AsyncIterator[AsyncEngine]:
    """The ledger's own role on the test database."""
    ledger = engine(prepared_database, "tollgate_ledger", pool_size=20)
    yield ledger
    await ledger.dispose()


@pytest.fixture(scope="session")
async def ledger_system_engine(
    prepared_database: StackConfig,
) -> AsyncIterator[AsyncEngine]:
    """The ledger's cross-tenant role (reconciliation) on the test database."""
    system = engine(prepared_database, "tollgate_ledger_system")
    yield system
    await system.dispose()


@pytest.fixture(scope="session")
async def jobs_engine(prepared_database: StackConfig) -> AsyncIterator[AsyncEngine]:
    """The jobs service's own role on the test database."""
    jobs = engine(prepared_database, "tollgate_jobs")
    yield jobs
    await jobs.dispose()


@pytest.fixture(scope="session")
async def jobs_system_engine(
    prepared_database: StackConfig,
) -> AsyncIterator[AsyncEngine]:
    """The jobs service's cross-tenant role (sweeper, pruning) on the test database."""
    system = engine(prepared_database, "tollgate_jobs_system")
    yield system
    await system.dispose()
