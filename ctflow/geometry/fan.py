"""Fan-beam geometry: flat or curved (equiangular) detector, source at D·(sin θ, −cos θ)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from ..errors import GeometryError
from .base import _GeometryMixin
from .validation import _angles, _finite_float, _image_shape, _positive_float, _positive_int


@dataclasses.dataclass(frozen=True, repr=False)
class FanBeamGeometry(_GeometryMixin):
    """2D fan-beam scan with a flat or curved (equiangular) detector.

    Args:
        image_shape: ``(H, W)`` or an int.
        angles: source angles in radians, or a count ``n`` for ``n`` uniform angles over [0, 2π).
        source_to_isocenter: D, mm.
        source_to_detector: S, mm (> D).
        n_detectors: detector elements; default covers the image's circumscribed circle.
        pixel_size: mm.
        detector_spacing: element pitch at the detector, mm (arc length for ``curved``); default
            is ``pixel_size · S / D`` (one pixel per element at the isocentre).
        detector_shape: ``"flat"`` or ``"curved"`` (cylindrical arc centred on the source).
        detector_offset: shift of the detector centre, mm at the detector (arc length if curved),
            e.g. a quarter-element offset.
        name: optional label.
    """

    kind: ClassVar[str] = "fan"

    image_shape: tuple[int, int]
    angles: tuple[float, ...]
    source_to_isocenter: float
    source_to_detector: float
    n_detectors: int = None  # type: ignore[assignment]
    pixel_size: float = 1.0
    detector_spacing: float = None  # type: ignore[assignment]
    detector_shape: str = "flat"
    detector_offset: float = 0.0
    name: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        cls = type(self).__name__
        set_ = object.__setattr__
        set_(self, "image_shape", _image_shape(cls, self.image_shape))
        set_(self, "angles", _angles(cls, self.angles, 2 * math.pi))
        set_(self, "pixel_size", _positive_float(cls, "pixel_size", self.pixel_size))
        set_(self, "source_to_isocenter", _positive_float(cls, "source_to_isocenter", self.source_to_isocenter))
        set_(self, "source_to_detector", _positive_float(cls, "source_to_detector", self.source_to_detector))
        if self.source_to_detector <= self.source_to_isocenter:
            raise GeometryError(
                f"{cls}: source_to_detector ({self.source_to_detector:g} mm) must exceed "
                f"source_to_isocenter ({self.source_to_isocenter:g} mm): the detector sits behind the isocentre"
            )
        if self.source_to_isocenter <= self.image_radius:
            raise GeometryError(
                f"{cls}: the source ({self.source_to_isocenter:g} mm from the isocentre) lies inside the "
                f"image, whose corners are {self.image_radius:.4g} mm away; increase source_to_isocenter "
                f"or use a smaller image/pixel_size"
            )
        if self.detector_shape not in ("flat", "curved"):
            raise GeometryError(f"{cls}: detector_shape must be 'flat' or 'curved', got {self.detector_shape!r}")
        spacing = self.pixel_size * self.magnification if self.detector_spacing is None else self.detector_spacing
        set_(self, "detector_spacing", _positive_float(cls, "detector_spacing", spacing))
        set_(self, "detector_offset", _finite_float(cls, "detector_offset", self.detector_offset))
        n = self._detectors_needed() if self.n_detectors is None else self.n_detectors
        set_(self, "n_detectors", _positive_int(cls, "n_detectors", n))
        if self.detector_shape == "curved" and self._half_fan_angle() >= math.pi / 2:
            raise GeometryError(f"{cls}: the curved detector spans a fan of ≥ 180°; reduce n_detectors or spacing")
        self._check_coverage(self.fov_radius)

    @property
    def magnification(self) -> float:
        """S / D: detector distances divided by isocentre distances."""
        return self.source_to_detector / self.source_to_isocenter

    @property
    def origin_to_detector(self) -> float:
        return self.source_to_detector - self.source_to_isocenter

    def _half_fan_angle(self) -> float:
        u_max = self.n_detectors * self.detector_spacing / 2.0 - abs(self.detector_offset)
        if self.detector_shape == "curved":
            return u_max / self.source_to_detector
        return math.atan2(u_max, self.source_to_detector)

    def _detectors_needed(self) -> int:
        gamma = math.asin(min(1.0, self.image_radius / self.source_to_isocenter))
        half = self.source_to_detector * (gamma if self.detector_shape == "curved" else math.tan(gamma))
        return int(math.ceil(2 * (half + abs(self.detector_offset)) / self.detector_spacing)) + 1

    @property
    def fov_radius(self) -> float:
        """Radius (mm) of the circle every view sees completely."""
        return self.source_to_isocenter * math.sin(max(0.0, self._half_fan_angle()))

    def fan_angles(self) -> np.ndarray:
        """Fan angle γ_j of each element's ray relative to the central ray (radians)."""
        u = self.detector_coordinates()
        if self.detector_shape == "curved":
            return u / self.source_to_detector
        return np.arctan2(u, self.source_to_detector)

    def source_positions(self) -> np.ndarray:
        """``(n_angles, 2)`` source positions, mm."""
        th = np.asarray(self.angles)
        return self.source_to_isocenter * np.stack([np.sin(th), -np.cos(th)], axis=-1)

    def detector_positions(self, u: np.ndarray | None = None) -> np.ndarray:
        """``(n_angles, n_u, 2)`` element centres, mm (``u`` overrides the detector coordinates)."""
        th = np.asarray(self.angles)[:, None]
        src_dir = np.stack([np.sin(th), -np.cos(th)], axis=-1)  # isocentre → source
        uhat = np.stack([np.cos(th), np.sin(th)], axis=-1)
        a = self.source_to_isocenter * src_dir
        u = (self.detector_coordinates() if u is None else np.asarray(u, dtype=np.float64))[None, :, None]
        if self.detector_shape == "flat":
            return -self.origin_to_detector * src_dir + u * uhat
        g = u / self.source_to_detector
        S = self.source_to_detector
        return a + S * (np.cos(g) * (-src_dir) + np.sin(g) * uhat)

    def rays(self, u: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(points, directions)``, each ``(n_angles, n_u, 2)``: the source and the unit
        direction from the source to each element centre (``u`` overrides the coordinates)."""
        det = self.detector_positions(u)
        src = np.broadcast_to(self.source_positions()[:, None, :], det.shape)
        d = det - src
        return src.copy(), d / np.linalg.norm(d, axis=-1, keepdims=True)

    @property
    def astra_supports_plain_fanflat(self) -> bool:
        return self.detector_shape == "flat" and self.detector_offset == 0.0

    def to_astra(self) -> tuple[dict, dict]:
        """``(vol_geom, proj_geom)``: ``fanflat`` when possible, else ``fanflat_vec``.

        For a curved detector the ``fanflat_vec`` geometry has ``n_angles · n_detectors`` views of
        one element each (view-major), so ASTRA's sinogram reshapes to ``(n_angles, n_detectors)``.
        """
        import astra

        vol = self.astra_volume_geometry()
        th = np.asarray(self.angles)
        if self.astra_supports_plain_fanflat:
            pg = astra.create_proj_geom(
                "fanflat", self.detector_spacing, self.n_detectors, th, self.source_to_isocenter, self.origin_to_detector
            )
            return vol, pg
        src = self.source_positions()
        if self.detector_shape == "flat":
            v = np.zeros((self.n_angles, 6))
            v[:, 0:2] = src
            v[:, 2:4] = -self.origin_to_detector * src / self.source_to_isocenter
            v[:, 2] += self.detector_offset * np.cos(th)
            v[:, 3] += self.detector_offset * np.sin(th)
            v[:, 4], v[:, 5] = self.detector_spacing * np.cos(th), self.detector_spacing * np.sin(th)
            return vol, astra.create_proj_geom("fanflat_vec", self.n_detectors, v)
        det = self.detector_positions()  # (A, N, 2)
        g = self.fan_angles()[None, :, None]
        src_dir = (src / self.source_to_isocenter)[:, None, :]
        uhat = np.stack([np.cos(th), np.sin(th)], axis=-1)[:, None, :]
        tangent = np.sin(g) * src_dir + np.cos(g) * uhat  # d/dγ of the arc point direction
        v = np.concatenate(
            [np.broadcast_to(src[:, None, :], det.shape), det, self.detector_spacing * tangent], axis=-1
        ).reshape(-1, 6)
        return vol, astra.create_proj_geom("fanflat_vec", 1, v)

    def __repr__(self) -> str:
        label = f"name={self.name!r}, " if self.name else ""
        return (
            f"FanBeamGeometry({label}{self._repr_common()}, source_to_isocenter={self.source_to_isocenter:g} mm, "
            f"source_to_detector={self.source_to_detector:g} mm, detector_shape={self.detector_shape!r})"
        )
