r"""Exact velocity fields of Gaussian and Gaussian-mixture data: the oracles of the solver tests.

* :class:`GaussianPrior` is the exact velocity for data :math:`x_1 \sim N(μ, Σ)`. With
  :math:`C_t = t^2Σ + (1-t)^2 I`, :math:`E[x_1|x_t] = μ + tΣC_t^{-1}(x_t - tμ)` and
  :math:`E[x_0|x_t] = (1-t)C_t^{-1}(x_t - tμ)`, so
  :math:`v = μ + (tΣ - (1-t)I)\,C_t^{-1}(x_t - tμ)`, evaluated in Σ's eigenbasis.
* :class:`GaussianMixturePrior`: the mixture of such fields weighted by each component's posterior
  responsibility :math:`p(k \mid x_t) ∝ π_k N(x_t; tμ_k, C_{t,k})`.

Posterior means are available in closed form for a Gaussian prior and a linear measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _time_batch(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` (float, 0-d or (B,) tensor) → a (B,) tensor on x's device/dtype."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    if tt.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or a ({x.shape[0]},) tensor for x of shape {tuple(x.shape)}; got {tuple(tt.shape)}")
    return tt



from .velocity import VelocityModel, _time_batch


class GaussianPrior(VelocityModel):
    """Exact velocity for images distributed as :math:`N(μ, Σ)` (μ of shape ``image_shape``, Σ of
    shape (d, d) with d = prod(image_shape), symmetric positive semi-definite)."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        nn.Module.__init__(self)
        self.time_scale = 1.0
        mean = torch.as_tensor(mean, dtype=torch.float64)
        d = mean.numel()
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (d, d):
            raise ValueError(f"cov must be ({d}, {d}) for a mean with {d} entries, got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.T, atol=1e-10 * float(cov.abs().max())):
            raise ValueError("cov must be symmetric")
        lam, U = torch.linalg.eigh(cov)
        if float(lam.min()) < -1e-10 * float(lam.abs().max()):
            raise ValueError(f"cov must be positive semi-definite (smallest eigenvalue {float(lam.min()):.3g})")
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("eigvals", lam.clamp_min(0.0))
        self.register_buffer("eigvecs", U)
        self.image_shape = tuple(mean.shape)

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.image_shape and tuple(x.shape[-len(self.image_shape):]) != self.image_shape:
            raise ValueError(f"GaussianPrior of shape {self.image_shape} got x of shape {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1).to(torch.float64)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        tt = _time_batch(t, x).to(torch.float64)[:, None]
        xf = self._flat(x)
        mu = self.mean.reshape(1, -1)
        z = (xf - tt * mu) @ self.eigvecs  # coordinates in Σ's eigenbasis
        lam = self.eigvals[None, :]
        gain = (tt * lam - (1.0 - tt)) / (tt * tt * lam + (1.0 - tt) ** 2).clamp_min(1e-12)  # singular Σ at t=1
        v = mu + (gain * z) @ self.eigvecs.T
        return v.reshape(x.shape).to(x.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples from N(μ, Σ): ``(n, *image_shape)`` float64."""
        eps = torch.randn(n, self.mean.numel(), generator=generator, dtype=torch.float64)
        return (self.mean.reshape(1, -1) + (eps * self.eigvals.sqrt()) @ self.eigvecs.T).reshape(n, *self.image_shape)

    def log_marginal(self, x: torch.Tensor, t) -> torch.Tensor:
        """log N(x; tμ, C_t) per sample (used by the mixture's responsibilities)."""
        tt = _time_batch(t, x).to(torch.float64)[:, None]
        z = (self._flat(x) - tt * self.mean.reshape(1, -1)) @ self.eigvecs
        var = tt * tt * self.eigvals[None, :] + (1.0 - tt) ** 2
        d = z.shape[1]
        return -0.5 * ((z * z / var).sum(1) + torch.log(var).sum(1) + d * math.log(2 * math.pi))


class GaussianMixturePrior(VelocityModel):
    """Exact velocity for a mixture :math:`\\sum_k π_k N(μ_k, Σ_k)`."""

    def __init__(self, weights: Sequence[float], components: Sequence[GaussianPrior]):
        nn.Module.__init__(self)
        self.time_scale = 1.0
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.ndim != 1 or len(w) != len(components) or float(w.min()) < 0 or float(w.sum()) <= 0:
            raise ValueError("weights must be non-negative, one per component, with a positive sum")
        self.register_buffer("log_weights", torch.log(w / w.sum()))
        self.components = nn.ModuleList(components)
        self.image_shape = components[0].image_shape

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        tt = _time_batch(t, x)
        logp = torch.stack([c.log_marginal(x, tt) for c in self.components], dim=1) + self.log_weights[None]
        resp = torch.softmax(logp, dim=1)  # (B, K)
        vs = torch.stack([c(x, tt).to(torch.float64) for c in self.components], dim=1)  # (B, K, ...)
        v = (resp.reshape(*resp.shape, *([1] * (vs.ndim - 2))) * vs).sum(1)
        return v.to(x.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        out = torch.stack([c.sample(n, generator) for c in self.components], dim=1)
        return out[torch.arange(n), k]
