r"""From sinograms of μ (clinical line integrals) to the flow priors' window units, and back.

Flow priors work in *window units* ``w`` (``[0, 1]`` = HU L40/W400, :mod:`ctflow.units`); clinical
data (DICOM-CT-PD, ``fan-512-clinical`` simulations) are line integrals of the attenuation μ (1/mm).
Per pixel the two are affine, :math:`μ = a\,w_\text{lin} + b` (:func:`ctflow.units.window_affine`:
``a`` = 0.00768, ``b`` = 0.016128 mm⁻¹), so on an image grid :math:`Ω` with ray transform ``A``

.. math:: y_μ = A μ = a\,A w_\text{lin} + b\,A\mathbf 1_Ω
          \quad\Longrightarrow\quad A w_\text{lin} = (y_μ - b\,A\mathbf 1_Ω)/a .

The window's offset enters as :math:`b\,A\mathbf 1_Ω` (:func:`constant_projection`). But a prior
knows only the **clipped** image :math:`w = \operatorname{clip}(w_\text{lin}, 0, 1)`: air is
:math:`w_\text{lin} ≈ -2.1`, gas and lung below 0, bone above 1. Clipping is not invertible, so the
bridge *estimates* the out-of-window part. Written with :math:`m = μ/a`,

.. math:: y_w = y_μ/a - A_e\,c(\hat m), \qquad c(m) = m - \operatorname{clip}(m - b/a,\ 0,\ 1),

where :math:`\hat m` is a reconstruction of the μ data (in units of ``a``) on an *estimation grid*
``estimate_scale`` times finer than the prior's, :math:`A_e` its ray transform, and :math:`c` is the
part of the image the window does not show: 0 in air, ``b/a`` in soft tissue, :math:`m - 1`
in bone, :math:`m` in gas and at the partial-volume edge of the body (so :math:`c` carries the body
outline, not the window image). For the exact :math:`m` on a grid fine enough for the data, the
identity :math:`y_w = A\,w` holds; the approximation is the error of :math:`\hat m` where the image
leaves the window. Two things make it small: :math:`c` is flat (``b/a``) wherever the image is inside
the window, so errors there vanish; and the estimation grid is finer than the prior's (default 2×),
because the body outline carries 2.1 + w window units of contrast and a coarse grid's discretisation
error of that edge, amplified 7× against the window sinogram, was the largest term in our
measurements (10 % at the prior's 64² grid with the *exact* coarse image, 3.4 % at 128²).
:func:`window_bridge` takes the estimate as a callable (the solvers pass TV,
:mod:`ctflow.solvers.units_bridge`); the built-in ``"fbp"`` (Hann) is fast but, for sparse views,
several times worse (streaks in the air become :math:`c`). The result maps back to μ as
:math:`a\,(w + \hat r) + b` with :math:`\hat r = c(\hat m) - b/a` pooled to the prior's grid (the
estimate where the image leaves the window, the flow reconstruction inside it).
``tests/test_units_bridge.py`` measures the error on simulated fan-beam scans of HU phantoms.

The grid is the prior's size and **covers the field of view** (the circle every view sees):
square pixels of side :math:`2 r_\text{FOV}/N`, so the whole scanned cross-section is on the
grid; its corners lie outside the FOV (seen by some views only), which is expected here and
not warned about.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..errors import DetectorCoverageWarning, GeometryError
from ..geometry import Geometry, load_geometry
from ..units import MU_WATER, WINDOW_LEVEL, WINDOW_WIDTH, window_affine
from .fbp import fbp
from .ray_transform import RayTransform

__all__ = ["WindowBridge", "constant_projection", "fov_grid", "outside_window", "window_bridge"]


def fov_grid(geometry: Geometry, size: int | tuple[int, int]) -> Geometry:
    """``geometry`` on a ``size``² grid (or ``(H, W)``) of square pixels that covers its field of view:
    pixel side ``2·r_FOV / max(H, W)``. Detector, angles and distances are unchanged."""
    geometry = load_geometry(geometry)
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    fov = float(geometry.fov_radius)
    if not fov > 0:
        raise GeometryError("the detector sees no field of view around the isocentre; cannot place an image grid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DetectorCoverageWarning)  # the corners beyond the FOV, by design
        return geometry.replace(image_shape=(h, w), pixel_size=2.0 * fov / max(h, w))


def constant_projection(op: RayTransform, value: float = 1.0, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r""":math:`A(c\,\mathbf 1_Ω)`: the sinogram ``(n_angles, n_detectors)`` of the constant image ``value``
    on the operator's grid (the term an affine change of image units adds to a sinogram)."""
    ones = torch.full(op.domain_shape, float(value), dtype=dtype, device=device)
    with torch.no_grad():
        return op(ones)


