# Set-up is automatic: every target below (re)creates the local venv .venv when pyproject.toml or
# the pinned constraints change. CPU-only: torch is pinned to the CPU build in requirements/ci.txt.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.ctflow-installed

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml requirements/ci.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements/ci.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

## demo: simulate sparse-angle scans of a phantom and reconstruct them (writes results/demo/)
demo: $(STAMP)
	$(VENV)/bin/ctflow demo --out results/demo

## test: the full test suite (what CI runs)
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

## bench: operator speed table (ctflow matrix / astra vs raw ASTRA vs ODL)
bench: $(STAMP)
	$(VENV)/bin/python benchmarks/operators.py

clean:
	rm -rf $(VENV) results .pytest_cache
