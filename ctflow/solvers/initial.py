"""Initial images: quick approximate inverses that iterative and flow solvers start from."""

from __future__ import annotations

import torch

from .._tensor import per_sample
from ..errors import CTFlowError
from .linalg import bdot, cg, operator_norm_sq, pseudo_inverse
from .options import INITS

INITIAL_IMAGES = ("fbp", "tikhonov", "adjoint", "pinv", "zeros")


def initial_image(ctx, kind: str = "fbp", tikhonov_alpha: float = 1e-2, iters: int = 30) -> torch.Tensor:
    r"""A quick approximate inverse for initialisation (``ctx.x_init`` wins when the caller gave one):

    * ``"fbp"``: filtered back-projection, Hann filter (parallel and fan; Tikhonov without a geometry);
    * ``"tikhonov"``: CG on :math:`(A^\top A + α\|A\|^2 I)x = A^\top y`;
    * ``"adjoint"``: :math:`c\,A^\top y` with the per-sample least-squares scale
      :math:`c = \|A^\top y\|^2 / \|AA^\top y\|^2` (unscaled :math:`A^\top y` is meaningless for CT);
    * ``"pinv"``: the truncated pseudo-inverse :math:`A^+y` (singular values below 1 % of the largest dropped);
    * ``"zeros"``.
    """
    if ctx.x_init is not None:
        return ctx.x_init.clone()
    if kind == "zeros":
        return torch.zeros(ctx.image_shape, dtype=ctx.dtype, device=ctx.device)
    if kind == "fbp":
        from ..operators.fbp import fbp

        geom = getattr(ctx.op, "geometry", None)
        if geom is not None:
            return fbp(ctx.y, geom, filter="hann").to(ctx.dtype)
        kind = "tikhonov"
    if kind == "tikhonov":
        lam = tikhonov_alpha * operator_norm_sq(ctx.op)
        return cg(lambda v: ctx.AT(ctx.A(v)) + lam * v, ctx.AT(ctx.y), iters=iters)
    if kind == "adjoint":
        g = ctx.AT(ctx.y)
        Ag = ctx.A(g)
        c = bdot(g, g) / bdot(Ag, Ag).clamp_min(1e-30)
        return g * per_sample(c, g)
    if kind == "pinv":
        return pseudo_inverse(ctx.op, rcond=1e-2).pinv(ctx.y).to(ctx.dtype)
    raise CTFlowError(f"unknown initialisation {kind!r}; choose one of {INITIAL_IMAGES}")


#: the starts a guided flow sampler accepts: the one vocabulary (``"noise"``: no image information, i.e. zeros)
INIT_CHOICES = INITS


def flow_init(ctx, kind: str) -> torch.Tensor:
    """Initial image for ``kind`` (:func:`initial_image`; ``ctx.x_init`` wins when the caller
    passed one). Without a geometry, ``"fbp"`` falls back to the scaled adjoint here; ``"noise"`` is the
    zero image (the sampler's start is then pure noise)."""
    if kind == "fbp" and getattr(ctx.op, "geometry", None) is None:
        kind = "adjoint"
    if kind == "noise":
        kind = "zeros"
    return initial_image(ctx, kind)


def zeros_or_init(ctx) -> torch.Tensor:
    """``ctx.x_init`` when the caller gave one, else zeros (the classical iterative solvers' start)."""
    if ctx.x_init is not None:
        return ctx.x_init.clone()
    return torch.zeros(ctx.image_shape, dtype=ctx.dtype, device=ctx.device)
