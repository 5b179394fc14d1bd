"""Simulated scans: a phantom or an image file → a (noisy) sinogram with its geometry.

Ellipse phantoms (``shepp-logan``, ``ellipses``) are projected *analytically* (exact line integrals,
no inverse crime); pixel images (``abdomen``, image files) are projected with :class:`RayTransform`.
DICOM images are converted from HU to attenuation μ (1/mm, :func:`ctflow.units.hu_to_mu`) so the
sinogram holds dimensionless line integrals; other images keep their units.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError, GeometryError
from .geometry import Geometry, load_geometry
from .physics.noise import GaussianNoise, PoissonNoise
from .operators import RayTransform
from .physics.phantoms import analytic_sinogram, ellipses_image, random_ellipses, shepp_logan_ellipses

PHANTOMS = ("shepp-logan", "ellipses", "abdomen")


@dataclasses.dataclass(frozen=True)
class SimulatedScan:
    """A simulated measurement: ``sinogram`` float32 (n_angles, n_det), the ``truth`` image on the
    geometry's grid, the ``geometry``, and ``noise`` metadata (what was added, with the seed)."""

    sinogram: np.ndarray
    truth: np.ndarray
    geometry: Geometry
    noise: dict
    source: str


def with_views(geometry: Geometry, n_views: int) -> Geometry:
    """The geometry with ``n_views`` uniform views over its kind's full range ([0, π) / [0, 2π))."""
    if n_views < 1:
        raise GeometryError(f"the number of views must be ≥ 1, got {n_views}")
    return geometry.replace(angles=int(n_views))


def load_image(path: str | os.PathLike, image_shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Read an image file (DICOM → μ in 1/mm; .npy; .png/.jpg → [0, 1]; ctflow .h5 reconstruction)
    and resample it to ``image_shape`` if needed. Returns ``(image, description)``."""
    p = Path(path)
    if not p.exists():
        raise DataError("image file does not exist", str(p))
    suffix = p.suffix.lower()
    if suffix in (".dcm", "") or p.is_dir():
        from .io import read_dicom_image, read_dicom_series

        ct = read_dicom_series(p) if p.is_dir() else read_dicom_image(p)
        img = ct.mu if ct.mu.ndim == 2 else ct.mu[ct.mu.shape[0] // 2]
        desc = f"DICOM {p.name} (HU → μ)"
    elif suffix == ".npy":
        from .io.arrays import read_npy

        img = read_npy(p, what="image")
        desc = f"array {p.name}"
    elif suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        from PIL import Image

        with Image.open(p) as im:
            img = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        desc = f"picture {p.name} (gray / 255)"
    elif suffix in (".h5", ".hdf5"):
        from .io.hdf5 import read_image_h5

        img = read_image_h5(p).image
        desc = f"HDF5 {p.name}"
    else:
        raise DataError(f"unsupported image file type {suffix!r}; use .dcm, .npy, .png or .h5", str(p))
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise DataError(f"expected a 2D image, got shape {img.shape}", str(p))
    if not np.all(np.isfinite(img)):
        raise DataError(f"the image contains {int((~np.isfinite(img)).sum())} NaN/Inf value(s)", str(p))
    if img.shape != tuple(image_shape):
        warnings.warn(f"resampling {p.name} from {img.shape} to the geometry's {tuple(image_shape)}", stacklevel=2)
        t = torch.from_numpy(img)[None, None]
        img = torch.nn.functional.interpolate(t, size=tuple(image_shape), mode="bilinear", antialias=True)[0, 0].numpy()
    return img, desc


def simulate_scan(
    geometry: Geometry | str,
    phantom: str = "shepp-logan",
    *,
    n_views: int | None = None,
    gaussian: float | None = None,
    poisson_I0: float | None = None,
    mu_scale: float = 1.0,
    seed: int = 0,
) -> SimulatedScan:
    """Simulate a scan of ``phantom`` (a name in :data:`PHANTOMS` or an image path) on ``geometry``.

    ``gaussian`` adds relative Gaussian noise (σ = gaussian · max|y|); ``poisson_I0`` applies
    Beer–Lambert counting noise with ``I0`` photons and ``mu_scale`` (see :mod:`ctflow.physics.noise`).
    The phantom seed (ellipses, abdomen) and the noise seed are both ``seed``.
    """
    g = load_geometry(geometry)
    if n_views is not None:
        g = with_views(g, n_views)
    h, w = g.image_shape
    radius = min(h, w) * g.pixel_size / 2.0
    if phantom in ("shepp-logan", "ellipses"):
        ells = shepp_logan_ellipses(radius) if phantom == "shepp-logan" else random_ellipses(seed, 0.95 * radius)
        truth = ellipses_image(ells, g.image_shape, g.pixel_size).numpy()
        y = analytic_sinogram(ells, g, detector_supersample=2)
        source = f"{phantom} (analytic line integrals)"
    elif phantom == "abdomen":
        from .data.abdomen import abdomen_slice

        if h != w:
            raise GeometryError("the abdomen phantom needs a square image; choose a geometry with H == W")
        truth = abdomen_slice(seed, size=h).astype(np.float32)
        y = RayTransform(g)(torch.from_numpy(truth)).numpy()
        source = "procedural abdomen phantom (window L40/W400 → [0, 1]; projected with RayTransform)"
    else:
        truth, desc = load_image(phantom, g.image_shape)
        y = RayTransform(g)(torch.from_numpy(truth)).numpy()
        source = f"{desc}; projected with RayTransform"
    y = np.asarray(y, dtype=np.float32)
    noise: dict[str, Any] = {"model": "none", "seed": seed}
    if gaussian is not None and poisson_I0 is not None:
        raise ValueError("choose Gaussian or Poisson noise, not both")
    if gaussian is not None:
        y = GaussianNoise(relative_sigma=gaussian)(y, seed=seed)
        noise = {"model": "gaussian", "relative_sigma": gaussian, "seed": seed}
    elif poisson_I0 is not None:
        y = PoissonNoise(I0=poisson_I0, mu_scale=mu_scale)(y, seed=seed)
        noise = {"model": "poisson", "I0": poisson_I0, "mu_scale": mu_scale, "seed": seed}
    if not math.isfinite(float(np.abs(y).max())):
        raise DataError("the simulated sinogram is not finite")
    return SimulatedScan(y.astype(np.float32), truth.astype(np.float32), g, noise, source)
