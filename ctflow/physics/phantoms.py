r"""Ellipse phantoms with exact (analytic) sinograms: Shepp–Logan, disks, seeded random ellipses.

An ellipse with centre c, semi-axes (a, b), rotation φ and value ρ adds ρ inside. Its line integral
along the line p + t·d (|d| = 1) is the chord length times ρ: mapping the line into the ellipse's
unit-circle frame (q = S⁻¹R(−φ)(p − c), e = S⁻¹R(−φ)d, S = diag(a, b)) and solving
|q + t e|² = 1 gives

.. math:: \int = ρ\,\frac{2\sqrt{\max(0, (q·e)^2 - |e|^2(|q|^2 - 1))}}{|e|^2}.

That closed form is independent of any discretisation, so it is the oracle for the projectors
(:func:`analytic_sinogram`) and for FBP. Coordinates are in mm with the conventions of
:mod:`ctflow.geometry` (x to the right, y up, row 0 at the top).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..geometry import Geometry, load_geometry

__all__ = [
    "Ellipse",
    "analytic_sinogram",
    "disk",
    "ellipses_image",
    "random_ellipses",
    "shepp_logan",
    "shepp_logan_ellipses",
]


@dataclasses.dataclass(frozen=True)
class Ellipse:
    """An ellipse that adds ``value`` inside: semi-axes ``a`` (along its x) and ``b`` (mm), centre
    ``(x0, y0)`` mm, rotated counter-clockwise by ``phi`` radians."""

    value: float
    a: float
    b: float
    x0: float = 0.0
    y0: float = 0.0
    phi: float = 0.0

    def scaled(self, factor: float) -> Ellipse:
        return Ellipse(self.value, self.a * factor, self.b * factor, self.x0 * factor, self.y0 * factor, self.phi)


# Shepp & Logan (1974) in normalised coordinates: (a, b, x0, y0, φ in degrees); values below.
_SL_SHAPES = [
    (0.69, 0.92, 0.0, 0.0, 0.0),
    (0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (0.1100, 0.3100, 0.22, 0.0, -18.0),
    (0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.0230, 0.0460, 0.06, -0.605, 0.0),
]
_SL_VALUES = [2.0, -0.98, -0.02, -0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
_SL_MODIFIED_VALUES = [1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]  # Toft's higher contrast


def shepp_logan_ellipses(radius: float, modified: bool = True) -> list[Ellipse]:
    """The 10 Shepp–Logan ellipses scaled so that normalised coordinate 1 is ``radius`` mm."""
    values = _SL_MODIFIED_VALUES if modified else _SL_VALUES
    return [
        Ellipse(v, a * radius, b * radius, x * radius, y * radius, math.radians(p))
        for v, (a, b, x, y, p) in zip(values, _SL_SHAPES)
    ]


def disk(radius: float, value: float = 1.0, center: tuple[float, float] = (0.0, 0.0)) -> list[Ellipse]:
    """A single disk (as a one-ellipse phantom)."""
    return [Ellipse(value, radius, radius, center[0], center[1], 0.0)]


def random_ellipses(
    seed: int,
    radius: float,
    n_ellipses: int = 8,
    value_range: tuple[float, float] = (0.1, 0.6),
) -> list[Ellipse]:
    """A seeded random phantom: a body ellipse (value 1) inside ``radius`` plus ``n_ellipses`` smaller
    ellipses with values in ``value_range`` (randomly signed), all inside the body."""
    rng = np.random.default_rng(seed)
    body = Ellipse(1.0, radius * rng.uniform(0.75, 0.95), radius * rng.uniform(0.6, 0.9), 0.0, 0.0, rng.uniform(0, np.pi))
    out = [body]
    inner = 0.55 * min(body.a, body.b)
    for _ in range(n_ellipses):
        r = inner * math.sqrt(rng.uniform()) * 0.8
        t = rng.uniform(0, 2 * np.pi)
        size = inner * rng.uniform(0.08, 0.35)
        v = rng.uniform(*value_range) * rng.choice([-1.0, 1.0])
        out.append(Ellipse(float(v), size * rng.uniform(0.5, 1.0), size, r * math.cos(t), r * math.sin(t), rng.uniform(0, np.pi)))
    return out


def _to_unit_frame(e: Ellipse, px: np.ndarray, py: np.ndarray):
    c, s = math.cos(e.phi), math.sin(e.phi)
    dx, dy = px - e.x0, py - e.y0
    return (c * dx + s * dy) / e.a, (-s * dx + c * dy) / e.b


def ellipses_image(
    ellipses: Sequence[Ellipse],
    image_shape: int | tuple[int, int],
    pixel_size: float = 1.0,
    supersample: int = 4,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Rasterise ellipses on the image grid, averaging ``supersample²`` points per pixel."""
    h, w = (image_shape, image_shape) if isinstance(image_shape, int) else image_shape
    s = int(supersample)
    xs = (np.arange(w * s) - (w * s - 1) / 2.0) * (pixel_size / s)
    ys = ((h * s - 1) / 2.0 - np.arange(h * s)) * (pixel_size / s)
    X, Y = np.meshgrid(xs, ys)
    img = np.zeros_like(X)
    for e in ellipses:
        u, v = _to_unit_frame(e, X, Y)
        img += e.value * (u * u + v * v <= 1.0)
    img = img.reshape(h, s, w, s).mean(axis=(1, 3))
    return torch.from_numpy(img).to(dtype)


