# Every target does its own set-up: a virtual environment in .venv with the project installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint types schemas dist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: the example repository, SQLite, the service and 200 simulated agents, two weeks
# in about five minutes on a 2-core machine.
demo: $(STAMP)
	$(BIN)/patchctl demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy controller
	$(BIN)/mypy patchctl_agent

schemas: $(STAMP)
	$(BIN)/patchctl schema export schemas

check: lint types test
	$(BIN)/patchctl schema export --check schemas
	$(BIN)/patchctl validate --repo .

# The release step: the wheel and the sdist in dist/ (what PATCHCTL_PACKAGE of the CI examples
# and docs/deployment.md install).
dist: $(STAMP)
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
