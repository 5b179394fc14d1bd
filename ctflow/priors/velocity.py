r"""Velocity fields v(x, t) of flow-matching priors, with one calling convention for every solver.

Convention (t = 0 noise → t = 1 image): :math:`x_t = t\,x_1 + (1-t)\,x_0`, :math:`x_0 \sim N(0, I)`,
:math:`v(x, t) = E[x_1 - x_0 \mid x_t = x]`, and the denoiser (Tweedie) estimate is
:math:`\hat x_1(x, t) = x + (1 - t)\,v(x, t)`.

* :class:`VelocityModel` wraps a network ``net(x, t_batch)`` (or any callable) so that
  ``v = model(x, t)`` accepts a float or a per-sample tensor ``t``.
* :class:`GaussianPrior` is the exact velocity for data :math:`x_1 \sim N(μ, Σ)`. With
  :math:`C_t = t^2Σ + (1-t)^2 I`, :math:`E[x_1|x_t] = μ + tΣC_t^{-1}(x_t - tμ)` and
  :math:`E[x_0|x_t] = (1-t)C_t^{-1}(x_t - tμ)`, so
  :math:`v = μ + (tΣ - (1-t)I)\,C_t^{-1}(x_t - tμ)`, evaluated in Σ's eigenbasis.
* :class:`GaussianMixturePrior`: the mixture of such fields weighted by each component's posterior
  responsibility :math:`p(k \mid x_t) ∝ π_k N(x_t; tμ_k, C_{t,k})`.

These closed forms are the oracles the solver tests use (posterior means are available in closed form
for a Gaussian prior and a linear measurement).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (x.ndim - 1)))


class VelocityModel(nn.Module):
    """``v = model(x, t)`` for a network called as ``net(x, t_batch)`` with ``t_batch`` of shape (B,).

    ``time_scale`` multiplies t before the call (1 for ctflow networks; 999 for rectified-flow
    checkpoints that expect t·999). Also :meth:`denoise` = :math:`x + (1-t) v`.
    """

    def __init__(self, net: Callable, time_scale: float = 1.0):
        super().__init__()
        self.net = net
        self.time_scale = float(time_scale)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.net(x, _time_batch(t, x) * self.time_scale)

    def denoise(self, x: torch.Tensor, t) -> torch.Tensor:
        """Tweedie estimate :math:`\\hat x_1 = x + (1 - t)\\,v(x, t)`."""
        tt = _time_batch(t, x)
        return x + _bcast(1.0 - tt, x) * self(x, tt)


def as_velocity(prior) -> VelocityModel:
    """Any prior → a :class:`VelocityModel` (already one, a network, or a plain callable ``f(x, t)``)."""
    if isinstance(prior, VelocityModel):
        return prior
    if isinstance(prior, (GaussianPrior, GaussianMixturePrior)):
        return prior
    return VelocityModel(prior)


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


class NetworkPrior(VelocityModel):
    """A trained network prior: :class:`VelocityModel` plus the metadata (``card``) it was saved with."""

    def __init__(self, net, meta: dict):
        super().__init__(net)
        self.meta = meta

    @property
    def image_size(self) -> int:
        return self.net.config.image_size


class DiffusersVelocity(VelocityModel):
    """Adapter for a diffusers ``UNet2DModel`` trained as a rectified flow (public CT flow priors ship
    this way): ``v = unet(x, t · time_scale).sample``. Such checkpoints are usually called with
    ``time_scale = 999`` and trained on images in [-1, 1]; ``data_range="[-1,1]"`` converts ctflow's
    [0, 1] images in and velocities out (x' = 2x − 1, so v = v'/2).

    Requires the optional extra ``pip install "ctflow[diffusers]"``; ctflow's core never imports it.
    Build one with :meth:`from_pretrained` (a local folder; no downloads happen at run time).
    """

    def __init__(self, unet, time_scale: float = 999.0, data_range: str = "[0,1]"):
        super().__init__(unet, time_scale)
        if data_range not in ("[0,1]", "[-1,1]"):
            raise ValueError(f"data_range must be '[0,1]' or '[-1,1]', got {data_range!r}")
        self.data_range = data_range

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        tt = _time_batch(t, x) * self.time_scale
        if self.data_range == "[-1,1]":
            out = self.net(2.0 * x - 1.0, tt)
            return 0.5 * getattr(out, "sample", out)
        out = self.net(x, tt)
        return getattr(out, "sample", out)

    @classmethod
    def from_pretrained(cls, folder: str, **kwargs) -> DiffusersVelocity:
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise ImportError('the diffusers adapter needs the optional extra: pip install "ctflow[diffusers]"') from None
        unet = UNet2DModel.from_pretrained(folder, use_safetensors=True, local_files_only=True)
        return cls(unet.eval(), **kwargs)