@dataclasses.dataclass
class WindowBridge:
    r"""A μ-sinogram expressed in window units on a grid of the prior's size (see the module docstring).

    ``geometry``/``operator``: the FOV-covering grid; ``sinogram``: :math:`y_w` in the layout of the
    input; ``slope``/``offset``: ``a``, ``b`` of :math:`μ = a w + b`; ``outside``: :math:`\hat r`, the
    estimated out-of-window part (window units, the layout of the images reconstructed from ``sinogram``).
    """

    geometry: Geometry
    operator: RayTransform
    sinogram: torch.Tensor
    slope: float
    offset: float
    outside: torch.Tensor

    def to_mu_image(self, w: torch.Tensor) -> torch.Tensor:
        r"""Window-unit reconstruction → μ (1/mm): :math:`a\,(w + \hat r) + b`."""
        r = self.outside.to(device=w.device, dtype=w.dtype)
        return self.slope * (w + r) + self.offset  # r has the image layout; samples broadcast over it

    def to_window_image(self, mu: torch.Tensor) -> torch.Tensor:
        r"""μ image on this grid → window units (clipped part removed): :math:`(μ - b)/a - \hat r`."""
        r = self.outside.to(device=mu.device, dtype=mu.dtype)
        return (mu - self.offset) / self.slope - r

    def to_mu(self, rec: Any) -> Any:
        """Map a :class:`~ctflow.Reconstruction` made from :attr:`sinogram` back to μ in place (image,
        samples: :meth:`to_mu_image`; std: times ``a``) and tag it ``rec.units = "mu"``,
        ``rec.geometry`` = this grid, ``rec.options["units"] = "mu"``."""
        rec.image = self.to_mu_image(rec.image)
        if getattr(rec, "samples", None) is not None:
            rec.samples = self.to_mu_image(rec.samples)
        if getattr(rec, "std", None) is not None:
            rec.std = rec.std * self.slope
        rec.units = "mu"
        rec.geometry = self.geometry
        if isinstance(getattr(rec, "options", None), dict):
            rec.options = {**rec.options, "units": "mu", "image_geometry": self.geometry.to_dict()}
        return rec


def outside_window(m: torch.Tensor, b_over_a: float) -> torch.Tensor:
    r""":math:`c(m) = m - \operatorname{clip}(m - b/a, 0, 1)` for :math:`m = μ/a` (negative μ clamped to 0):
    the part of an image (in units of ``a``) that the window does not show."""
    m = m.clamp_min(0.0)
    return m - (m - b_over_a).clamp(0.0, 1.0)


def window_bridge(
    sinogram: Any,
    geometry: Geometry | str,
    image_size: int | tuple[int, int],
    *,
    estimate: str | Callable[[torch.Tensor, Geometry], torch.Tensor] | None = "fbp",
    estimate_scale: int = 2,
    mu_water: float = MU_WATER,
    level: float = WINDOW_LEVEL,
    width: float = WINDOW_WIDTH,
    operator: RayTransform | None = None,
) -> WindowBridge:
    r"""Express ``sinogram`` (line integrals of μ, ``(..., n_angles, n_detectors)``, numpy or torch)
    acquired with ``geometry`` in the window units of a prior of ``image_size`` pixels, on the grid
    :func:`fov_grid` returns.

    ``estimate``: how to reconstruct :math:`m = μ/a` on the estimation grid (``estimate_scale`` × the
    prior's size): ``"fbp"`` (Hann), a callable ``f(y_over_a, grid_geometry) → image`` (e.g. a TV
    solve), or ``None`` to drop the out-of-window term (only to measure what it buys). ``operator``: a
    :class:`RayTransform` on the prior's grid to reuse.
    """
    geometry = load_geometry(geometry)
    grid = fov_grid(geometry, image_size)
    if operator is None:
        operator = RayTransform(grid)
    elif operator.geometry != grid:
        raise GeometryError("window_bridge: the operator passed is not on the FOV-covering grid of the prior's size")
    y = torch.as_tensor(sinogram)
    if not y.is_floating_point():
        y = y.float()
    a, b = window_affine(mu_water, level, width)
    k = int(estimate_scale)
    if k < 1:
        raise ValueError(f"estimate_scale must be a positive integer, got {estimate_scale!r}")
    h, w = grid.image_shape
    y_m = y / a
    with torch.no_grad():
        if estimate is None:
            c_grid = torch.full((*y.shape[:-2], h, w), b / a, dtype=y.dtype, device=y.device)
            y_w = y_m - operator(c_grid)
        else:
            egrid = grid if k == 1 else fov_grid(geometry, (h * k, w * k))
            eop = operator if k == 1 else RayTransform(egrid)
            if estimate == "fbp":
                m_hat = fbp(y_m, egrid, filter="hann", operator=eop)
            elif callable(estimate):
                m_hat = torch.as_tensor(estimate(y_m, egrid)).to(device=y.device, dtype=y.dtype)
            else:
                raise ValueError(f"estimate must be 'fbp', a callable or None, got {estimate!r}")
            m_hat = m_hat.reshape(*y.shape[:-2], h * k, w * k)
            c = outside_window(m_hat, b / a)
            y_w = y_m - eop(c)
            c_grid = c if k == 1 else torch.nn.functional.avg_pool2d(c.reshape(-1, 1, h * k, w * k), k).reshape(*y.shape[:-2], h, w)
    return WindowBridge(grid, operator, y_w, a, b, c_grid - b / a)
