"""`ctflow.peak_memory.PeakMemory`, the one peak-memory mechanism (solver calls and the memory study):
its reported baseline and peak, and blocks that nest (the memory study's block around a solver call's own)
or overlap (solver calls from two threads) without losing a peak to the other block's reset."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ctflow.peak_memory import PeakMemory

MIB = 2**20


def _touch(mib: int) -> float:
    a = np.ones(mib * MIB // 8)  # written, so the pages are resident
    return float(a.sum())


@pytest.fixture
def resettable():
    with PeakMemory() as pm:
        pass
    if pm.kind != "cpu_rss_peak":
        pytest.skip(f"the peak RSS cannot be reset here ({pm.kind})")


def test_baseline_peak_and_bytes(resettable):
    with PeakMemory() as pm:
        _touch(200)
    assert pm.kind == "cpu_rss_peak" and pm.baseline > 0
    assert pm.bytes == pm.peak - pm.baseline >= 150 * MIB


def test_nested_block_keeps_the_outer_peak(resettable):
    """The inner block resets the process's mark; the outer block's earlier 300 MiB must survive that."""
    with PeakMemory() as outer:
        _touch(300)  # freed again before the inner block starts
        with PeakMemory() as inner:
            _touch(1)
    assert inner.bytes < 100 * MIB
    assert outer.bytes >= 250 * MIB


def test_overlapping_blocks_in_two_threads(resettable):
    """Block A touches 300 MiB, then block B opens in another thread (resetting the mark) while A is open."""
    touched, b_open = threading.Event(), threading.Event()
    out = {}

    def a():
        with PeakMemory() as pm:
            _touch(300)
            touched.set()
            b_open.wait(30)
        out["a"] = pm

    def b():
        touched.wait(30)
        with PeakMemory() as pm:
            b_open.set()
        out["b"] = pm

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out["a"].bytes >= 250 * MIB and out["b"].bytes < 100 * MIB
