# lorasearch — `make test` and `make demo` install what they need first.
# Before anything else on a fresh machine: pip install torch==2.13.0 (the local CPU wheel).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export LORASEARCH_DATA ?= $(abspath ../shared/data)

.PHONY: install test test-fast demo bench bench-quick lint format services

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || { echo "torch is not installed: run 'pip install torch==2.13.0' first (see README)"; exit 1; }
	$(PIP) install -q -e ".[test,model]"

# One pytest-xdist worker per core (tests/conftest.py splits torch's threads between them): the
# subprocess, browser and PostgreSQL tests wait while the other worker computes.
test: install
	$(PYTHON) -m pytest -q -n auto

# What the service tests need (CI runs it): Debian's chromium for the UI browser test, and a local
# PostgreSQL on 127.0.0.1 for the many-workers test. Idempotent; needs root (apt, su postgres).
services:
	bash tests/services.sh

test-fast: install
	$(PYTHON) -m pytest -q -n auto -m "not real"

demo: install
	lorasearch train --task sst2 --data $(LORASEARCH_DATA)/sst2 --variant lora --rank 8 --steps 300

# The benchmark suite (bench/): writes BENCHMARKS.md. CPU budget: under 45 min; quick: under 5.
bench: install
	$(PYTHON) bench/run_all.py

bench-quick: install
	$(PYTHON) bench/run_all.py --quick --output BENCHMARKS-quick.md

lint: install
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format . && $(PYTHON) -m ruff check --fix .
