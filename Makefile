# The two commands a new user needs: `make demo` (install + run the pipeline on demo data) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint install ui bench

demo: install
	$(BIN)/dvc repro
	@echo "Done: metrics in data/evaluation/metrics.json, report in data/evaluation/report/report.html, registry in registry/"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0   # the CPU build; never torchvision
	$(BIN)/python -m pip install --quiet -e '.[dev,mlflow]'   # mlflow: so the mirror test runs too
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	for module in $(basename $(notdir $(wildcard bench/bench_*.py))); do $(BIN)/python -m bench.$$module || exit 1; done

ui: install
	$(BIN)/radflow server
