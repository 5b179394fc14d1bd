# Set-up is automatic: every target below (re)creates the local venv .venv when pyproject.toml or
# the pinned constraints change. CPU-only: torch is pinned to the CPU build in requirements/ci.txt.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.ctflow-installed

.PHONY: demo test bench benchmark notebooks venv clean

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
	$(VENV)/bin/python tools/bench_operators.py

## benchmark: regenerate the README's results tables and plots into results/benchmark (≈ 35 min, 1 thread);
## then `$(VENV)/bin/python tools/benchmark_readme.py results/benchmark --readme README.md` puts them in the README
benchmark: $(STAMP)
	CTFLOW_GIT_COMMIT=$$($(VENV)/bin/python tools/git_commit.py) $(VENV)/bin/ctflow benchmark --out results/benchmark

## notebooks: execute the six study notebooks with their full settings into results/notebooks/
notebooks: $(STAMP)
	$(VENV)/bin/python notebooks/execute.py --out results/notebooks

clean:
	rm -rf $(VENV) results .pytest_cache
