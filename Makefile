# The same targets run locally and in CI (.ci/run calls `make lint` and `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint types bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: create the virtualenv, migrate the SQLite database and serve Herald on 127.0.0.1:8000
run: $(STAMP)
	$(BIN)/herald serve --host $(HOST) --port $(PORT)

## test: the whole test suite (SQLite and PostgreSQL on 127.0.0.1:5432)
test: $(STAMP)
	$(BIN)/pytest

## lint: ruff, mypy --strict, and migrations in step with the models
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	rm -f .alembic-dev.db && $(BIN)/alembic upgrade head && $(BIN)/alembic check; rc=$$?; rm -f .alembic-dev.db; exit $$rc

## bench: end-to-end SMS throughput against the fake Twilio
bench: $(STAMP)
	$(BIN)/python bench/sms_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache herald.db herald.key
