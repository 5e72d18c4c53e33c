# Two commands set up and test a fresh machine:  make install && make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch. On a CUDA machine run: make install TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test lint format bench demo clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/personalign --version

test:
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check src tests dataset_scripts examples bench
	$(BIN)/ruff format --check src tests dataset_scripts examples bench

format:
	$(BIN)/ruff check --fix src tests dataset_scripts examples bench
	$(BIN)/ruff format src tests dataset_scripts examples bench

bench:
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

demo:
	$(BIN)/personalign demo --output runs/demo --overwrite

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache runs
