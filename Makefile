# The same targets run locally and in CI (.ci/run calls `make lint` and `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test faults lint types bench fuzz clean

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

## faults: the fault suite alone, bigger: Herald's processes SIGKILLed while sending
## (HERALD_FAULT_MESSAGES, HERALD_FAULT_KILLS; HERALD_FAULT_SEED repeats a run's kill plan)
HERALD_FAULT_MESSAGES ?= 3000
HERALD_FAULT_KILLS ?= 12
faults: $(STAMP)
	HERALD_FAULT_MESSAGES=$(HERALD_FAULT_MESSAGES) HERALD_FAULT_KILLS=$(HERALD_FAULT_KILLS) \
		$(BIN)/pytest -m fault -s -q

## lint: ruff, mypy --strict, and migrations in step with the models
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	rm -f .alembic-dev.db && $(BIN)/alembic upgrade head && $(BIN)/alembic check; rc=$$?; rm -f .alembic-dev.db; exit $$rc

## bench: end-to-end SMS throughput against the fake Twilio
bench: $(STAMP)
	$(BIN)/python bench/sms_throughput.py

## fuzz: schemathesis, every check, against a throwaway sandbox Herald (FUZZ_SECONDS, 420 s)
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache herald.db herald.key
