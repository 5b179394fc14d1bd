"""ctflow: sparse-angle CT reconstruction with flow-matching priors.

Floors, imports running only down: :mod:`ctflow.geometry` → :mod:`ctflow.operators` (ray transform,
FBP) → :mod:`ctflow.priors` → :mod:`ctflow.solvers` → :mod:`ctflow.io` and the CLI. The names below
are the stable API; they are imported on first use, so ``import ctflow.io`` (reading a DICOM file)
does not load torch's solvers and priors.
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import CTFlowError, GeometryError, NonFiniteError, ShapeError

# public name -> module that defines it
_LAZY = {
    "metrics": "ctflow.metrics",
    "noise": "ctflow.physics.noise",
    "phantoms": "ctflow.physics.phantoms",
    "FanBeamGeometry": "ctflow.geometry",
    "ParallelBeamGeometry": "ctflow.geometry",
    "geometry_from_dict": "ctflow.geometry",
    "list_geometries": "ctflow.geometry",
    "load_geometry": "ctflow.geometry",
    "RayTransform": "ctflow.operators",
    "fbp": "ctflow.operators",
    "load_prior": "ctflow.priors",
    "Reconstruction": "ctflow.solvers",
    "get_solver": "ctflow.solvers",
    "list_methods": "ctflow.solvers",
    "reconstruct": "ctflow.solvers",
}

__all__ = ["CTFlowError", "GeometryError", "NonFiniteError", "ShapeError", "__version__", "clear_caches", *_LAZY]


def clear_caches() -> None:
    """Free the in-memory caches: FBP's projection operators and the solvers' pseudo-inverses."""
    from .operators.fbp import _parallel_operator
    from .solvers.linalg import clear_pinv_cache

    _parallel_operator.cache_clear()
    clear_pinv_cache()


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ctflow' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
