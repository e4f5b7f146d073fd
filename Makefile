# The same targets run locally and in CI (.ci/run calls `make lint` and `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs Herald's runtime dependencies only; everything else also
# needs the dev extras (pytest, mypy, schemathesis, Playwright: hundreds of MB).
RUN_STAMP := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp

HOST ?= 127.0.0.1
PORT ?= 8000
# The quick start's callbacks and fakes are on this machine; `herald serve` alone refuses them.
HERALD_ALLOWED_PRIVATE_HOSTS ?= 127.0.0.1,::1,localhost

.PHONY: run test faults lint types bench fuzz clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

## run: create the virtualenv, migrate the SQLite database and serve Herald on 127.0.0.1:$(PORT)
## (PORT=8001 for another port; loopback callback URLs allowed, see HERALD_ALLOWED_PRIVATE_HOSTS)
run: $(RUN_STAMP)
	HERALD_ALLOWED_PRIVATE_HOSTS='$(HERALD_ALLOWED_PRIVATE_HOSTS)' \
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

## fuzz: schemathesis, every check, against a throwaway sandbox Herald on SQLite, then on a
## throwaway PostgreSQL database (FUZZ_SECONDS each, 360 s; FUZZ_DATABASES=sqlite for one)
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache herald.db herald.key
