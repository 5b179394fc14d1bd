r"""Regularisers of the latent noise :math:`z` of the latent-optimisation methods (D-Flow, MS-Flow)."""

from __future__ import annotations

import math

import torch

from ..._tensor import per_sample
from ..linalg import bdot


def radial_penalty(z: torch.Tensor) -> torch.Tensor:
    r"""D-Flow's χ-norm regulariser per sample: :math:`\tfrac12\|z\|^2 - (d-1)\log\|z\|` (minimal at
    ‖z‖ = √(d−1), the typical norm of d-dimensional white noise)."""
    d = z[0].numel()
    n2 = z.reshape(z.shape[0], -1).pow(2).sum(1).clamp_min(1e-12)
    return 0.5 * n2 - 0.5 * (d - 1) * torch.log(n2)


def radial_penalty_grad(z: torch.Tensor) -> torch.Tensor:
    r"""Gradient of :func:`radial_penalty`: :math:`z\,(1 - (d-1)/\|z\|^2)`."""
    d = z[0].numel()
    n2 = bdot(z, z).clamp_min(1e-12)
    return z * per_sample(1.0 - (d - 1) / n2, z)


def chi_norm_mean(d: int) -> float:
    """E‖z‖ for z ~ N(0, I_d) (≈ √(d − ½))."""
    return math.sqrt(2.0) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
