"""Row-level security: a transaction sees only its organisation's ledger rows.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"

TABLES = ("accounts", "transactions", "entries")
SYSTEM_ROLE = "tollgate_ledger_system"


def upgrade() -> None:
    """Confine every tenant table to ``tollgate.organisation_id``."""
    # Defence in depth: the service sets the caller's organisation at the start of
    # each transaction; a query without it, or with another organisation, sees and
    # writes nothing of the first. FORCE applies the policy to the owner as well.
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY tenant_isolation ON {table}
            USING (organisation_id =
                   NULLIF(current_setting('tollgate.organisation_id', true), '')::uuid)
            WITH CHECK (organisation_id =
                   NULLIF(current_setting('tollgate.organisation_id', true), '')::uuid)
            """
        )
    # Reconciliation reads the whole ledger, and nothing else.
    op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {SYSTEM_ROLE}")
