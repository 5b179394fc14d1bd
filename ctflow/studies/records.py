"""What a ``ctflow benchmark`` run records about itself in ``run.json``: the machine, the versions, the
prior's weights, the command line and the times (the seeds are in the configuration beside them).

The source revision is not probed here (an installed package has no checkout to ask): ``git_commit`` is
``$CTFLOW_GIT_COMMIT`` when set — ``make benchmark`` sets it from ``python tools/git_commit.py`` — and
null otherwise.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

GIT_COMMIT_ENV = "CTFLOW_GIT_COMMIT"


def environment(cfg) -> dict:
    """Machine, versions and load at the start of a run (``cfg``: the run's ``BenchmarkConfig``)."""
    import astra
    import torch

    from .._version import __version__

    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    versions = {"ctflow": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "astra-toolbox": getattr(astra, "__version__", "?")}
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {"platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "memory_gib": _memory_gib(), "load_average_at_start": load,
            "gpu": gpu, "versions": versions, "git_commit": os.environ.get(GIT_COMMIT_ENV) or None}


def _cpu_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def prior_record(name: str, prior) -> dict:
    """The prior's image size and the first 16 hex digits of its weights' SHA-256."""
    from ..priors import prior_folder

    weights = prior_folder(name) / "prior.safetensors"
    return {"image_size": prior.image_size, "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}


def command_line() -> str:
    """This process's command line as a user would type it (``ctflow …`` or ``python path …``)."""
    argv = sys.argv[1:]
    prog = "ctflow" if Path(sys.argv[0]).name in ("ctflow", "__main__.py") else f"python {Path(sys.argv[0]).as_posix()}"
    return " ".join([prog] + argv)


def now() -> str:
    """UTC time to the second, ISO 8601."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def jsonable(d):
    """``d`` with tuples as lists and anything else JSON cannot hold as its ``str``."""
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def write_text(path: Path, text: str) -> None:
    from ..files import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
