"""Peak memory of one block of code: :class:`PeakMemory`, used by every solver call and the memory study.

* CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus what was allocated at the start.
* CPU on Linux: the peak resident set ``VmHWM`` after resetting it at the start (writing ``5`` to
  ``/proc/self/clear_refs``), minus the resident set at the start, so a call's figure is its own and
  not the process's lifetime high-water mark (``ru_maxrss``), which also inherits a parent's size.
* Elsewhere: ``ru_maxrss`` (the lifetime mark; ``kind`` says so).

Blocks may nest and overlap (a solver call inside the memory study's block, solver calls from several
threads): the peak mark is one per process (per CUDA device), so a block that resets it first folds the
peak reached so far into every block still open, and no open block loses its peak.
"""

from __future__ import annotations

import resource
import sys
import threading

import torch

__all__ = ["PeakMemory"]

#: the blocks open now, for folding a peak into them before a reset
_OPEN: list[PeakMemory] = []
_LOCK = threading.Lock()


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> int | None:
    """Reset this process's peak-RSS mark and return it (= the current RSS); None where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _vm_hwm()


def lifetime_peak_rss() -> int:
    """``ru_maxrss`` in bytes (kB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then

    * ``pm.baseline``: bytes in use when the block started (CUDA: allocated; CPU: the resident set after
      the reset; where the mark cannot be reset: the lifetime mark ``ru_maxrss`` at the start);
    * ``pm.peak``: the highest reading during the block (where the mark cannot be reset: the lifetime
      mark at the end, which may predate the block);
    * ``pm.bytes``: the block's peak above its start, ``peak − baseline`` (where the mark cannot be reset:
      the lifetime mark itself, an upper bound);
    * ``pm.kind``: ``cuda_max_allocated``, ``cpu_rss_peak`` or ``cpu_rss_high_water`` (the lifetime mark).
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.bytes = 0
        self.baseline = 0
        self.peak = 0
        self.kind = ""
        self._seen = 0  # the peak reached in this block before another block reset the mark

    def _shares_mark(self, other: PeakMemory) -> bool:
        if self.device.type == "cuda" or other.device.type == "cuda":
            return self.device.type == other.device.type and self._cuda_index() == other._cuda_index()
        return True  # one resident set per process

    def _cuda_index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def _read_peak(self) -> int | None:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return _vm_hwm() if self._resettable else None

    def __enter__(self) -> PeakMemory:
        with _LOCK:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._resettable = True
            for other in _OPEN:  # the mark is about to be reset: keep what the open blocks have reached
                if self._shares_mark(other) and (p := other._read_peak()) is not None:
                    other._seen = max(other._seen, p)
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
                self.baseline = int(torch.cuda.memory_allocated(self.device))
            else:
                base = reset_peak_rss()
                self._resettable = base is not None
                self.baseline = base if base is not None else lifetime_peak_rss()
            _OPEN.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _LOCK:
            _OPEN.remove(self)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                self.peak = max(self._seen, int(torch.cuda.max_memory_allocated(self.device)))
                self.bytes = self.peak - self.baseline
                self.kind = "cuda_max_allocated"
            elif self._resettable and (peak := _vm_hwm()) is not None:
                self.peak = max(self._seen, peak)
                self.bytes = max(0, self.peak - self.baseline)
                self.kind = "cpu_rss_peak"
            else:
                self.peak = lifetime_peak_rss()
                self.bytes = self.peak
                self.kind = "cpu_rss_high_water"
