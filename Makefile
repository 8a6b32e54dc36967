# Sagaboard: `make run` starts everything, `make test` runs every test (SQLite, then PostgreSQL).
# Python: the versions pyproject.toml's requires-python names (sagaboard/python_version.py checks).
# Without PYTHON=..., the first supported one of python3, python3.13, python3.12, python3.11.
ifndef PYTHON
PYTHON := $(or $(shell for p in python3 python3.13 python3.12 python3.11; do \
	"$$p" sagaboard/python_version.py --quiet 2>/dev/null && { echo "$$p"; break; }; done),python3)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
# What is installed in the venv, for which pyproject.toml: the project (make run), then its test extras (make test).
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
TEST_STAMP := $(STAMP)-test
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

.PHONY: setup run lint test test-sqlite test-postgres test-walkthrough soak bench profile bench-deadlines bench-ws bench-timeline bench-tansu vendor clean

$(STAMP): pyproject.toml
	@$(PYTHON) sagaboard/python_version.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(TEST_STAMP)

# The browser tests drive Debian's Chromium (never a browser download of Playwright's own): only
# the tests need it, and only they install it (as root; anyone else is told the command).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "The browser tests need Chromium at $(CHROMIUM): install it as root (sudo apt-get install chromium), then run make test again."; \
		exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

setup: $(STAMP)

run: setup
	$(PY) manage.py run

test: lint test-sqlite test-postgres

# ruff (pinned in the test extras; its rules in pyproject.toml): seconds, so it goes first
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .

# Tests marked `postgres` run on PostgreSQL whatever the pass: the PostgreSQL pass runs them once.
test-sqlite: $(TEST_STAMP) $(CHROMIUM)
	env -u DATABASE_URL $(PY) -m pytest -m "not postgres" $(PYTEST_ARGS)

test-postgres: $(TEST_STAMP) $(CHROMIUM)
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

# The walkthrough and the README's commands alone, on SQLite, without a browser: what CI runs on
# the newest supported Python (.ci/run), in a venv of its own (VENV=...).
test-walkthrough: $(TEST_STAMP)
	env -u DATABASE_URL $(PY) -m pytest tests/test_walkthrough.py tests/test_readme.py $(PYTEST_ARGS)

soak: setup
	rm -rf var/soak
	SAGA_DATA_DIR=var/soak $(PY) manage.py soak --orders $(SOAK_ORDERS) --rate $(SOAK_RATE) \
		--duplicate-rate $(SOAK_DUPLICATES) --crash '$(SOAK_CRASH)' --kill-every $(SOAK_KILL_EVERY) \
		--time-limit $(SOAK_TIME_LIMIT) --settle-limit $(SOAK_SETTLE_LIMIT) $(SOAK_ARGS)

# make vendor: fetch the vendored front-end library again from npm (the pages serve no CDN) and
# check it is the file the dashboard was built and tested with
D3_VERSION := 7.9.2
D3_SHA256 := 912111098ea99503a6f4967361d2bbdc9dbf58cf9c678c8e27e5b02d1a07f0c1

vendor:
	rm -rf var/vendor && mkdir -p var/vendor
	cd var/vendor && npm pack --silent d3@$(D3_VERSION) >/dev/null && tar xzf d3-$(D3_VERSION).tgz
	echo "$(D3_SHA256)  var/vendor/package/dist/d3.min.js" | sha256sum -c -
	cp var/vendor/package/dist/d3.min.js var/vendor/package/LICENSE static/vendor/d3/

# make bench: throughput, latency and CPU next to the raw Kafka limit (bench/throughput.py --help)
BENCH_ARGS ?=

bench: setup
	$(PY) bench/throughput.py $(BENCH_ARGS)

# make profile: where each process's CPU goes under a steady load (py-spy, as root or with ptrace allowed)
PROFILE_ARGS ?=

profile: setup
	$(PY) -m pip install -q --disable-pip-version-check -e '.[profile]'
	$(PY) bench/profile.py $(PROFILE_ARGS)

bench-deadlines: $(TEST_STAMP)
	$(PY) bench/deadline_lateness.py

bench-ws: $(TEST_STAMP)
	$(PY) bench/ws_latency.py

bench-timeline: $(TEST_STAMP) $(CHROMIUM)
	$(PY) bench/timeline.py

# make bench-tansu: how the embedded broker's fetch slows as a partition's log grows
bench-tansu: setup
	$(PY) bench/tansu_scan.py

clean:
	rm -rf var .pytest_cache
