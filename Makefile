# boardsync - `make` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint typecheck size layers check bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install boardsync with its dev tools

demo: $(STAMP) ## Sync today's whole simulated market (1,031 boards) into SQLite, about a minute
	$(BIN)/boardsync --log-level WARNING sync --sim today --force --db sqlite:///data/demo.db

test: $(STAMP) ## Run the test suite (PostgreSQL tests need BOARDSYNC_TEST_PG_URL or skip)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff
	$(BIN)/ruff check backend tests bench

typecheck: $(STAMP) ## mypy (disallow_untyped_defs) on backend/
	$(BIN)/mypy

size: ## Fail on a module over 400 lines or a function over 60 under backend/
	$(PY) tools/check_size.py backend

layers: ## Fail when a module imports one above it in the data flow (docs/ARCHITECTURE.md)
	$(PY) tools/check_layers.py

check: test lint typecheck size layers ## Tests, ruff, mypy, the size and layer checkers

bench: $(STAMP) ## Run the benchmarks under bench/
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## Remove the virtualenv, caches and demo data
	rm -rf $(VENV) build *.egg-info backend/*.egg-info .pytest_cache .ruff_cache data/demo*
