"""Alembic environment of the ledger schema."""

from tollgate_common.migrations import run

run("ledger")
