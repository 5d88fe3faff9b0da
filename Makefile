# kafkaml: the two commands are `make run` and `make test`. Everything else is reached from them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := tensorflow,pytorch,backend,dev
INSTALLED := $(VENV)/.installed
BROKER := deploy/local/kafka/broker.sh
PYTEST_ARGS ?=
# The tests that use the Django database (pytest-django); `make test` runs them a second time
# on PostgreSQL when KAFKAML_TEST_DATABASE_URL names one (CI does). The others (compatibility
# clients, docs, the web UI on its own stack's SQLite) would only run again unchanged.
DB_TESTS := backend kafka_control_logger model_inference/tests/test_backend.py \
	tests/test_secure_loop.py tests/test_training_job_backend.py

.PHONY: help install run stop status test test-python lint bench docs example clean api-types

help:
	@echo "make run    install what is missing, start the local stack, print its addresses"
	@echo "make stop   stop the local stack (services and broker)"
	@echo "make test   install what is missing and run the whole test suite"
	@echo "make lint   ruff and mypy"
	@echo "make bench  the benchmarks behind the documented figures"
	@echo "make docs   build the documentation site (strict) into .cache/site"
	@echo "make example NAME=digits   run examples/NAME.py against the running stack"
	@echo "make api-types  regenerate frontend/src/api/schema.d.ts from the backend's OpenAPI document"

$(INSTALLED): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "kafkaml needs Python 3.11"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -c requirements/constraints.txt --config-settings editable_mode=compat -e ".[$(EXTRAS)]"
	@touch $@

install: $(INSTALLED)
	@bash $(BROKER) fetch

run: install
	$(VENV)/bin/kafkaml local up

stop:
	@if [ -x $(VENV)/bin/kafkaml ]; then $(VENV)/bin/kafkaml local down; else bash $(BROKER) stop; fi

status:
	$(VENV)/bin/kafkaml local status

# pytest exits 5 when it collected nothing; make treats that, like any failure, as a failure.
# The database pass runs beside the whole suite, on a test broker of its own (the jobs of the
# two passes share ids, so never one broker; 19092 and its controller's 19093 are the other
# pass's); its output is kept in DB_LOG and printed after.
# The suite mostly waits on processes and brokers, so the two share the cores well; the
# suite's fault drills, whose checks are the most timing-sensitive, run last (conftest.py).
DB_LOG := .cache/test-database-pass.log
test: install
	@mkdir -p .cache; db=""; \
	if [ -n "$${KAFKAML_TEST_DATABASE_URL:-}" ]; then \
	  echo "== the database tests again, on $${KAFKAML_TEST_DATABASE_URL%%://*}, beside this run (log: $(DB_LOG))"; \
	  env -u KAFKAML_TEST_BOOTSTRAP KAFKAML_TEST_BROKER_PORT=$${KAFKAML_TEST_DB_BROKER_PORT:-19094} \
	    $(PY) -m pytest $(DB_TESTS) \
	    -m "not stack and not drill" -p no:cacheprovider $(PYTEST_ARGS) > $(DB_LOG) 2>&1 & db=$$!; \
	  trap 'kill $$db 2>/dev/null' INT TERM; \
	fi; \
	env -u KAFKAML_TEST_DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ -n "$$db" ]; then \
	  wait $$db; db_status=$$?; \
	  echo "== the database tests on $${KAFKAML_TEST_DATABASE_URL%%://*} (exit $$db_status)"; \
	  cat $(DB_LOG); \
	  if [ $$status -eq 0 ]; then status=$$db_status; fi; \
	fi; \
	exit $$status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m bench $(BENCH_ARGS)

docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

example: install
	$(PY) -m examples.$(NAME) $(EXAMPLE_ARGS)
# The web UI's TypeScript API types, from `manage.py spectacular` (tests/test_web_ui.py checks them).
api-types: install
	$(PY) -m kafkaml.frontend api-types

clean: stop
	rm -rf .cache
