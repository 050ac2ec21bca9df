# Entry points: `make run` (quickstart), `make test` (what CI runs), `make test-fast`. All create .venv on first use.
PYTHON ?= python3
# The tested torch. Here it resolves to the CPU wheel on disk; elsewhere to your platform's
# standard build. Override it: `make test TORCH="torch==2.13.0 --index-url https://..."`.
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
# No hub look-ups: models resolve offline-first (local folder, HF cache, packaged copies).
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Two pytest-xdist workers (CI has 2 cores); loadgroup keeps the tests that share a trained run on one
# worker (tests/conftest.py groups them). `make test XDIST=` runs in one process.
XDIST ?= -n 2 --dist loadgroup

.PHONY: run test test-fast lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned, so the project install never pulls another build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: $(VENV)/.installed
	$(OFFLINE) $(BIN)/recfit train

test: $(VENV)/.installed-dev
	$(OFFLINE) $(BIN)/python -m pytest $(XDIST)

# The quick loop while developing: everything not marked slow.
test-fast: $(VENV)/.installed-dev
	$(OFFLINE) $(BIN)/python -m pytest $(XDIST) -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
