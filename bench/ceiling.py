"""The ceiling: the ledger's own charge transaction, sent straight to Postgres.

No gateway, no gRPC, no token check, no ORM: an asyncpg pool of the ledger's size,
connected as the ledger's role, runs the statements ``PostgresUnitOfWork`` runs for a
charge, in the same order and in one transaction: name the organisation for
row-level security (when the ledger's tables have it), lock the credits row FOR
UPDATE, look the reference up, insert the transaction and its two entries, write the
cached balance, commit (where the deferred sum-to-zero trigger fires). Whatever
Tollgate achieves on top of the same database can only be a fraction of this.

The tables live in a scratch schema of the bench database, made by replaying the
ledger's own migrations there, so they are the ledger's tables, constraints,
indexes and triggers and not a copy that could drift from them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
from loadgen import ANALYSE_PRICE, OK, Operation
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate_ledger.adapters.reconciliation import Report, reconcile

SCHEMA = "bench_ceiling"
APPLICATION = "bench-ceiling"
MIGRATIONS = (
    Path(__file__).resolve().parent.parent / "services" / "ledger" / "migrations"
)

_COLUMNS = (
    "id, organisation_id, kind, amount, reason, reference, fingerprint, user_id, "
    "request_id, balance_after, reverses_id, created_at"
)
# The statements of tollgate_ledger.adapters.postgres, with asyncpg's placeholders.
ACT_FOR = "SELECT set_config('tollgate.organisation_id', $1, true)"
LOCK = (
    "SELECT balance FROM accounts "
    "WHERE organisation_id = $1 AND kind = 'credits' FOR UPDATE"
)
BY_REFERENCE = (
    f"SELECT {_COLUMNS} FROM transactions WHERE organisation_id = $1 AND reference = $2"
)
INSERT_TRANSACTION = f"""
    INSERT INTO transactions ({_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp())
    RETURNING created_at
"""
INSERT_ENTRIES = """
    INSERT INTO entries (organisation_id, transaction_id, account_kind, amount)
    SELECT $1, $2, kind, amount
    FROM unnest(CAST($3 AS text[]), CAST($4 AS bigint[])) AS e(kind, amount)
"""
UPDATE_BALANCE = (
    "UPDATE accounts SET balance = $1 WHERE organisation_id = $2 AND kind = 'credits'"
)
CREATE_ACCOUNTS = """
    INSERT INTO accounts (organisation_id, kind)
    SELECT $1, kind FROM unnest(CAST($2 AS text[])) AS kind
    ON CONFLICT DO NOTHING
"""
BALANCES = (
    "SELECT organisation_id, coalesce(sum(amount), 0) AS balance FROM entries "
    "WHERE account_kind = 'credits' GROUP BY organisation_id"
)


class _RecordingOp:
    """Stands in for ``alembic.op`` and keeps the SQL a migration would execute."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, statement: object) -> None:
        """Keep one statement."""
        self.statements.append(str(statement))

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"the ceiling replays migrations made of op.execute only, not op.{name}"
        )


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ledger_ddl() -> list[str]:
    """Every statement of the ledger's migrations, oldest revision first."""
    modules = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        module = _load(path)
        modules[module.down_revision] = module
    statements: list[str] = []
    revision = None
    while revision in modules:
        module = modules.pop(revision)
        recorder = _RecordingOp()
        module.op = recorder
        module.upgrade()
        statements += recorder.statements
        revision = module.revision
    if modules:
        raise RuntimeError(f"migrations outside the chain: {sorted(map(str, modules))}")
    return statements


async def create_schema(admin_dsn: str, owner_dsn: str, roles: Sequence[str]) -> bool:
    """Drop and recreate the scratch schema with the ledger's tables, as the owner.

    ``roles`` may use the schema; the answer is whether the replayed migrations put
    row-level security on the tables, in which case every transaction must name its
    organisation first, as the ledger's do.
    """
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        await admin.execute(
            f'CREATE SCHEMA "{SCHEMA}" AUTHORIZATION "tollgate_ledger_owner"'
        )
        for role in roles:
            await admin.execute(f'GRANT USAGE ON SCHEMA "{SCHEMA}" TO "{role}"')
    finally:
        await admin.close()
    owner = await asyncpg.connect(owner_dsn, server_settings={"search_path": SCHEMA})
    try:
        for statement in ledger_ddl():
            await owner.execute(statement)
        return bool(
            await owner.fetchval(
                "SELECT relrowsecurity FROM pg_class WHERE oid = $1::regclass",
                f"{SCHEMA}.accounts",
            )
        )
    finally:
        await owner.close()


