"""Row-level security on users and organisations; logins run as the system role.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from tollgate_common.migrations import isolate_tenants

revision = "0003"
down_revision = "0002"

SYSTEM_ROLE = "tollgate_identity_system"


def upgrade() -> None:
    """Confine users and organisations to ``tollgate.organisation_id``."""
    for statement in [
        *isolate_tenants("users"),
        *isolate_tenants("organisations", "id"),
    ]:
        op.execute(statement)
    # A login finds its user by provider subject and its organisation by domain
    # before any organisation is known: that work, and only it, crosses tenants.
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON organisations, users TO {SYSTEM_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON login_attempts TO {SYSTEM_ROLE}")
