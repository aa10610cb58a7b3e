"""Create Tollgate's database, schemas and roles; safe to run again.

Each service gets a schema owned by its own owner role (which runs the migrations),
a separate login role for the running service, confined to one organisation at a
time by row-level security, and a ``_system`` role for cross-tenant work; none has
privileges on any other schema. Local servers use trust authentication; production
passes passwords through each role's connection URL, which this script does not
manage.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

SERVICES = ("identity", "ledger", "jobs")


async def setup(admin_dsn: str, database: str, fresh: bool = False) -> None:
    """Create the database, roles and schemas that do not exist yet.

    With ``fresh`` the database is dropped first (for test databases only).
    """
    admin = await asyncpg.connect(admin_dsn)
    try:
        if fresh:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{database}"')
        for service in SERVICES:
            for role in (f"tollgate_{service}_owner", f"tollgate_{service}"):
                await _create_role(admin, role, "LOGIN")
            # Cross-tenant work (reconciliation, the jobs sweeper) runs as a role
            # that row-level security does not confine, with only the grants the
            # migrations give it.
            await _create_role(admin, f"tollgate_{service}_system", "LOGIN BYPASSRLS")
    finally:
        await admin.close()

    db = await asyncpg.connect(admin_dsn, database=database)
    try:
        await db.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in SERVICES:
            owner, app = f"tollgate_{service}_owner", f"tollgate_{service}"
            await db.execute(
                f'CREATE SCHEMA IF NOT EXISTS "{service}" AUTHORIZATION "{owner}"'
            )
            await db.execute(f'REVOKE ALL ON SCHEMA "{service}" FROM PUBLIC')
            system = f"tollgate_{service}_system"
            for role in (app, system):
                await db.execute(f'GRANT USAGE ON SCHEMA "{service}" TO "{role}"')
            for role in (owner, app, system):
                await db.execute(
                    f'ALTER ROLE "{role}" IN DATABASE "{database}" '
                    f'SET search_path = "{service}"'
                )
    finally:
        await db.close()
    print(f"database {database}: schemas and roles ready for {', '.join(SERVICES)}")


async def _create_role(admin: asyncpg.Connection, role: str, options: str) -> None:
    await admin.execute(
        f"""DO $$ BEGIN
            CREATE ROLE "{role}" {options};
        EXCEPTION WHEN duplicate_object THEN NULL; END $$"""
    )


def main() -> None:
    """Parse the command line and run the setup."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--database", default="tollgate")
    parser.add_argument(
        "--fresh", action="store_true", help="drop the database first (tests only)"
    )
    args = parser.parse_args()
    asyncio.run(setup(args.admin_dsn, args.database, args.fresh))


if __name__ == "__main__":
    main()
