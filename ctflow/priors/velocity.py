r"""Velocity fields v(x, t) of flow-matching priors, with one calling convention for every solver.

Convention (t = 0 noise → t = 1 image): :math:`x_t = t\,x_1 + (1-t)\,x_0`, :math:`x_0 \sim N(0, I)`,
:math:`v(x, t) = E[x_1 - x_0 \mid x_t = x]`, and the denoiser (Tweedie) estimate is
:math:`\hat x_1(x, t) = x + (1 - t)\,v(x, t)`.

* :class:`VelocityModel` wraps a network ``net(x, t_batch)`` (or any callable) so that
  ``v = model(x, t)`` accepts a float or a per-sample tensor ``t``; :class:`NetworkPrior` is a loaded
  prior folder (a UNet with its data card); :func:`as_velocity` turns what a user passes into one.
* Exact Gaussian priors are in :mod:`ctflow.priors.gaussian`; third-party networks in
  :mod:`ctflow.priors.adapters`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._tensor import per_sample


def _time_batch(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` (float, 0-d or (B,) tensor) → a (B,) tensor on x's device/dtype."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    if tt.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or a ({x.shape[0]},) tensor for x of shape {tuple(x.shape)}; got {tuple(tt.shape)}")
    return tt



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
        return x + per_sample(1.0 - tt, x) * self(x, tt)


def as_velocity(prior) -> VelocityModel:
    """Any prior → a :class:`VelocityModel` (already one, a network, or a plain callable ``f(x, t)``)."""
    if isinstance(prior, VelocityModel):
        return prior
    return VelocityModel(prior)


class NetworkPrior(VelocityModel):
    """A trained network prior: :class:`VelocityModel` plus the metadata (``card``) it was saved with.

    It is **frozen**: in eval mode with ``requires_grad=False`` on every parameter, so sampling and
    reconstruction build no graph over the weights (gradients with respect to *images* still flow).
    To fine-tune one, call ``prior.requires_grad_(True).train()`` explicitly.
    """

    def __init__(self, net, meta: dict):
        super().__init__(net)
        self.meta = meta
        self.requires_grad_(False)
        self.eval()

    @property
    def image_size(self) -> int:
        return self.net.config.image_size
