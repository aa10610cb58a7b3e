#!/bin/sh
# Prepare the database, then migrate each service's schema with its owner role.
#
#   TOLLGATE_ADMIN_DSN     optional: a superuser's DSN (postgresql://...). When it is
#                          set, tools/db_setup.py first creates the database, roles
#                          and schemas that are missing; where a DBA manages roles,
#                          leave it unset.
#   TOLLGATE_DATABASE      the database (default tollgate)
#   TOLLGATE_IDENTITY_OWNER_URL, TOLLGATE_LEDGER_OWNER_URL, TOLLGATE_JOBS_OWNER_URL
#                          postgresql+asyncpg:// URLs of the three owner roles
#
# Every step is idempotent, and Alembic takes an advisory lock per schema, so two
# runs at once wait for each other. Alembic takes the URL as a command-line argument,
# so a password in it is visible to processes in this container while it runs.
set -eu
cd /app

if [ -n "${TOLLGATE_ADMIN_DSN:-}" ]; then
  python tools/db_setup.py --admin-dsn "$TOLLGATE_ADMIN_DSN" \
    --database "${TOLLGATE_DATABASE:-tollgate}"
fi

alembic -c services/identity/alembic.ini \
  -x "url=${TOLLGATE_IDENTITY_OWNER_URL:?the identity owner role's URL}" upgrade head
alembic -c services/ledger/alembic.ini \
  -x "url=${TOLLGATE_LEDGER_OWNER_URL:?the ledger owner role's URL}" upgrade head
alembic -c services/jobs/alembic.ini \
  -x "url=${TOLLGATE_JOBS_OWNER_URL:?the jobs owner role's URL}" upgrade head
echo "identity, ledger and jobs are at their latest migrations"
