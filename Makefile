# The two commands of the README: `make demo` and `make test`. Each works on a fresh machine with
# Python 3.11, node and npm: it creates the virtualenv, installs the package and the local
# Kinesis/DynamoDB emulators (kinesalite + dynalite, into .emulators/), then runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EMULATORS := .emulators
PYTEST_ARGS ?=

.PHONY: install emulators lint typecheck docs unit integration test demo benchmarks clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP) emulators

emulators: $(STAMP)
	$(BIN)/kinesis-actors local --install --emulators-dir $(EMULATORS)

lint: $(STAMP)
	$(BIN)/ruff check kinesis_actors tests integration examples benchmarks docs
	$(BIN)/ruff format --check kinesis_actors tests integration examples benchmarks docs

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs built: docs/_build/html/index.html"

unit: $(STAMP)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

integration: install
	$(BIN)/python -m pytest integration $(PYTEST_ARGS)

test: install lint typecheck docs
	$(BIN)/python -m pytest tests integration $(PYTEST_ARGS)

demo: install
	$(BIN)/kinesis-actors reliability run --local --messages 100000 --rate 2500 --shards 2 --consumers 2

# Every benchmark runs, even after one that missed its target (exit code 1) or failed; the
# last line names those.
benchmarks: install
	@missed=""; for bench in benchmarks/[!_]*.py; do \
		echo "== $$bench"; $(BIN)/python $$bench || missed="$$missed $$bench"; \
	done; \
	if [ -n "$$missed" ]; then echo "missed a target or failed:$$missed"; exit 1; fi

clean:
	rm -rf $(VENV) $(EMULATORS) build dist *.egg-info docs/_build
