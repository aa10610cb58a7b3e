"""An index on when pending logins expire, for the sweep at every new login.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Index login_attempts by expiry, so clearing stale attempts scans only them."""
    op.execute(
        "CREATE INDEX IF NOT EXISTS login_attempts_expires_at "
        "ON login_attempts (expires_at)"
    )


def downgrade() -> None:
    """Drop the index."""
    op.execute("DROP INDEX IF EXISTS login_attempts_expires_at")
