# Set-up is automatic: every target below (re)creates the local venv .venv when pyproject.toml or
# the pinned constraints change. requirements/ci.txt pins torch==2.13.0; which build that is depends on the
# index: PyPI's Linux wheel is the CUDA build (~2.5 GB of NVIDIA libraries). TORCH_INDEX picks the index for
# torch alone, e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu` for the CPU-only build
# (empty: pip's configured index, which on the CI machines serves the CPU build).
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.ctflow-installed
TORCH_INDEX ?=

.PHONY: demo test bench benchmark notebooks gpu-check venv clean fuzz

$(STAMP): pyproject.toml requirements/ci.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(VENV)/bin/python -m pip install --quiet --index-url $(TORCH_INDEX) "torch==$$(sed -n 's/^torch==//p' requirements/ci.txt)")
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

## gpu-check: CUDA tests + operator/memory benchmarks on CUDA + 3-minute training throughput (≈ 7 min on a GPU;
## summary in $OUT/gpu_check/ or results/gpu_check/); says "skipped" and succeeds without a GPU
gpu-check: $(STAMP)
	tools/gpu_check.sh

## notebooks: execute the six study notebooks with their full settings into results/notebooks/
notebooks: $(STAMP)
	$(VENV)/bin/python notebooks/execute.py --out results/notebooks

## fuzz: ≥ 10,000 mutated files through every reader (hangs, memory, non-ctflow errors); the README's reliability table
fuzz: $(STAMP)
	$(VENV)/bin/python tools/fuzz.py --cases 10400

clean:
	rm -rf $(VENV) results .pytest_cache
