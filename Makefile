# Sagaboard: `make run` starts everything, `make test` runs every test (SQLite, then PostgreSQL).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# PostgreSQL for the second test pass; each test system creates (and drops) its own databases.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sagaboard_test
PYTEST_ARGS ?=
# make soak: orders, their rate (per second), duplicate fraction, crash points, seconds between
# SIGKILLs, and time bounds (placing, settling); databases are fresh in var/soak (or DATABASE_URL)
SOAK_ORDERS ?= 2000
SOAK_RATE ?= 20
SOAK_DUPLICATES ?= 0.1
SOAK_CRASH ?= handler_mid:0.001,handler_after_commit:0.001,relay_before_publish:0.001,relay_after_publish:0.001
SOAK_KILL_EVERY ?= 5
SOAK_TIME_LIMIT ?= 1200
SOAK_SETTLE_LIMIT ?= 300
SOAK_ARGS ?=

.PHONY: setup run test test-sqlite test-postgres soak bench-deadlines bench-ws clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The browser tests drive Debian's Chromium (never a browser download of Playwright's own).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

setup: $(STAMP) $(CHROMIUM)

run: setup
	$(PY) manage.py run

test: test-sqlite test-postgres

# Tests marked `postgres` run on PostgreSQL whatever the pass: the PostgreSQL pass runs them once.
test-sqlite: setup
	env -u DATABASE_URL $(PY) -m pytest -m "not postgres" $(PYTEST_ARGS)

test-postgres: setup
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

soak: setup
	rm -rf var/soak
	SAGA_DATA_DIR=var/soak $(PY) manage.py soak --orders $(SOAK_ORDERS) --rate $(SOAK_RATE) \
		--duplicate-rate $(SOAK_DUPLICATES) --crash '$(SOAK_CRASH)' --kill-every $(SOAK_KILL_EVERY) \
		--time-limit $(SOAK_TIME_LIMIT) --settle-limit $(SOAK_SETTLE_LIMIT) $(SOAK_ARGS)

bench-deadlines: setup
	$(PY) bench/deadline_lateness.py

bench-ws: setup
	$(PY) bench/ws_latency.py

clean:
	rm -rf var .pytest_cache
