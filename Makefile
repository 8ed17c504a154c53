# The two commands a new user needs are `make sandbox` and `make test`; both
# install what they need first (a virtualenv from pyproject.toml, and the
# control-plane binaries built from controlplane/ into a cache outside the repo).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: sandbox test unit integration lint binaries bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

binaries: $(STAMP)
	$(BIN)/python -m delegated_aws.devenv.build

sandbox: binaries
	$(BIN)/delegated-aws sandbox

test: binaries
	$(BIN)/pytest -p no:cacheprovider tests

unit: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/unit

integration: binaries
	$(BIN)/pytest -p no:cacheprovider tests/integration

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: binaries
	$(BIN)/python -m delegated_aws.devenv.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
