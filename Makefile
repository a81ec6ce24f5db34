# The two Quick-start commands: `make dev` (local stack) and `make test` (whole suite).
# Both create .venv and install hubstream with its dev extras when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test check fuzz test-chaos bench bench-serde bench-producer bench-consumer bench-failover bench-delivery bench-webhooks bench-http install postgres kcat chromium clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hubstream needs Python >= 3.11 (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/hubstream dev

test: $(STAMP) postgres kcat chromium
	$(BIN)/python -m pytest -m "not chaos and not slow"

# Lint, format and type checks (CI runs them before the tests): ruff over the tree, mypy --strict over the
# packages listed in pyproject.toml.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Schemathesis against the producer API and the registry emulator on a local stack of their own (free ports, a
# temporary state dir), server-error check only, bounded per API (FUZZ_MAX_EXAMPLES, FUZZ_MAX_TIME: tests/fuzz.py).
# Fails on any 5xx; the stack is stopped afterwards.
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz

test-chaos: $(STAMP) postgres
	$(BIN)/python -m pytest -m chaos

bench: bench-serde bench-producer bench-consumer bench-failover bench-delivery bench-webhooks bench-http

bench-serde: $(STAMP)
	$(BIN)/python bench/serde.py

bench-producer: $(STAMP)
	$(BIN)/python bench/producer.py

# the producer API against a bare FastAPI endpoint on the same uvicorn stack; the load comes from Debian's wrk
bench-http: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/http_ingest.py

bench-consumer: $(STAMP)
	$(BIN)/python bench/consumer.py

bench-failover: $(STAMP)
	$(BIN)/python bench/failover.py

# a PostgreSQL server of their own (Debian's binaries, installed by `make postgres` when missing)
bench-delivery: $(STAMP) postgres
	$(BIN)/python bench/delivery.py

bench-webhooks: $(STAMP) postgres
	$(BIN)/python bench/webhooks.py

# The delivery store tests run a real PostgreSQL server. Debian's server binaries are installed when missing
# (as root; otherwise the command to run is printed), without the package's own cluster on port 5432: the
# tests start their own on a free port. HUBSTREAM_TEST_POSTGRES_DSN skips this and uses your server.
postgres:
	@if [ -n "$$HUBSTREAM_TEST_POSTGRES_DSN" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "PostgreSQL server binaries are missing: run 'sudo apt-get install postgresql' or set HUBSTREAM_TEST_POSTGRES_DSN"; \
	  exit 1; fi; \
	mkdir -p /etc/postgresql-common && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null

# The old-client tests run kcat on Debian's librdkafka 2.0.2 (a client of that age against our broker). Installed
# when missing as root; otherwise those tests skip and say how to install it.
kcat:
	@if command -v kcat >/dev/null 2>&1 || [ "$$(id -u)" != 0 ]; then exit 0; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null

# The web console's test drives Debian's chromium through Playwright (never a browser Playwright downloads).
# Installed when missing as root; otherwise that test skips and says how to install it.
chromium:
	@if [ -x /usr/bin/chromium ] || [ "$$(id -u)" != 0 ]; then exit 0; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

clean:
	rm -rf $(VENV) .hubstream .pytest_cache
