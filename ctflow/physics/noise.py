r"""Seeded measurement-noise models for sinograms.

* :class:`GaussianNoise`: :math:`y + σ ε`, ε ~ N(0, I), with an absolute σ or σ relative to each
  sinogram's largest absolute value (``relative_sigma=0.01`` is "1 % noise").
* :class:`PoissonNoise`: Beer–Lambert transmission counts :math:`N \sim \mathrm{Poisson}(I_0
  e^{-k y})` and the post-log sinogram :math:`-\log(\max(N, ε_0)/I_0)/k` (``k = mu_scale`` converts
  the sinogram's units to dimensionless line integrals; zero counts are replaced by
  ``zero_count=0.5`` before the log, the usual convention).

Both are deterministic given ``seed`` (a fresh CPU generator per call) and keep the input's
dtype, device and type (numpy in, numpy out).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from ..errors import NonFiniteError

__all__ = ["GaussianNoise", "PoissonNoise", "add_gaussian_noise", "add_poisson_noise"]


def _as_tensor(y: Any) -> tuple[torch.Tensor, bool]:
    if isinstance(y, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(y)), True
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor or numpy array, got {type(y).__name__}")
    if not bool(torch.isfinite(y).all()):
        raise NonFiniteError("the sinogram contains NaN/Inf values; noise cannot be added meaningfully")
    return y, False


def _randn_like(y: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(y.shape, generator=g, dtype=torch.float64).to(device=y.device, dtype=y.dtype)


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
    """Additive white Gaussian noise with ``sigma`` (absolute) or ``relative_sigma`` (× max|y| per sinogram)."""

    sigma: float | None = None
    relative_sigma: float | None = None

    def __post_init__(self):
        if (self.sigma is None) == (self.relative_sigma is None):
            raise ValueError("GaussianNoise needs exactly one of sigma= or relative_sigma=")
        v = self.sigma if self.sigma is not None else self.relative_sigma
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"GaussianNoise: the noise level must be finite and ≥ 0, got {v}")

    def std(self, y: torch.Tensor) -> torch.Tensor:
        """σ per sinogram, shaped to broadcast against ``y`` (..., n_angles, n_det)."""
        if self.sigma is not None:
            return torch.full(y.shape[:-2] + (1, 1), float(self.sigma), dtype=y.dtype, device=y.device)
        return self.relative_sigma * y.abs().amax(dim=(-2, -1), keepdim=True)

    def __call__(self, y: Any, seed: int = 0) -> Any:
        t, is_np = _as_tensor(y)
        out = t + self.std(t) * _randn_like(t, seed)
        return out.numpy() if is_np else out


@dataclasses.dataclass(frozen=True)
class PoissonNoise:
    """Beer–Lambert photon-counting noise with ``I0`` incident photons per detector element."""

    I0: float
    mu_scale: float = 1.0
    zero_count: float = 0.5

    def __post_init__(self):
        if not (math.isfinite(self.I0) and self.I0 > 0):
            raise ValueError(f"PoissonNoise: I0 must be a positive photon count, got {self.I0}")
        if not (math.isfinite(self.mu_scale) and self.mu_scale > 0):
            raise ValueError(f"PoissonNoise: mu_scale must be positive, got {self.mu_scale}")
        if not (0 < self.zero_count <= 1):
            raise ValueError(f"PoissonNoise: zero_count must be in (0, 1], got {self.zero_count}")

    def counts(self, y: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Photon counts (float64) for the sinogram ``y``."""
        g = torch.Generator().manual_seed(int(seed))
        rate = self.I0 * torch.exp(-self.mu_scale * y.detach().to("cpu", torch.float64))
        return torch.poisson(rate, generator=g)

    def __call__(self, y: Any, seed: int = 0) -> Any:
        t, is_np = _as_tensor(y)
        n = self.counts(t, seed).clamp_min(self.zero_count)
        out = (-torch.log(n / self.I0) / self.mu_scale).to(device=t.device, dtype=t.dtype)
        return out.numpy() if is_np else out


def add_gaussian_noise(y: Any, sigma: float | None = None, relative_sigma: float | None = None, seed: int = 0) -> Any:
    """``y`` plus seeded Gaussian noise (see :class:`GaussianNoise`)."""
    return GaussianNoise(sigma, relative_sigma)(y, seed)


def add_poisson_noise(y: Any, I0: float, mu_scale: float = 1.0, seed: int = 0) -> Any:
    """Post-log sinogram of seeded Poisson counts (see :class:`PoissonNoise`)."""
    return PoissonNoise(I0, mu_scale)(y, seed)
