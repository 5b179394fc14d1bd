"""Shared test set-up: an isolated matrix cache, CPU threads, and the small geometries every
operator contract runs over."""

from __future__ import annotations

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
