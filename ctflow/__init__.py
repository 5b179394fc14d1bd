"""ctflow: sparse-angle CT reconstruction with flow-matching priors.

Floors: :mod:`ctflow.geometry` → :mod:`ctflow.operators` (ray transform, FBP) → priors → solvers →
I/O and CLI. The names below are the stable API.
"""

from . import metrics, noise, phantoms
from .errors import CTFlowError, GeometryError, NonFiniteError, ShapeError
from .geometry import FanBeamGeometry, ParallelBeamGeometry, geometry_from_dict, list_geometries, load_geometry
from .operators import RayTransform, fbp
from .priors import load_prior
from .solvers import Reconstruction, get_solver, list_methods, reconstruct

__version__ = "0.1.0"

__all__ = [
    "CTFlowError",
    "FanBeamGeometry",
    "GeometryError",
    "NonFiniteError",
    "ParallelBeamGeometry",
    "RayTransform",
    "Reconstruction",
    "ShapeError",
    "fbp",
    "geometry_from_dict",
    "get_solver",
    "list_methods",
    "load_prior",
    "list_geometries",
    "load_geometry",
    "metrics",
    "noise",
    "phantoms",
    "reconstruct",
]
