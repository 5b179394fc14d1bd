r"""``reconstruct(..., units="mu")``: flow methods on sinograms of μ (clinical line integrals).

The flow priors work in window units ([0, 1] = HU L40/W400) on their own grid size; clinical data
(DICOM-CT-PD, the ``fan-512-clinical`` presets) are line integrals of μ in 1/mm. :func:`reconstruct_mu`

1. puts an image grid of the prior's size over the scan's field of view
   (:func:`ctflow.operators.window_bridge.fov_grid`),
2. converts the sinogram to window units with :func:`~ctflow.operators.window_bridge.window_bridge`,
   estimating the part of the image outside the window (air, gas, bone) by a TV reconstruction of the
   μ data on a grid twice as fine (the approximation and its measured error are documented there),
3. runs the flow method on that, and maps the result back to μ: ``rec.image`` (and ``rec.samples``,
   ``rec.std``) in 1/mm, ``rec.units == "mu"``, ``rec.geometry`` the grid it lives on.

Classical methods need no prior and no window: with ``units="mu"`` they reconstruct μ directly on the
geometry given. A ``noise_std`` option is read in the units of the μ sinogram.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import torch

from ..errors import ConfigError
from ..units import MU_WATER, window_affine

__all__ = ["ESTIMATE_OPTIONS", "UNITS", "reconstruct_mu"]

UNITS = ("window", "mu")
#: the TV solve that estimates μ/a on the estimation grid (weight tuned on 64² abdomen phantoms, 1 % noise)
ESTIMATE_OPTIONS = {"weight": 1e-3, "iterations": 200}  # tv keeps x ≥ 0 by default


def _tv_estimate(y_over_a: torch.Tensor, grid) -> torch.Tensor:
    from ..operators import RayTransform
    from .registry import get_solver

    return get_solver("tv", **ESTIMATE_OPTIONS)(y_over_a, RayTransform(grid)).image


def _scaled_noise_std(solver, a: float):
    """A copy of ``solver`` whose ``noise_std`` (given in μ-sinogram units) is in window-sinogram units."""
    sig = getattr(solver.options, "noise_std", None)
    if sig is None:
        return solver
    scaled = [float(s) / a for s in sig] if isinstance(sig, (list, tuple)) else float(sig) / a
    out = copy.copy(solver)
    out.options = dataclasses.replace(solver.options, noise_std=scaled)
    return out


def reconstruct_mu(solver, sinogram, geometry, *, prior, x_init=None, callback=None, mu_water: float = MU_WATER,
                   estimate="tv", estimate_scale: int = 2):
    """Reconstruct μ line integrals ``sinogram`` (geometry ``geometry``) with a flow ``solver`` through the
    window bridge (module docstring). ``x_init``, if given, is a μ image on the prior's FOV grid."""
    from ..geometry import load_geometry
    from ..operators.window_bridge import window_bridge
    from ..priors import load_prior

    if isinstance(prior, (str, os.PathLike)):
        prior = load_prior(prior)
    size = getattr(prior, "image_size", None)
    if callable(size):
        size = size()
    if size is None:
        raise ConfigError("units='mu' with a flow method needs a prior that knows its image size (prior.image_size), "
                          "e.g. a shipped or saved prior")
    bridge = window_bridge(sinogram, load_geometry(geometry), int(size), mu_water=mu_water,
                           estimate=_tv_estimate if estimate == "tv" else estimate, estimate_scale=estimate_scale)
    xw = None if x_init is None else bridge.to_window_image(torch.as_tensor(x_init, dtype=bridge.sinogram.dtype))
    solver = _scaled_noise_std(solver, window_affine(mu_water)[0])
    rec = solver(bridge.sinogram, bridge.operator, prior=prior, x_init=xw, callback=callback)
    return bridge.to_mu(rec)
