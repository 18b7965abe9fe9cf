# The two commands: `make demo` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_PORT ?= 8000

# Tests run against PostgreSQL and Redis on this host unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) HF_HUB_OFFLINE=1

.PHONY: demo demo-setup demo-check serve test install-demo install-test services lint typecheck pytest \
        format bench-import clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

# Stamps make the second run instant; they depend on pyproject.toml so a new pin reinstalls.
$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[judge,dev]'
	touch $@ $(VENV)/.installed-demo

install-demo: $(VENV)/.installed-demo
install-test: $(VENV)/.installed-test

## make demo: embedded SQLite, tasks in-process, demo data judged and ready for review.
demo: demo-setup serve

demo-setup: install-demo
	mkdir -p "$(or $(SPAVL_VAR_DIR),var)"
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo_setup

serve:
	@echo "Serving on http://127.0.0.1:$(DEMO_PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver 127.0.0.1:$(DEMO_PORT)

## make test: every check, against PostgreSQL and Redis.
test: install-test services lint typecheck demo-check pytest

# `make demo` as a new user meets it: its own empty venv with only the web install.
demo-check:
	$(PYTHON) scripts/check-demo

services:
	@scripts/ensure-services

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install-test
	$(VENV)/bin/mypy .

pytest: install-test
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

bench-import: install-test services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) bench/import_throughput.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
