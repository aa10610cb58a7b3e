"""Row-level security on jobs and idempotency records; keys led by organisation.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from tollgate_common.migrations import isolate_tenants

revision = "0003"
down_revision = "0002"

TABLES = ("jobs", "idempotency_records")
SYSTEM_ROLE = "tollgate_jobs_system"


def upgrade() -> None:
    """Confine tenant tables to ``tollgate.organisation_id``; the sweeper sees all."""
    # A job is found by (organisation_id, id), so a Postgres distributed by
    # organisation_id keeps it on one node; the global unique id goes.
    op.execute("ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_id_key")
    for table in TABLES:
        for statement in isolate_tenants(table):
            op.execute(statement)
    # The sweeper retries and fails stalled jobs of every organisation and prunes
    # old idempotency records.
    op.execute(f"GRANT SELECT, UPDATE ON jobs TO {SYSTEM_ROLE}")
    op.execute(f"GRANT SELECT, DELETE ON idempotency_records TO {SYSTEM_ROLE}")
