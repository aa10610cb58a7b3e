"""SIGTERM: a service stops accepting, finishes in-flight RPCs, and exits 0."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import uuid

import grpc
import sqlalchemy as sa
from devstack import StackConfig
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate.ledger.v1 import ledger_service_pb2 as pb
from tollgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from tollgate_ledger.adapters.postgres import PostgresUnitOfWork
from tollgate_ledger.domain.model import Movement
from tollgate_ledger.service_layer.ledger import Ledger


async def test_an_rpc_in_flight_at_sigterm_completes_and_the_process_exits_0(
    prepared_database: StackConfig, ledger_engine: AsyncEngine
) -> None:
    """A refund blocked on a row lock when SIGTERM arrives still succeeds."""
    org = uuid.uuid4()
    ledger = Ledger(functools.partial(PostgresUnitOfWork, ledger_engine))
    await ledger.grant(Movement(org, 100, "r", uuid.uuid4().hex, None, "t"))
    charged = await ledger.charge(Movement(org, 25, "r", uuid.uuid4().hex, None, "t"))
    port = prepared_database.grpc_base_port + 900
    process = subprocess.Popen(
        [sys.executable, "-m", "tollgate_ledger.entrypoints.main"],
        env={
            **os.environ,
            "TOLLGATE_GRPC_LISTEN": f"127.0.0.1:{port}",
            "TOLLGATE_DATABASE_URL": prepared_database.database_url("tollgate_ledger"),
            "TOLLGATE_GRPC_GRACE_SECONDS": "10",
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 15)
            stub = pb_grpc.LedgerServiceStub(channel)
            async with ledger_engine.connect() as holder:
                await holder.begin()
                await holder.execute(
                    sa.text("SELECT set_config('tollgate.organisation_id', :o, true)"),
                    {"o": str(org)},
                )
                await holder.execute(
                    sa.text(
                        "SELECT 1 FROM accounts WHERE organisation_id = :o "
                        "AND kind = 'credits' FOR UPDATE"
                    ),
                    {"o": org},
                )
                refund = asyncio.ensure_future(
                    stub.Refund(
                        pb.RefundRequest(
                            organisation_id=str(org),
                            charge_transaction_id=str(charged.transaction.id),
                            reason="in flight",
                        ),
                        timeout=15,
                    )
                )
                await asyncio.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                await holder.rollback()
            response = await refund
        assert response.balance == 100
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    messages = [json.loads(line)["message"] for line in process.stdout or []]
    assert messages[0] == "serving" and messages[-1] == "stopped"
    assert "stopping" in messages
