"""Peak memory of one block of code: :class:`PeakMemory`, used by every solver call and the memory study.

* CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus what was allocated at the start.
* CPU on Linux: the peak resident set ``VmHWM`` after resetting it at the start (writing ``5`` to
  ``/proc/self/clear_refs``), minus the resident set at the start, so a call's figure is its own and
  not the process's lifetime high-water mark (``ru_maxrss``), which also inherits a parent's size.
* Elsewhere: ``ru_maxrss`` (the lifetime mark; ``kind`` says so).
"""

from __future__ import annotations

import resource
import sys

import torch


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
    """``with PeakMemory(device) as pm: ...`` then ``pm.bytes`` (peak above the start) and ``pm.kind``
    (``cuda_max_allocated``, ``cpu_rss_peak`` or ``cpu_rss_high_water``)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.bytes = 0
        self.kind = ""

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = reset_peak_rss()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device) - self._base)
            self.kind = "cuda_max_allocated"
        elif self._base is not None and (peak := _vm_hwm()) is not None:
            self.bytes = max(0, peak - self._base)
            self.kind = "cpu_rss_peak"
        else:
            self.bytes = lifetime_peak_rss()
            self.kind = "cpu_rss_high_water"
