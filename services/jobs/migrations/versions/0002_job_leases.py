"""Leases on running jobs, so a job whose worker died can be taken over.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """A running job belongs to its worker until ``lease_until``."""
    op.execute("ALTER TABLE jobs ADD COLUMN lease_until timestamptz")
