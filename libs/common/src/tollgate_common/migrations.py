"""The body of every service's Alembic ``env.py``: online, async, one schema each.

The database URL comes from ``alembic -x url=...`` (the owner role of the service's
schema); Alembic's version table lives in that schema, so services migrate
independently.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run(schema: str) -> None:
    """Apply the migrations of the service that owns ``schema``."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the owner's database URL: alembic -x url=... upgrade")
    asyncio.run(_run_online(url, schema))


async def _run_online(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_migrate, schema)
        await connection.commit()
    await engine.dispose()


def _migrate(connection: sa.Connection, schema: str) -> None:
    connection.execute(sa.text(f'SET search_path TO "{schema}"'))
    # Two processes migrating at once wait for each other instead of racing.
    connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema}
    )
    context.configure(
        connection=connection,
        version_table_schema=schema,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def isolate_tenants(table: str, column: str = "organisation_id") -> list[str]:
    """The statements that confine ``table`` to the organisation a transaction sets.

    Row-level security as defence in depth: a service sets
    ``tollgate.organisation_id`` at the start of each transaction (see
    ``set_config`` in the adapters); a query without it, or with another
    organisation, sees and writes nothing of the first. FORCE applies the policy
    to the table's owner as well.
    """
    acting_for = "NULLIF(current_setting('tollgate.organisation_id', true), '')::uuid"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {acting_for}) "
        f"WITH CHECK ({column} = {acting_for})",
    ]
