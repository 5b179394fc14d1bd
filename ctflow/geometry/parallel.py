"""Parallel-beam geometry: rays along r(θ) = (sin θ, −cos θ); element j measures the line through u_j·û(θ)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from .base import _GeometryMixin
from .validation import _angles, _finite_float, _image_shape, _positive_float, _positive_int


@dataclasses.dataclass(frozen=True, repr=False)
class ParallelBeamGeometry(_GeometryMixin):
    """2D parallel-beam scan.

    Args:
        image_shape: ``(H, W)`` or an int for a square image.
        angles: view angles in radians, or a count ``n`` for ``n`` uniform angles over [0, π).
        n_detectors: detector elements; default covers the image diagonal.
        pixel_size: pixel side, mm.
        detector_spacing: element pitch, mm (default: ``pixel_size``).
        detector_offset: shift of the detector centre along the detector axis, mm.
        name: optional label (not part of equality).

    >>> g = ParallelBeamGeometry(64, 30)
    >>> g.sinogram_shape
    (30, 92)
    """

    kind: ClassVar[str] = "parallel"

    image_shape: tuple[int, int]
    angles: tuple[float, ...]
    n_detectors: int = None  # type: ignore[assignment]
    pixel_size: float = 1.0
    detector_spacing: float = None  # type: ignore[assignment]
    detector_offset: float = 0.0
    name: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        cls = type(self).__name__
        set_ = object.__setattr__
        set_(self, "image_shape", _image_shape(cls, self.image_shape))
        set_(self, "angles", _angles(cls, self.angles, math.pi))
        set_(self, "pixel_size", _positive_float(cls, "pixel_size", self.pixel_size))
        spacing = self.pixel_size if self.detector_spacing is None else self.detector_spacing
        set_(self, "detector_spacing", _positive_float(cls, "detector_spacing", spacing))
        set_(self, "detector_offset", _finite_float(cls, "detector_offset", self.detector_offset))
        n = self._detectors_needed() if self.n_detectors is None else self.n_detectors
        set_(self, "n_detectors", _positive_int(cls, "n_detectors", n))
        self._check_coverage(self.fov_radius)

    def _detectors_needed(self) -> int:
        return int(math.ceil(2 * (self.image_radius + abs(self.detector_offset)) / self.detector_spacing)) + 1

    @property
    def fov_radius(self) -> float:
        """Radius (mm) of the circle every view sees completely."""
        return self.n_detectors * self.detector_spacing / 2.0 - abs(self.detector_offset)

    def rays(self, u: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(points, directions)``, each ``(n_angles, n_u, 2)``: one point on each measured line
        (the element centre) and the unit ray direction. ``u`` overrides the detector coordinates
        (e.g. sub-element positions for supersampling)."""
        th = np.asarray(self.angles)[:, None]
        u = (self.detector_coordinates() if u is None else np.asarray(u, dtype=np.float64))[None, :]
        points = np.stack([u * np.cos(th), u * np.sin(th)], axis=-1)
        d = np.stack([np.sin(th), -np.cos(th)], axis=-1)
        return points, np.broadcast_to(d, points.shape).copy()

    def to_astra(self) -> tuple[dict, dict]:
        """``(vol_geom, proj_geom)`` for ASTRA: ``parallel``, or ``parallel_vec`` if offset."""
        import astra

        vol = self.astra_volume_geometry()
        angles = np.asarray(self.angles)
        if self.detector_offset == 0.0:
            return vol, astra.create_proj_geom("parallel", self.detector_spacing, self.n_detectors, angles)
        v = np.zeros((self.n_angles, 6))
        v[:, 0], v[:, 1] = np.sin(angles), -np.cos(angles)
        v[:, 2], v[:, 3] = self.detector_offset * np.cos(angles), self.detector_offset * np.sin(angles)
        v[:, 4], v[:, 5] = self.detector_spacing * np.cos(angles), self.detector_spacing * np.sin(angles)
        return vol, astra.create_proj_geom("parallel_vec", self.n_detectors, v)

    def __repr__(self) -> str:
        label = f"name={self.name!r}, " if self.name else ""
        return f"ParallelBeamGeometry({label}{self._repr_common()})"
