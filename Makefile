# Streamdesk. The README's two commands: `make up` (run the local stack) and `make test` (the whole suite).
# Both install what is missing first: system tools (Debian packages), the virtualenv, DynamoDB Local.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up test install install-dev tools browser lint unit demo bench chaos dashboard deploy destroy clean

up: install  ## Run DynamoDB Local, the API, the trigger and the dashboard (Ctrl-C stops all)
	$(BIN)/streamdesk up

test: install-dev browser lint  ## Lint, type-check and run every test (DynamoDB Local started by the suite)
	$(BIN)/pytest

install: tools $(VENV)/.installed node_modules/.installed
install-dev: install $(VENV)/.installed-dev

tools:
	@PYTHON=$(PYTHON) bash scripts/ensure-tools.sh python java node

browser:
	@bash scripts/ensure-tools.sh chromium

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: install-dev  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: install  ## Send sample requests through every state to the running stack
	$(BIN)/streamdesk demo

bench: install-dev  ## Ingest/drain throughput vs raw writes; pipeline latency; overview from rollups (600 million requests) vs the item-reading overview, and in Chromium; rollups vs a naive counter; PUT with vs without Idempotency-Key; cancel vs raw UpdateItem
	$(BIN)/python scripts/bench_throughput.py
	$(BIN)/python scripts/bench_pipeline.py --requests 200 --rate 10
	$(BIN)/python scripts/bench_overview.py --rate 1000 --days 7 --items 100000 --small 10000
	$(BIN)/python scripts/bench_overview_browser.py --rate 1000 --days 7 --items 100000
	$(BIN)/python scripts/bench_rollups.py --requests 300 --batch 100
	$(BIN)/python scripts/bench_idempotency.py --requests 300
	$(BIN)/python scripts/bench_support.py --requests 200

chaos: install-dev  ## Longer chaos run: rounds of SIGKILL to DynamoDB Local, the API and the trigger under load
	STREAMDESK_CHAOS_ROUNDS=4 STREAMDESK_CHAOS_REQUESTS=60 $(BIN)/pytest tests/e2e/test_chaos.py -s

dashboard: install  ## Only the dashboard (e.g. STREAMDESK_STACK=name make dashboard for a deployed stack)
	$(BIN)/streamdesk dashboard

deploy: install  ## Build and deploy infra/template.yaml with the SAM CLI (pip install -e '.[deploy]')
	bash scripts/deploy.sh

destroy: install  ## Remove the deployed stack
	bash scripts/destroy.sh

clean:  ## Remove the virtualenv and node modules (keeps .data)
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache test-output
