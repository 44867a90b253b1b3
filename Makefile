# Two entry points: `make demo` and `make test`. Both build .venv from scratch when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: demo test lint bench clean

$(BIN)/marketcast: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(BIN)/marketcast
	$(PIP) -e ".[dev]"
	touch $@

demo: $(BIN)/marketcast
	$(BIN)/marketcast run

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# One torch thread per xdist worker: two CPU-heavy workers on two cores would otherwise
# oversubscribe each other several-fold.
test: lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests

bench: $(BIN)/marketcast
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs
