# The two commands a new user needs: `make demo` (install + run the pipeline on demo data) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint install ui bench pacs-server

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

# RADFLOW_REQUIRE_REAL=1: a test whose requirement (Orthanc, the MLflow extra) is missing fails, never skips
# (tests/required.py); CI sets CI=true, which does the same.
test: lint pacs-server
	RADFLOW_REQUIRE_REAL=1 $(BIN)/pytest $(PYTEST_ARGS)

# The PACS tests run against a real Orthanc (Debian: orthanc + orthanc-dicomweb). Installed here when missing
# and running as root; where it cannot be, this target fails (so does `make test`: a skipped PACS test would
# read as a pass). The packaged service is left stopped: the tests start their own server on loopback only.
pacs-server:
	@if command -v Orthanc >/dev/null && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Orthanc for the PACS tests (apt-get install orthanc orthanc-dicomweb)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null; } \
			|| { echo "ERROR: installing Orthanc failed; the PACS tests need it (make test-fast skips them)"; exit 1; }; \
		systemctl disable --now orthanc 2>/dev/null || service orthanc stop 2>/dev/null || true; \
	else echo "ERROR: Orthanc is not installed, and installing it needs root and apt-get:" \
		"apt-get install orthanc orthanc-dicomweb (make test-fast skips the PACS tests)"; exit 1; fi

# The inner loop: may skip the PACS / MLflow tests where those are missing, with a NOT TESTED banner.
test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

bench: install pacs-server
	for module in $(basename $(notdir $(wildcard bench/bench_*.py))); do $(BIN)/python -m bench.$$module || exit 1; done

ui: install
	$(BIN)/radflow server
