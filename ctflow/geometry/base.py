"""What every geometry has: serialisation, fingerprint, detector coverage, angle weights (:class:`_GeometryMixin`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import DetectorCoverageWarning, GeometryError
from ..files import write_text_atomic
from .validation import _angle_summary, _positive_int


class _GeometryMixin:
    """Methods shared by both geometry classes (the dataclasses hold the fields)."""

    kind: ClassVar[str]
    image_shape: tuple[int, int]
    angles: tuple[float, ...]
    n_detectors: int
    pixel_size: float
    detector_spacing: float
    detector_offset: float
    name: str | None

    # ---- derived quantities --------------------------------------------------------------
    @property
    def n_angles(self) -> int:
        """Number of projection views."""
        return len(self.angles)

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        """``(n_angles, n_detectors)``."""
        return (self.n_angles, self.n_detectors)

    @property
    def image_half_extent(self) -> tuple[float, float]:
        """Half-widths ``(y, x)`` of the image square in mm."""
        h, w = self.image_shape
        return (h * self.pixel_size / 2.0, w * self.pixel_size / 2.0)

    @property
    def image_radius(self) -> float:
        """Distance from the isocentre to the image corners, mm."""
        hy, hx = self.image_half_extent
        return math.hypot(hy, hx)

    @property
    def angular_coverage(self) -> float:
        """Sum of the angular weights Δθ_i used by FBP (≈ the scanned arc, radians)."""
        return float(np.sum(angle_weights(self.angles)))

    def detector_coordinates(self) -> np.ndarray:
        """Detector element centres ``u_j`` along the detector axis (mm, arc length if curved)."""
        n = self.n_detectors
        return (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * self.detector_spacing + self.detector_offset

    def pixel_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` arrays of shape ``image_shape`` with the pixel centres in mm."""
        h, w = self.image_shape
        x = (np.arange(w, dtype=np.float64) - (w - 1) / 2.0) * self.pixel_size
        y = ((h - 1) / 2.0 - np.arange(h, dtype=np.float64)) * self.pixel_size
        return np.meshgrid(x, y)

    def astra_volume_geometry(self) -> dict:
        """ASTRA ``vol_geom`` with the physical window (mm)."""
        import astra

        h, w = self.image_shape
        hy, hx = self.image_half_extent
        return astra.create_vol_geom(h, w, -hx, hx, -hy, hy)

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain-JSON description (explicit angles in radians); inverse of :func:`geometry_from_dict`."""
        d: dict[str, Any] = {"type": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name == "name" and v is None:
                continue
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the geometry to ``.json`` or ``.yaml``/``.yml`` (atomically)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            text = self.to_json(indent=1)
        elif path.suffix.lower() in (".yaml", ".yml"):
            text = self.to_yaml()
        else:
            raise GeometryError(f"cannot save a geometry to {path}: use a .json, .yaml or .yml file name")
        return write_text_atomic(path, text)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of every physical field (the name is not part of it)."""
        d = self.to_dict()
        d.pop("name", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def replace(self, **changes: Any):
        """A copy with some fields changed (geometries are immutable)."""
        if "name" not in changes:
            changes["name"] = None
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def subsample_views(self, step: int, offset: int = 0):
        """Every ``step``-th view starting at ``offset``: a sparse-view subset of this scan."""
        step = _positive_int(type(self).__name__, "step", step)
        angles = self.angles[offset::step]
        if not angles:
            raise GeometryError(f"subsample_views(step={step}, offset={offset}) leaves no view out of {self.n_angles}")
        return self.replace(angles=angles)

    def _check_coverage(self, covered_radius: float) -> None:
        if covered_radius + 1e-9 < self.image_radius:
            warnings.warn(
                f"{type(self).__name__}: the detector covers a circle of radius {covered_radius:.4g} mm "
                f"at the isocentre but the image corners are at {self.image_radius:.4g} mm, so some "
                f"projections are truncated. Use more or wider detector elements (n_detectors="
                f"{self._detectors_needed()} would cover the image) or a smaller image.",
                DetectorCoverageWarning,
                stacklevel=4,
            )

    def _repr_common(self) -> str:
        h, w = self.image_shape
        s = f"image_shape=({h}, {w}), pixel_size={self.pixel_size:g} mm, {_angle_summary(self.angles)}"
        s += f", n_detectors={self.n_detectors}, detector_spacing={self.detector_spacing:g} mm"
        if self.detector_offset:
            s += f", detector_offset={self.detector_offset:g} mm"
        return s


def angle_weights(angles: Sequence[float]) -> np.ndarray:
    """Quadrature weights Δθ_i for integrating over the view angle (midpoint rule).

    Each view gets half the gap to each neighbour in sorted order; the two end views get the gap
    to their single neighbour, so uniform angles all get the same weight and
    ``sum(Δθ) = n · Δθ`` (e.g. exactly π for ``n`` angles over [0, π)).
    """
    a = np.asarray(angles, dtype=np.float64)
    if a.size == 1:
        return np.array([math.pi])
    order = np.argsort(a)
    s = a[order]
    gaps = np.diff(s)
    w = np.empty_like(s)
    w[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w[0] = gaps[0]
    w[-1] = gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out
