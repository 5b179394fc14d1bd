r"""Classical iterative baselines: ``sirt``, ``cgls`` and ``tikhonov``.

* ``sirt`` (ASTRA-style weighting, :math:`R = 1/(A\mathbf 1)`, :math:`C = 1/(A^\top\mathbf 1)`, zero
  sums give zero weights, ω the relaxation):

  .. math:: x_{k+1} = P_{\ge 0}\big(x_k + ω\,C A^\top R\,(y - A x_k)\big)

  (projected, preconditioned gradient descent on :math:`\tfrac12\|Ax-y\|_R^2`; the weighted misfit
  decreases monotonically for 0 < ω < 2; without the clamp it converges to a minimiser of the
  weighted least-squares problem).
* ``cgls``: conjugate gradients for :math:`\min_x \tfrac12\|Ax-y\|^2`, regularised by early stopping
  (``iterations``), with :math:`r = y - Ax`, :math:`s = A^\top r`, :math:`p_0 = s_0`:

  .. math:: α = \|s\|^2/\|Ap\|^2,\quad x \mathrel{+}= αp,\quad r \mathrel{-}= αAp,\quad
            s' = A^\top r,\quad p = s' + (\|s'\|^2/\|s\|^2)\,p.

  The residual ‖y − Ax_k‖ is non-increasing.
* ``tikhonov``: :math:`\min_x \tfrac12\|Ax-y\|^2 + \tfrac{α}{2}\|x\|^2`, i.e.
  :math:`(A^\top A + αI)\,x = A^\top y`, with the *relative* weight
  :math:`α = \text{weight}\cdot\|A\|_2^2` (so ``weight`` is independent of the geometry's units and
  sampling). Solved by damped CGLS (the CGLS recursion on :math:`[A;\sqrt α I]`): the same Krylov
  iterates as CG on the normal equations (:func:`ctflow.solvers.linalg.cg`), computed without forming
  :math:`A^\top A`, with a per-iteration log and callback stop.

Every solver starts from ``x_init`` when given, else from zeros, and works independently per batch
sample (a sample whose relative normal-equation residual :math:`\|A^\top(y-Ax) - αx\| / \|A^\top y\|`
reached ``tol`` is frozen, so a batch gives the same images as its samples one at a time).
"""

from __future__ import annotations

import dataclasses

import torch

from ..._tensor import per_sample
from ..base import Solver
from ..context import SolveContext
from ..initial import zeros_or_init
from ..linalg import bdot, operator_norm_sq
from ..options import SolverOptions, apply_box, check_box, check_count, check_positive, check_range
from ..registry import register

__all__ = ["CGLSSolver", "SIRTSolver", "TikhonovSolver", "damped_cgls", "sirt_weights"]





