"""Alembic environment of the identity schema."""

from tollgate_common.migrations import run

run("identity")
