# `make quickstart` and `make test` set up a virtual environment in .venv if there is none.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart

.PHONY: quickstart test test-slow lint setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/keras-nmt quickstart --run-dir $(RUN_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Every Python file of the repository; pyproject.toml's [tool.ruff] excludes the virtualenv.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf runs build *.egg-info .pytest_cache

BENCH ?= all
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py --part $(BENCH) $(if $(JSON),--json $(JSON)) $(if $(MODEL),--model $(MODEL)) $(foreach o,$(SET),--set $(o)) $(if $(PROGRESS),--progress) $(foreach m,$(ENSEMBLE),--ensemble $(m)) $(if $(PAIRS),--pairs $(PAIRS)) $(if $(STEPS),--steps $(STEPS))
