# syntax=docker/dockerfile:1
# The one-shot migration: tools/db_setup.py (database, roles, schemas) and every
# service's Alembic migrations, each run with that service's owner role. Compose runs
# it as the `migrate` service, Kubernetes as the migration Job. Build from the
# repository root:
#   docker build -f deploy/docker/migrate.Dockerfile -t tollgate/migrate:dev .
# The image holds no secret: every URL comes from the environment (deploy/docker/
# migrate.sh lists them).

# 1. The generated stubs: the migrations import tollgate_common, which needs them.
FROM python:3.11-slim AS stubs
WORKDIR /src
COPY requirements.txt ./
RUN python -m venv /opt/protoc \
 && /opt/protoc/bin/pip install --no-cache-dir $(grep -E \
      '^(grpcio-tools|mypy-protobuf|googleapis-common-protos|protovalidate)[<>=~]' \
      requirements.txt)
COPY proto/ proto/
COPY tools/ tools/
COPY libs/api/ libs/api/
RUN PYTHON=/opt/protoc/bin/python bash tools/gen_protos.sh

# 2. A virtualenv with the shared libraries and Alembic; no service code is needed.
FROM python:3.11-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /src/requirements.txt
COPY --from=stubs /src/libs/api/ /src/libs/api/
COPY libs/common/ /src/libs/common/
RUN pip install --no-cache-dir /src/libs/api /src/libs/common \
      $(grep -E '^alembic[<>=~]' /src/requirements.txt)

# 3. The runtime: the virtualenv, the migrations and the two scripts.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin tollgate
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY tools/db_setup.py tools/db_setup.py
COPY services/identity/alembic.ini services/identity/alembic.ini
COPY services/identity/migrations/ services/identity/migrations/
COPY services/ledger/alembic.ini services/ledger/alembic.ini
COPY services/ledger/migrations/ services/ledger/migrations/
COPY services/jobs/alembic.ini services/jobs/alembic.ini
COPY services/jobs/migrations/ services/jobs/migrations/
COPY deploy/docker/migrate.sh /usr/local/bin/tollgate-migrate
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
CMD ["tollgate-migrate"]
