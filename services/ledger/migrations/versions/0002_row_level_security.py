"""Row-level security: a transaction sees only its organisation's ledger rows.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from tollgate_common.migrations import isolate_tenants

revision = "0002"
down_revision = "0001"

TABLES = ("accounts", "transactions", "entries")
SYSTEM_ROLE = "tollgate_ledger_system"


def upgrade() -> None:
    """Confine every tenant table to ``tollgate.organisation_id``."""
    for table in TABLES:
        for statement in isolate_tenants(table):
            op.execute(statement)
    # Reconciliation reads the whole ledger, and nothing else.
    op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {SYSTEM_ROLE}")
