# Sagaboard: `make run` starts everything, `make test` runs every test (SQLite, then PostgreSQL).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# PostgreSQL for the second test pass; each test system creates (and drops) its own databases.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sagaboard_test
PYTEST_ARGS ?=

.PHONY: setup run test test-sqlite test-postgres bench-deadlines clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) manage.py run

test: test-sqlite test-postgres

# Tests marked `postgres` run on PostgreSQL whatever the pass: the PostgreSQL pass runs them once.
test-sqlite: setup
	env -u DATABASE_URL $(PY) -m pytest -m "not postgres" $(PYTEST_ARGS)

test-postgres: setup
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

bench-deadlines: setup
	$(PY) bench/deadline_lateness.py

clean:
	rm -rf var .pytest_cache
