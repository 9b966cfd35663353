# Superset Migrator: `make run` (embedded mode) and `make test` (whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first Python >= 3.12 found (Django 6 needs it); override with PYTHON=...
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$HOME/.pyenv/versions/3.1[23]*/bin/python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help python venv run run-scaled test test-unit test-browser lint format superset-up superset-down clean

help:
	@echo "make run    set up and serve http://$(HOST):$(PORT) (SQLite, one process, workers included)"
	@echo "make run-scaled  PostgreSQL + Redis, 2 web processes (8001, 8002) and 2 workers"
	@echo "make test   set up and run the whole test suite (starts real Superset 4.1, 5.0, 6.0 and 6.1 servers)"
	@echo "make superset-up / superset-down   start / stop those Superset test servers"
	@echo "make lint   ruff check + format check"

python:
	@if [ -z "$(PYTHON)" ] || ! "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	  echo "Superset Migrator needs Python 3.12 or newer (Django 6), and none was found$(if $(PYTHON), ($(PYTHON) is older),)."; \
	  echo "Install it (Debian/Ubuntu: apt install python3.12 python3.12-venv; macOS: brew install python@3.12;"; \
	  echo "or pyenv install 3.12) and run make again, or point at one: make run PYTHON=/path/to/python3.12"; \
	  exit 1; fi

$(BIN)/.installed-runtime: requirements.txt | python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@touch $@

$(BIN)/.installed-dev: requirements.txt requirements-dev.txt $(BIN)/.installed-runtime
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.installed-runtime

run: $(BIN)/.installed-runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_admin
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl+C to stop)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) migrator.asgi:application

# The scaled-out topology on this machine (README, "Scaling out"); the
# variables of scripts/run_scaled.sh (DATABASE_URL, CHANNEL_LAYER_URL,
# WEB_PORTS, WORKERS, ...) override its defaults.
run-scaled: $(BIN)/.installed-runtime
	bash scripts/run_scaled.sh

test: $(BIN)/.installed-dev
	bash scripts/test.sh

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every Superset test server (the 6.1 pair and one per other release, VERSION_SERVERS in
# tests/e2e/superset_servers.py), installed in parallel and started; stopped again.
superset-up: $(BIN)/.installed-dev
	bash scripts/superset/up.sh $$($(BIN)/python -m tests.e2e.superset_servers specs)

superset-down: $(BIN)/.installed-dev
	bash scripts/superset/down.sh $$($(BIN)/python -m tests.e2e.superset_servers names)

clean:
	rm -rf $(VENV) .pytest_cache
