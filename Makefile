# amlproxy: `make demo` and `make test` are all a fresh clone needs.
PY ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= build/demo
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-all test-lowest lint bench bench-check clean model help

help:
	@echo "make demo       score the bundled census-income sample with the local model"
	@echo "make test       run the default test suite (creates $(VENV) when missing)"
	@echo "make test-slow  run the suites marked slow"
	@echo "make test-lowest  the unit tests on the lowest allowed runtime dependencies"
	@echo "make lint       ruff + mypy --strict on amlproxy/"
	@echo "make bench      run the benchmarks in bench/ (amlproxy against its peers)"
	@echo "make bench-check  fail when a figure of the last make bench misses its target"
	@echo "make model      retrain the bundled model (needs ../shared/data/census-income)"

$(BIN)/python:
	@test -n "$(PY)" || { echo "amlproxy needs Python 3.11 or newer: set PY=/path/to/python3.11"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The local extra (moto's server) too: after `make demo`, `amlproxy local up` works.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	@rm -f $(DEMO_OUT)/amlproxy.db
	$(BIN)/amlproxy score examples/census-income-sample.csv \
		--out $(DEMO_OUT)/predictions.csv \
		--rejects $(DEMO_OUT)/rejects.jsonl \
		--sink sqlite:$(DEMO_OUT)/amlproxy.db
	@echo
	@echo "first predictions ($(DEMO_OUT)/predictions.csv):"
	@head -n 4 $(DEMO_OUT)/predictions.csv
	@echo "rejects, with their line numbers and reasons ($(DEMO_OUT)/rejects.jsonl):"
	@$(BIN)/python -c 'import json, sys; [print("  line %4d: %s" % (r["line"], "; ".join(r["reasons"]))) for r in map(json.loads, open(sys.argv[1]))]' $(DEMO_OUT)/rejects.jsonl

test: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.dev
	$(BIN)/python -m pytest -m slow --durations=15 $(PYTEST_ARGS)

test-all: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A separate venv with the lowest version of every runtime dependency that pyproject.toml
# allows (uv's lowest-direct resolution), then the unit tests.
test-lowest: $(VENV)/.dev
	rm -rf $(VENV)-lowest
	$(BIN)/uv venv --quiet --python $(BIN)/python $(VENV)-lowest
	$(BIN)/uv pip install --quiet --python $(VENV)-lowest/bin/python \
		--resolution lowest-direct -e '.[test]'
	$(VENV)-lowest/bin/python -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check amlproxy tests bench
	$(BIN)/mypy --strict amlproxy

bench: $(VENV)/.dev
	$(BIN)/python bench/run.py

bench-check: $(VENV)/.dev
	$(BIN)/python bench/run.py --check

model: $(VENV)/.dev
	$(BIN)/python -m amlproxy.localmodel.train

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
