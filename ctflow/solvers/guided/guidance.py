r"""Helpers shared by the guided flow samplers (:mod:`.otode`, :mod:`.pnpflow`, :mod:`.dps`, :mod:`.pigfm`, :mod:`.cpigfm`).

* :class:`SampleNoise`: one seeded generator per batch sample (:meth:`SolveContext.randn`, used by every
  stochastic method), so an image's reconstruction does not depend on what else is in the batch.
* :func:`noise_std_per_sample`: σ_y per sinogram, ``(B, 1, 1, 1)``: the given value(s) or the estimate
  of :mod:`ctflow.solvers.noise_estimate` (:meth:`SolveContext.noise_std`).
* :func:`velocity_with_graph` / :func:`vjp`: one network call kept on the autograd graph and the
  vector–Jacobian product :math:`J_v^\top w` through it.
"""

from __future__ import annotations

import torch

from ...errors import CTFlowError
from ..linalg import bdot


class SampleNoise:
    """Standard normal draws with one generator per batch sample (:meth:`SolveContext.randn`)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def randn(self, n: int | None = None) -> torch.Tensor:
        """``(B, 1, H, W)`` noise, or ``(n, B, 1, H, W)`` for ``n`` independent draws per sample."""
        return self.ctx.randn(n=n)


def noise_std_per_sample(ctx, value) -> torch.Tensor:
    """σ_y as a ``(B, 1, 1, 1)`` tensor: ``value`` (one or one per sinogram), or estimated per sinogram."""
    return ctx.noise_std(value)


def velocity_with_graph(ctx, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_leaf, v)`` with ``v = prior(x_leaf, t)`` on the autograd graph (one NFE)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        v = ctx.prior(xg, t)
    if not v.requires_grad:
        raise CTFlowError(
            f"{ctx.method}: the prior's velocity is not differentiable w.r.t. its input (it runs under no_grad or "
            "returns a detached tensor); this method needs one vector-Jacobian product per step"
        )
    return xg, v


def vjp(xg: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r""":math:`J_v^\top w` for ``v`` computed from the leaf ``xg`` (frees the graph)."""
    (g,) = torch.autograd.grad(v, xg, grad_outputs=w.to(v.dtype))
    return g.detach()


def bnorm(a: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norms, shape ``(B, 1, 1, 1)``."""
    return bdot(a, a).clamp_min(0).sqrt().reshape(-1, 1, 1, 1)
