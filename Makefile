# The two commands of the README. Each creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: tour test test-fast lint bench golden clean docs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.tour-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[tour]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $@ $(VENV)/.tour-installed

$(VENV)/.docs-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

## Build the docs site into build/site: executes the notebooks once (build/docs-executed/), then
## a strict build (warnings are errors). View it with `python -m http.server -d build/site`.
docs: $(VENV)/.docs-installed
	$(PY) docs/_scripts/execute_notebooks.py
	JAXOPT_PAPERS_DOCS_REQUIRE_OUTPUTS=1 NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

## Run the tour (jaxopt_papers/tour/): each area against what a user would use instead.
tour: $(VENV)/.tour-installed
	$(PY) -m jaxopt_papers

## Run the whole test suite (lint, unit, golden, 8-device, notebooks) on CPU.
test: $(VENV)/.test-installed
	$(PY) -m ruff check jaxopt_papers tests benchmarks
	$(PY) -m ruff format --check jaxopt_papers tests benchmarks
	$(PY) -m pytest -n 2 --durations=15

## The inner loop: everything but the notebooks, the 8-device run and the benchmark/tour runs.
test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -n 2 -q --ignore=tests/test_notebooks.py --ignore=tests/test_multidevice.py \
		--ignore=tests/test_benchmarks_and_tour.py --ignore=tests/test_accelerator.py \
		--ignore=tests/test_docs.py --ignore=tests/test_packaging.py $(ARGS)

lint: $(VENV)/.test-installed
	$(PY) -m ruff check jaxopt_papers tests benchmarks
	$(PY) -m ruff format --check jaxopt_papers tests benchmarks

## Benchmarks (full size); add ARGS=--quick for a CI-sized run.
bench: $(VENV)/.test-installed
	$(PY) benchmarks/optimizers.py $(ARGS)
	$(PY) benchmarks/implicit.py $(ARGS)
	$(PY) benchmarks/ot.py $(ARGS)
	$(PY) benchmarks/linear.py $(ARGS)

## Regenerate golden trajectories (needs the oracle extra: torch + torch-optimizer + pytorch-optimizer).
golden: $(VENV)/.test-installed
	$(PY) -m pip install --quiet -e ".[oracle]"
	$(PY) tests/golden/make_golden.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
