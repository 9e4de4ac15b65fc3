# The README's commands. Everything runs inside .venv, made on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## Run the whole product on SQLite with synthetic radiographs (http://127.0.0.1:8000).
demo: $(STAMP)
	$(PY) scripts/demo.py

## Run the habits (make lint), then the whole test suite (PostgreSQL and Redis at their standard
## local ports). CI runs this.
test: lint
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hipstudy} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/15} \
	$(PY) -m pytest

## The habits, in order, stopping at the first failure: lint, format, types (mypy as configured in
## pyproject.toml) and the import contracts. mypy's Django plugin imports config.settings, which
## needs DEBUG or a SECRET_KEY: DEBUG=1 for that step only, and no developer's .env.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 READ_DOTENV=false $(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/viewer.py
	$(PY) bench/train.py
	$(PY) bench/infer.py
	$(PY) bench/report.py
	$(PY) bench/readers.py
	$(PY) bench/pipeline.py
