"""Projector backends behind :class:`ctflow.RayTransform`: ASTRA (CPU and CUDA) and ASTRA's explicit
sparse system matrix applied by torch (exact adjoint on any device)."""

from .astra import DEFAULT_PROJECTOR, AstraBackend, astra_projector_type
from .matrix import MatrixBackend

__all__ = ["DEFAULT_PROJECTOR", "AstraBackend", "MatrixBackend", "astra_projector_type"]
