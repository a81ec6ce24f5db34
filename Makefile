# The two Quick-start commands: `make dev` (local stack) and `make test` (whole suite).
# Both create .venv and install hubstream with its dev extras when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test test-chaos bench bench-serde bench-failover install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hubstream needs Python >= 3.11 (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/hubstream dev

test: $(STAMP)
	$(BIN)/python -m pytest -m "not chaos"

test-chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos

bench: bench-serde bench-failover

bench-serde: $(STAMP)
	$(BIN)/python bench/serde.py

bench-failover: $(STAMP)
	$(BIN)/python bench/failover.py

clean:
	rm -rf $(VENV) .hubstream .pytest_cache
