"""Shared test set-up: an isolated matrix cache, CPU threads, and the small geometries every
operator contract runs over."""

from __future__ import annotations

import ctypes
import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    old = os.environ.get("CTFLOW_CACHE_DIR")
    os.environ["CTFLOW_CACHE_DIR"] = str(tmp_path_factory.mktemp("ctflow-cache"))
    torch.set_num_threads(2)
    yield
    if old is None:
        os.environ.pop("CTFLOW_CACHE_DIR", None)
    else:
        os.environ["CTFLOW_CACHE_DIR"] = old


def _openblas_thread_setters() -> list[tuple]:
    """(get, set) pairs of every loaded OpenBLAS (numpy's and scipy's); empty where none is found."""
    pairs = []
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.rsplit("/", 1)[-1].lower()}
        for path in sorted(libs):
            lib = ctypes.CDLL(path)
            for suffix in ("", "64_"):
                for prefix in ("scipy_openblas", "openblas"):
                    get, put = f"{prefix}_get_num_threads{suffix}", f"{prefix}_set_num_threads{suffix}"
                    if hasattr(lib, get) and hasattr(lib, put):
                        pairs.append((getattr(lib, get), getattr(lib, put)))
    except OSError:
        pass
    return pairs


@pytest.fixture(scope="module")
def one_thread():
    """One torch and one OpenBLAS thread for a module of tiny problems (on a busy machine a second
    thread makes each small op 10–30× slower); the previous counts are restored afterwards.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    blas = [(get(), put) for get, put in _openblas_thread_setters()]
    for _, put in blas:
        put(1)
    yield
    torch.set_num_threads(n)
    for old, put in blas:
        put(old)
