"""Operators: the ray transform, its backends, and filtered back-projection."""

from .astra_backend import AstraBackend
from .fbp import FILTERS, fbp, ramp_filter
from .matrix_backend import MatrixBackend
from .ray_transform import AdjointRayTransform, RayTransform

__all__ = ["FILTERS", "AdjointRayTransform", "AstraBackend", "MatrixBackend", "RayTransform", "fbp", "ramp_filter"]
