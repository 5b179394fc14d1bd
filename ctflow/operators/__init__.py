"""Operators: the ray transform, its backends, and filtered back-projection."""

from .backends.astra import AstraBackend
from .backends.matrix import MatrixBackend
from .fbp import FILTERS, fbp, ramp_filter
from .ray_transform import AdjointRayTransform, InexactAdjointWarning, RayTransform

__all__ = [
    "FILTERS", "AdjointRayTransform", "AstraBackend", "InexactAdjointWarning", "MatrixBackend", "RayTransform", "fbp",
    "ramp_filter",
]
