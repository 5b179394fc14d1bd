"""Property-based reliability tests (hypothesis): mutated files for every reader give either a clean, finite
result or a ctflow error that names the file, within the memory limit, never another exception.

The seeds and mutations are those of ``tools/fuzz.py`` (``make fuzz`` runs ≥ 10,000 such cases in a worker
process that also catches hangs); here each reader gets a few dozen deterministic cases in-process, with
``max_array_bytes`` lowered to 16 MiB and Python-level allocations traced.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import random
import shutil
import sys
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctflow.limits import limits

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 16 << 20


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("ctflow_tools_fuzz", ROOT / "tools" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


fuzz = _load_fuzz()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzz.make_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


def _check_case(reader: str, seeds: dict, seed: int) -> tuple[str, str]:
    case = Path(tempfile.mkdtemp(prefix="ctflow-rel-"))
    try:
        path, how = fuzz.make_case(reader, seeds, random.Random(seed), case)
        result = error = None
        faulthandler.dump_traceback_later(120, exit=True)  # a hang in C code must not stall the suite
        tracemalloc.start()
        try:
            with warnings.catch_warnings(), limits(max_array_bytes=LIMIT):
                warnings.simplefilter("ignore")
                result = fuzz.call_reader(reader, path)
        except Exception as e:  # noqa: BLE001 (judged below)
            error = e
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            faulthandler.cancel_dump_traceback_later()
        outcome, detail = fuzz.judge(reader, path, case, result, error)
        assert not (case / fuzz.CANARY).exists(), f"{how}: a payload executed code"
        assert peak <= LIMIT + (8 << 20), f"{how}: traced allocations peaked at {peak / 2**20:.0f} MiB"
        return outcome, f"{how}: {detail}"
    finally:
        shutil.rmtree(case, ignore_errors=True)


_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("reader", fuzz.READERS)
@_SETTINGS
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_files_give_clean_data_or_a_ctflow_error_naming_the_file(seeds, reader, seed):
    outcome, detail = _check_case(reader, seeds, seed)
    assert outcome in ("clean", "ctflow error"), f"[{reader}] {outcome}: {detail}"


@pytest.mark.parametrize("reader", ["h5_sinogram", "dicom_image", "npz_train"])
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutator=st.sampled_from(sorted(fuzz.BYTE_MUTATORS)), seed=st.integers(0, 2**16))
def test_each_byte_mutator(seeds, reader, mutator, seed):
    """Every byte-level mutation kind on its own (truncation, zeroed blocks, length fields, ...)."""
    src = seeds[reader][0]
    case = Path(tempfile.mkdtemp(prefix="ctflow-rel-"))
    try:
        data, how = fuzz.mutate_bytes(src.read_bytes(), random.Random(seed), mutator)
        path = case / src.name
        path.write_bytes(data)
        result = error = None
        try:
            with warnings.catch_warnings(), limits(max_array_bytes=LIMIT):
                warnings.simplefilter("ignore")
                result = fuzz.call_reader(reader, path)
        except Exception as e:  # noqa: BLE001
            error = e
        outcome, detail = fuzz.judge(reader, path, case, result, error)
        assert outcome in ("clean", "ctflow error"), f"[{reader}] {how}: {outcome}: {detail}"
    finally:
        shutil.rmtree(case, ignore_errors=True)
