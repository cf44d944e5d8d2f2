# The two commands: `make run` starts the whole product, `make test` runs every check.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

deps: $(STAMP)

run:
	scripts/ensure-system-packages.sh run
	$(MAKE) --no-print-directory deps
	$(BIN)/wapi run

test:
	scripts/ensure-system-packages.sh test
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory lint typecheck pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the package layers and the import-free workflows (pyproject.toml)

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest $(PYTEST_ARGS)

bench:
	scripts/ensure-system-packages.sh bench
	$(MAKE) --no-print-directory deps
	for script in bench/[!_]*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
