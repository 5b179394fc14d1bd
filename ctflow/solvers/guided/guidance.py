r"""Helpers shared by the guided flow samplers (:mod:`.otode`, :mod:`.pnpflow`, :mod:`.dps`, :mod:`.pigfm`, :mod:`.cpigfm`).

* :class:`SampleNoise`: one seeded generator per batch sample, each seeded with ``options.seed``, so
  an image's reconstruction does not depend on what else is in the batch (a batch of two equals two
  separate runs with the same seed).
* :func:`noise_std_per_sample`: σ_y per sinogram, ``(B, 1, 1, 1)``. Either the given value or 1 % of
  each sinogram's own max|y|, the per-sinogram convention of :class:`ctflow.noise.GaussianNoise`
  (``SolveContext.noise_std`` takes the max over the whole batch instead).
* :func:`velocity_with_graph` / :func:`vjp`: one network call kept on the autograd graph and the
  vector–Jacobian product :math:`J_v^\top w` through it.
"""

from __future__ import annotations

import torch

from ...errors import CTFlowError
from ..linalg import bdot


class SampleNoise:
    """Standard normal draws with one generator per batch sample (all seeded with ``ctx.options.seed``)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.gens = []
        for _ in range(ctx.batch):
            g = torch.Generator(device=ctx.device)
            g.manual_seed(int(ctx.options.seed))
            self.gens.append(g)

    def randn(self, n: int | None = None) -> torch.Tensor:
        """``(B, 1, H, W)`` noise, or ``(n, B, 1, H, W)`` for ``n`` independent draws per sample."""
        _, _, h, w = self.ctx.image_shape
        k = 1 if n is None else int(n)
        draws = [
            torch.randn((k, 1, 1, h, w), generator=g, device=self.ctx.device, dtype=self.ctx.dtype) for g in self.gens
        ]
        out = torch.cat(draws, dim=1)  # (k, B, 1, H, W)
        return out[0] if n is None else out


def noise_std_per_sample(ctx, value: float | None) -> torch.Tensor:
    """σ_y as a ``(B, 1, 1, 1)`` tensor: ``value``, or 1 % of each sinogram's max|y| when ``None``."""
    if value is not None:
        return torch.full((ctx.batch, 1, 1, 1), float(value), dtype=ctx.dtype, device=ctx.device)
    return (0.01 * ctx.y.abs().amax(dim=(1, 2, 3), keepdim=True)).clamp_min(1e-12)


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