# ------------------------------------------------------------------------------------------------
def sirt_weights(op, like: torch.Tensor, rel_eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """SIRT's ``(R, C)``: inverse row sums :math:`1/(A\\mathbf 1)` (sinogram shaped) and inverse column
    sums :math:`1/(A^\\top\\mathbf 1)` (image shaped), zero where a sum is ≤ ``rel_eps``·max."""
    h, w = op.domain_shape
    a, d = op.range_shape
    rows = op(torch.ones(1, 1, h, w, dtype=like.dtype, device=like.device))
    cols = op.adjoint(torch.ones(1, 1, a, d, dtype=like.dtype, device=like.device))

    def inv(s):
        ok = s > rel_eps * s.abs().max().clamp_min(1e-300)
        return torch.where(ok, 1.0 / torch.where(ok, s, torch.ones_like(s)), torch.zeros_like(s))

    return inv(rows), inv(cols)


@dataclasses.dataclass(frozen=True)
class SIRTOptions(SolverOptions):
    """``iterations``; ``relaxation`` ω ∈ (0, 2); ``box``: clamp x into (lo, hi) every iteration
    (default ``(0, None)``: x ≥ 0; ``None``: unconstrained)."""

    search_space = {"iterations": ("int", 10, 400), "relaxation": ("float", 0.2, 1.9)}
    tune_fixed = {"box": (0.0, None)}

    iterations: int = 100
    relaxation: float = 1.0
    box: tuple | None = (0.0, None)

    def __post_init__(self):
        super().__post_init__()
        check_count(self, "iterations")
        check_box(self)
        check_range(self, "relaxation", 0.0, 2.0, lo_open=True, hi_open=True)


@register
class SIRTSolver(Solver):
    """SIRT with ASTRA's row/column-sum weighting (see the module docstring)."""

    name = "sirt"
    description = "SIRT, x ← x + ω C Aᵀ R (y − Ax) with ASTRA row/column-sum weights (optional x ≥ 0)"
    Options = SIRTOptions

    def _solve(self, ctx: SolveContext) -> torch.Tensor:
        o = self.options
        R, C = sirt_weights(ctx.op, ctx.y)
        x = apply_box(zeros_or_init(ctx), o.box)
        omega = float(o.relaxation)
        r = ctx.y - ctx.A(x)
        for _ in ctx.progress(range(int(o.iterations))):
            x = apply_box(x + omega * C * ctx.AT(R * r), o.box)
            r = ctx.y - ctx.A(x)
            ctx.log(x, weighted_misfit=0.5 * float((R * r * r).sum()))
            if ctx.stop:
                break
        return x


# ------------------------------------------------------------------------------------------------
def damped_cgls(
    ctx: SolveContext, x0: torch.Tensor, alpha: float, iters: int, tol: float, log_objective: bool
) -> torch.Tensor:
    r"""CGLS for :math:`\min_x \tfrac12\|Ax-y\|^2 + \tfrac{α}{2}\|x\|^2` (α ≥ 0), batched, logging every
    iteration through ``ctx`` and stopping early on ``ctx.stop``. Samples whose normal-equation
    residual :math:`s = A^\top(y-Ax) - αx` satisfies ‖s‖ ≤ tol·‖Aᵀy‖ are frozen; the loop ends when
    all are (with ``tol = 0`` only when every sample is solved exactly)."""
    x = x0.clone()
    r = ctx.y - ctx.A(x)
    s = ctx.AT(r) - alpha * x
    p = s.clone()
    gamma = bdot(s, s)
    b = ctx.AT(ctx.y)
    bnorm = bdot(b, b).sqrt()
    for _ in ctx.progress(range(int(iters))):
        active = gamma.sqrt() > tol * bnorm
        if not bool(active.any()):
            break
        q = ctx.A(p)
        denom = bdot(q, q) + alpha * bdot(p, p)
        ok = active & (denom > 0)
        step = torch.where(ok, gamma / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(gamma))
        x = x + per_sample(step, x) * p
        r = r - per_sample(step, r) * q
        s = ctx.AT(r) - alpha * x
        gamma_new = bdot(s, s)
        safe_gamma = torch.where(gamma > 0, gamma, torch.ones_like(gamma))
        beta = torch.where(ok & (gamma > 0), gamma_new / safe_gamma, torch.zeros_like(gamma))
        p = torch.where(per_sample(ok, p), s + per_sample(beta, p) * p, p)
        gamma = torch.where(ok, gamma_new, gamma)
        terms = {"normal_residual": float(gamma.sum().sqrt())}
        if log_objective:
            terms["objective"] = 0.5 * float((ctx.A(x) - ctx.y).pow(2).sum()) + 0.5 * alpha * float(x.pow(2).sum())
        ctx.log(x, **terms)
        if ctx.stop:
            break
    return x


@dataclasses.dataclass(frozen=True)
class CGLSOptions(SolverOptions):
    """``iterations`` (the regularisation: early stopping); ``tol`` on ‖Aᵀ(y − Ax)‖/‖Aᵀy‖ (0: off)."""

    search_space = {"iterations": ("int", 2, 100)}

    iterations: int = 30
    tol: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check_count(self, "iterations")
        check_positive(self, "tol", allow_zero=True)


@register
class CGLSSolver(Solver):
    """CGLS on ½‖Ax − y‖² (see the module docstring)."""

    name = "cgls"
    description = "CGLS least squares, regularised by early stopping (iterations, optional tol)"
    Options = CGLSOptions

    def _solve(self, ctx: SolveContext) -> torch.Tensor:
        o = self.options
        return damped_cgls(ctx, zeros_or_init(ctx), 0.0, int(o.iterations), float(o.tol), log_objective=False)


@dataclasses.dataclass(frozen=True)
class TikhonovOptions(SolverOptions):
    """``weight``: α = weight·‖A‖²; ``iterations`` and ``tol`` (relative normal-equation residual) of CG."""

    search_space = {"weight": ("logfloat", 1e-5, 1.0)}

    weight: float = 1e-2
    iterations: int = 100
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "weight", "tol", allow_zero=True)
        check_count(self, "iterations")


@register
class TikhonovSolver(Solver):
    """Tikhonov-regularised least squares (see the module docstring)."""

    name = "tikhonov"
    description = "Tikhonov: CG on (AᵀA + α I) x = Aᵀy, α = weight·‖A‖²"
    Options = TikhonovOptions

    def _solve(self, ctx: SolveContext) -> torch.Tensor:
        o = self.options
        alpha = float(o.weight) * operator_norm_sq(ctx.op)
        return damped_cgls(ctx, zeros_or_init(ctx), alpha, int(o.iterations), float(o.tol), log_objective=True)