def _image_grid(geometry_or_shape, pixel_size):
    if isinstance(geometry_or_shape, (int, tuple, list)):
        shape = (geometry_or_shape,) * 2 if isinstance(geometry_or_shape, int) else tuple(geometry_or_shape)
        return shape, 1.0 if pixel_size is None else pixel_size
    g = load_geometry(geometry_or_shape)
    return g.image_shape, g.pixel_size if pixel_size is None else pixel_size


def shepp_logan(
    geometry_or_shape: Geometry | str | int | tuple[int, int] = 256,
    modified: bool = True,
    pixel_size: float | None = None,
    supersample: int = 4,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The (modified) Shepp–Logan phantom filling the image (outer ellipse height = 0.92 × half-height)."""
    shape, px = _image_grid(geometry_or_shape, pixel_size)
    radius = min(shape) * px / 2.0
    return ellipses_image(shepp_logan_ellipses(radius, modified), shape, px, supersample, dtype)


def analytic_sinogram(
    ellipses: Sequence[Ellipse],
    geometry: Geometry | str,
    detector_supersample: int = 1,
) -> np.ndarray:
    """Exact line integrals ``(n_angles, n_detectors)`` (float64) of ellipses for a geometry.

    With ``detector_supersample = k`` each element is the mean over ``k`` rays spread evenly across
    its width (a model of the finite element, as the ``strip`` projector has).
    """
    g = load_geometry(geometry)
    k = int(detector_supersample)
    u = g.detector_coordinates()
    if k > 1:
        offsets = ((np.arange(k) + 0.5) / k - 0.5) * g.detector_spacing
        u = (u[:, None] + offsets[None, :]).ravel()
    points, dirs = g.rays(u)
    total = np.zeros(points.shape[:-1])
    for e in ellipses:
        qx, qy = _to_unit_frame(e, points[..., 0], points[..., 1])
        c, s = math.cos(e.phi), math.sin(e.phi)
        ex = (c * dirs[..., 0] + s * dirs[..., 1]) / e.a
        ey = (-s * dirs[..., 0] + c * dirs[..., 1]) / e.b
        A = ex * ex + ey * ey
        B = qx * ex + qy * ey
        C = qx * qx + qy * qy - 1.0
        disc = np.maximum(B * B - A * C, 0.0)
        total += e.value * 2.0 * np.sqrt(disc) / A
    if k > 1:
        total = total.reshape(g.n_angles, g.n_detectors, k).mean(axis=-1)
    return total
