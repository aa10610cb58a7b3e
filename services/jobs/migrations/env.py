"""Alembic environment of the jobs schema."""

from tollgate_common.migrations import run

run("jobs")
