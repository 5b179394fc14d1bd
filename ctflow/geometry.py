"""CT scan geometries: immutable values in physical units (millimetres, radians).

Conventions (shared by every operator, phantom and FBP in ctflow, and identical to ASTRA's):

* **Image.** An image has ``image_shape = (H, W)`` square pixels of side ``pixel_size`` mm, centred
  on the isocentre. Row 0 is at the top: pixel ``(i, j)`` has its centre at
  ``x = (j - (W-1)/2) * pixel_size`` and ``y = ((H-1)/2 - i) * pixel_size``.
* **Views.** For a view angle θ, let ``r(θ) = (sin θ, -cos θ)`` and ``û(θ) = (cos θ, sin θ)``.
  Detector element ``j`` sits at ``u_j = (j - (n-1)/2) * detector_spacing + detector_offset``
  along ``û``.
* **Parallel beam.** Rays travel along ``r(θ)``; element ``j`` measures the line through
  ``u_j · û(θ)``.
* **Fan beam.** The source is at ``a(θ) = D · (sin θ, -cos θ)`` with ``D = source_to_isocenter``.
  A *flat* detector is the line through ``-(S - D) · (sin θ, -cos θ)`` (``S =
  source_to_detector``) along ``û``, with elements at ``u_j``. A *curved* (equiangular,
  cylindrical) detector is the arc of radius ``S`` around the source; element ``j`` is at fan
  angle ``γ_j = u_j / S`` (``detector_spacing`` is the arc length between elements). ASTRA has no
  curved fan geometry, so :meth:`FanBeamGeometry.to_astra` describes it exactly as a
  ``fanflat_vec`` geometry with one single-element "view" per (view, element) pair, each element
  tangent to the arc (only the ``line`` projector supports that).

A sinogram has shape ``(n_angles, n_detectors)`` and holds line integrals of the image in
millimetres times the image's units (μ in 1/mm gives dimensionless line integrals).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Union

import numpy as np

from .files import write_text_atomic
from .errors import DetectorCoverageWarning, GeometryError

__all__ = [
    "FanBeamGeometry",
    "Geometry",
    "ParallelBeamGeometry",
    "geometry_from_dict",
    "list_geometries",
    "load_geometry",
]

_PRESET_PACKAGE = "ctflow.geometries"


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _positive_float(cls: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GeometryError(f"{cls}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise GeometryError(f"{cls}: {name} must be a positive finite number of millimetres, got {value!r}")
    return v


def _finite_float(cls: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GeometryError(f"{cls}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise GeometryError(f"{cls}: {name} must be finite, got {value!r}")
    return v


def _positive_int(cls: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise GeometryError(f"{cls}: {name} must be a positive integer, got {value!r}")
    if value < 1:
        raise GeometryError(f"{cls}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _image_shape(cls: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        shape = tuple(value)
    except TypeError:
        raise GeometryError(f"{cls}: image_shape must be an int or a pair (H, W), got {value!r}") from None
    if len(shape) != 2:
        raise GeometryError(f"{cls}: image_shape must be an int or a pair (H, W), got {value!r}")
    return (_positive_int(cls, "image_shape[0]", shape[0]), _positive_int(cls, "image_shape[1]", shape[1]))


def _angles(cls: str, value: Any, full_circle: float) -> tuple[float, ...]:
    """Accept a count (uniform over [0, full_circle)), a sequence/array/tensor of radians, or a
    dict spec ``{count, start_deg, stop_deg}`` (stop excluded) / ``{degrees: [...]}``."""
    if isinstance(value, dict):
        value = _angles_from_spec(cls, value, full_circle)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        n = int(value)
        if n < 1:
            raise GeometryError(f"{cls}: a geometry needs at least one projection angle, got {n}")
        return _uniform_angles(n, 0.0, math.degrees(full_circle))
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise GeometryError(f"{cls}: angles must be a count or a sequence of radians, got {value!r}") from None
    if arr.size == 0:
        raise GeometryError(f"{cls}: a geometry needs at least one projection angle, got an empty list")
    if not np.all(np.isfinite(arr)):
        raise GeometryError(f"{cls}: angles contain NaN or Inf")
    return tuple(float(a) for a in arr)


def _angles_from_spec(cls: str, spec: dict, full_circle: float) -> Any:
    if "degrees" in spec:
        return np.deg2rad(np.asarray(spec["degrees"], dtype=np.float64))
    if "radians" in spec:
        return spec["radians"]
    unknown = set(spec) - {"count", "start_deg", "stop_deg"}
    if unknown or "count" not in spec:
        raise GeometryError(
            f"{cls}: an angle spec is {{count, start_deg, stop_deg}} (stop excluded), "
            f"{{degrees: [...]}} or {{radians: [...]}}; got keys {sorted(spec)}"
        )
    n = _positive_int(cls, "angles.count", spec["count"])
    start = float(spec.get("start_deg", 0.0))
    stop = float(spec.get("stop_deg", math.degrees(full_circle)))
    if stop <= start:
        raise GeometryError(f"{cls}: angles.stop_deg must be larger than start_deg, got {spec}")
    return _uniform_angles(n, start, stop)


def _uniform_angles(n: int, start_deg: float, stop_deg: float) -> tuple[float, ...]:
    """``n`` angles over [start, stop) in radians, computed in degrees first so that sparse
    subsets of a preset (every k-th view) are bit-identical to the smaller preset."""
    deg = start_deg + np.arange(n, dtype=np.float64) * ((stop_deg - start_deg) / n)
    return tuple(float(a) for a in np.deg2rad(deg))


def _angle_summary(angles: tuple[float, ...]) -> str:
    a = np.degrees(np.asarray(angles))
    if len(a) == 1:
        return f"1 angle at {a[0]:.4g}°"
    return f"{len(a)} angles in [{a.min():.4g}°, {a.max():.4g}°]"


# --------------------------------------------------------------------------------------------
# shared behaviour
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# parallel beam
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# fan beam
# --------------------------------------------------------------------------------------------
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


Geometry = Union[ParallelBeamGeometry, FanBeamGeometry]
_TYPES: dict[str, type] = {"parallel": ParallelBeamGeometry, "fan": FanBeamGeometry}


def geometry_from_dict(d: dict, name: str | None = None) -> Geometry:
    """Build a geometry from :meth:`to_dict` output or a preset file's mapping.

    ``angles`` may be explicit radians, ``{count, start_deg, stop_deg}`` or ``{degrees: [...]}``.
    Unknown keys are errors (a typo must not silently fall back to a default).
    """
    if not isinstance(d, dict):
        raise GeometryError(f"a geometry description must be a mapping, got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in _TYPES:
        raise GeometryError(f"geometry 'type' must be one of {sorted(_TYPES)}, got {kind!r}")
    d.pop("description", None)
    cls = _TYPES[kind]
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - allowed
    if unknown:
        raise GeometryError(f"unknown {kind} geometry field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
    if missing:
        raise GeometryError(f"{kind} geometry is missing required field(s) {sorted(missing)}")
    if name is not None and d.get("name") is None:
        d["name"] = name
    return cls(**d)


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------
def _preset_dir():
    return resources.files(_PRESET_PACKAGE)


def _preset_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def _read_mapping(text: str, source: str) -> dict:
    import yaml

    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GeometryError(f"{source} is not valid YAML/JSON: {e}") from None
    if not isinstance(d, dict):
        raise GeometryError(f"{source} does not describe a geometry (expected a mapping with a 'type' key)")
    return d


def load_geometry(name_or_path: str | os.PathLike | Geometry) -> Geometry:
    """Load a geometry by preset name (``"parallel-64-sparse30"``) or from a YAML/JSON file.

    Presets ship with ctflow (``ctflow geometries`` lists them). A geometry object is returned as is.
    """
    if isinstance(name_or_path, (ParallelBeamGeometry, FanBeamGeometry)):
        return name_or_path
    s = os.fspath(name_or_path)
    p = Path(s)
    if p.suffix.lower() in (".yaml", ".yml", ".json") or p.exists():
        if not p.is_file():
            raise GeometryError(f"geometry file {p} does not exist")
        return geometry_from_dict(_read_mapping(p.read_text(encoding="utf-8"), str(p)), name=p.stem)
    names = _preset_names()
    if s not in names:
        close = difflib.get_close_matches(s, names, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise GeometryError(f"unknown geometry {s!r}.{hint} Run `ctflow geometries` to list the presets, or pass a .yaml/.json path.")
    text = (_preset_dir() / f"{s}.yaml").read_text(encoding="utf-8")
    return geometry_from_dict(_read_mapping(text, f"preset {s}"), name=s)


def list_geometries() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` of the shipped presets."""
    out = []
    for n in _preset_names():
        d = _read_mapping((_preset_dir() / f"{n}.yaml").read_text(encoding="utf-8"), n)
        out.append((n, str(d.get("description", ""))))
    return out
