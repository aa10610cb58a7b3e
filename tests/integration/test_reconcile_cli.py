"""The reconciliation command: a summary, and a non-zero exit on any violation."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid

import sqlalchemy as sa
from devstack import StackConfig
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_ledger.adapters.postgres import PostgresUnitOfWork
from tollgate_ledger.domain.model import Movement
from tollgate_ledger.service_layer.ledger import Ledger


def run_reconcile(config: StackConfig) -> subprocess.CompletedProcess[str]:
    """``python -m tollgate_ledger.entrypoints.cli reconcile`` on the test database."""
    env = {
        **os.environ,
        "TOLLGATE_SYSTEM_DATABASE_URL": config.database_url("tollgate_ledger_system"),
    }
    return subprocess.run(
        [sys.executable, "-m", "tollgate_ledger.entrypoints.cli", "reconcile"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_a_tampered_balance_makes_reconciliation_fail(
    prepared_database: StackConfig, ledger_engine: AsyncEngine
) -> None:
    """Exit 0 on a sound ledger; 1, naming the check, once a cached balance lies."""
    org = uuid.uuid4()
    ledger = Ledger(functools.partial(PostgresUnitOfWork, ledger_engine))
    await ledger.grant(Movement(org, 100, "r", uuid.uuid4().hex, None, "t"))
    sound = run_reconcile(prepared_database)
    assert sound.returncode == 0, sound.stdout
    assert json.loads(sound.stdout)["ok"] is True

    tamper = "UPDATE accounts SET balance = balance + :d WHERE organisation_id = :org"
    act_for = sa.text("SELECT set_config('tollgate.organisation_id', :org, true)")
    async with ledger_engine.begin() as db:
        await db.execute(act_for, {"org": str(org)})
        await db.execute(sa.text(tamper), {"d": 7, "org": org})
    try:
        broken = run_reconcile(prepared_database)
    finally:
        async with ledger_engine.begin() as db:
            await db.execute(act_for, {"org": str(org)})
            await db.execute(sa.text(tamper), {"d": -7, "org": org})

    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert str(org) in report["checks"]["cached balance equals the entries"][0]