async def open_pool(dsn: str, size: int) -> asyncpg.Pool:
    """A pool of exactly ``size`` connections on the scratch schema.

    Its connections carry application_name ``bench-ceiling``, so that their CPU time
    is told apart from the ledger service's connections, which use the same role.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        # asyncpg replaces a connection after 50,000 queries by default; the
        # ledger's pool never does, and a replaced backend would take its CPU
        # time with it.
        max_queries=2**62,
        server_settings={"search_path": SCHEMA, "application_name": APPLICATION},
    )
    assert pool is not None
    return pool


async def fund(
    pool: asyncpg.Pool,
    accounts: Sequence[uuid.UUID],
    amount: int,
    confined: bool,
) -> None:
    """Create each account as the ledger does and grant it ``amount`` credits."""
    reason = "bench grant"
    fingerprint = hashlib.sha256(f"{amount}\x00{reason}".encode()).hexdigest()
    async with pool.acquire() as db:
        for organisation_id in accounts:
            async with db.transaction():
                if confined:
                    await db.fetchval(ACT_FOR, str(organisation_id))
                await db.execute(
                    CREATE_ACCOUNTS, organisation_id, ["credits", "grants", "usage"]
                )
                await db.fetchval(LOCK, organisation_id)
                transaction_id = uuid.uuid4()
                await db.fetchval(
                    INSERT_TRANSACTION,
                    transaction_id,
                    organisation_id,
                    "grant",
                    amount,
                    reason,
                    f"grant:{transaction_id}",
                    fingerprint,
                    None,
                    "bench",
                    amount,
                    None,
                )
                await db.execute(
                    INSERT_ENTRIES,
                    organisation_id,
                    transaction_id,
                    ["credits", "grants"],
                    [amount, -amount],
                )
                await db.execute(UPDATE_BALANCE, amount, organisation_id)


async def balances(reader_dsn: str) -> dict[uuid.UUID, int]:
    """Every scratch account's balance, summed from its entries.

    ``reader_dsn`` names a role that sees every organisation (one that row-level
    security does not confine, where the tables have it).
    """
    db = await asyncpg.connect(reader_dsn, server_settings={"search_path": SCHEMA})
    try:
        rows = await db.fetch(BALANCES)
    finally:
        await db.close()
    return {row["organisation_id"]: int(row["balance"]) for row in rows}


class Charges:
    """Counts the charges the ceiling committed, over every phase."""

    def __init__(self) -> None:
        self.committed = 0
        self.unknown = 0


def charge(
    pool: asyncpg.Pool,
    accounts: Sequence[uuid.UUID],
    charges: Charges,
    confined: bool,
) -> Operation:
    """One ledger charge of an analyse call, round-robin over the accounts."""
    price, reason = ANALYSE_PRICE, "API call: /api/analyse"
    fingerprint = hashlib.sha256(f"{price}\x00{reason}".encode()).hexdigest()
    user_id = uuid.uuid4()
    kinds = ["credits", "usage"]
    amounts = [-price, price]
    next_account = itertools.cycle(accounts).__next__

    async def call() -> str:
        organisation_id = next_account()
        reference = f"/api/analyse:{uuid.uuid4()}"
        try:
            async with pool.acquire() as db, db.transaction():
                if confined:
                    await db.fetchval(ACT_FOR, str(organisation_id))
                balance = await db.fetchval(LOCK, organisation_id)
                if balance is None or balance < price:
                    return "insufficient credits"
                if await db.fetchrow(BY_REFERENCE, organisation_id, reference):
                    return "replayed"
                transaction_id = uuid.uuid4()
                await db.fetchval(
                    INSERT_TRANSACTION,
                    transaction_id,
                    organisation_id,
                    "charge",
                    price,
                    reason,
                    reference,
                    fingerprint,
                    user_id,
                    "bench",
                    balance - price,
                    None,
                )
                await db.execute(
                    INSERT_ENTRIES, organisation_id, transaction_id, kinds, amounts
                )
                await db.execute(UPDATE_BALANCE, balance - price, organisation_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            # A failure at COMMIT leaves the outcome unknown to the client.
            charges.unknown += 1
            return type(error).__name__
        charges.committed += 1
        return OK

    return call


async def reconcile_schema(dsn: str) -> Report:
    """The ledger's reconciliation checks, run over the scratch schema.

    ``dsn`` is an SQLAlchemy URL of a role that sees every organisation.
    """
    engine = create_async_engine(
        dsn, connect_args={"server_settings": {"search_path": SCHEMA}}
    )
    try:
        return await reconcile(engine)
    finally:
        await engine.dispose()
