r"""``pnpflow``: PnP-Flow (Martin, Gagneux, Hagemann, Steidl, ICLR 2025), plug-and-play splitting with
a flow-matching denoiser.

For :math:`i = 0, …, N-1` and :math:`t = t_{start} + (1 - t_{start})\,i/N`:

.. math::
    z &= x - \frac{η\,(1-t)^α}{\|A\|^2}\,A^\top(Ax - y) &&\text{(data gradient step)}\\
    \tilde z_k &= t\,z + (1-t)\,ε_k,\quad k = 1..K &&\text{(re-interpolation onto the path)}\\
    x &= \tfrac1K \textstyle\sum_k \tilde z_k + (1-t)\,v(\tilde z_k, t) &&\text{(flow denoiser } D_t\text{)}

and the result is the last denoised :math:`x` (no final data step: at :math:`t = 1 - 1/N` the
denoiser barely moves :math:`z`, so the last gradient step is already in it).

Step size: the reference writes :math:`γ_t = \mathrm{lr}\,σ^2(1-t)^α` for the gradient of
:math:`\|Ax-y\|^2/(2σ^2)`, i.e. a step :math:`\mathrm{lr}(1-t)^α A^\top(Ax-y)` on operators with
‖A‖ ≈ 1 (blur, masks). CT operators have ‖A‖² ≫ 1 (line integrals in mm), so here the step is
divided by ‖A‖²: ``step_size`` η (the reference's ``lr``) is in units of the stable Landweber step (η < 2 never overshoots along
the top singular vector) and the same value works for every geometry and image size. Defaults
η = 1.9, α = 0 (a constant step) were best on ``parallel-28-sparse30`` with 1 % noise; α = 0.1 / 0.3
cost 1 / 2.7 dB, η = 1 cost 2.5 dB: one Landweber step per iteration is a weak data term for
ill-conditioned CT, so more ``steps`` help (200 steps with 2 draws: +1 dB over the default).

``K = n_denoise`` draws are evaluated in one batched network call and counted as K NFE (cost
K·N NFE, no backpropagation, memory O(1) in N). ``init`` (see :func:`ctflow.solvers.initial.flow_init`) only
matters for ``t_start > 0``: at t = 0 the re-interpolation replaces it by pure noise, as in the
reference (which starts at t = 0).
"""

from __future__ import annotations

import dataclasses

import torch

from ...errors import CTFlowError
from ..base import Solver
from ..context import SolveContext
from ..initial import flow_init
from ..linalg import operator_norm_sq
from ..options import (
    INITS,
    SolverOptions,
    apply_box,
    check_box,
    check_choice,
    check_count,
    check_positive,
    check_range,
    check_unit_interval,
)
from ..registry import register
from .guidance import SampleNoise


@dataclasses.dataclass(frozen=True)
class PnPFlowOptions(SolverOptions):
    """``steps`` iterations; data step ``step_size·(1−t)^alpha/‖A‖²`` (``step_size`` ∈ (0, 4]);
    ``n_denoise`` noise draws averaged per denoising; ``t_start`` ∈ [0, 1) first time (``init`` image
    used only when > 0); optional ``box=(lo, hi)`` of the result."""

    search_space = {"steps": ("int", 20, 60), "step_size": ("float", 0.5, 1.99), "alpha": ("float", 0.0, 1.0),
                    "n_denoise": ("int", 1, 3), "t_start": ("float", 0.0, 0.5)}
    tune_fixed = {"box": (0.0, 1.0)}

    steps: int = 100
    step_size: float = 1.9
    alpha: float = 0.0
    n_denoise: int = 5
    t_start: float = 0.0
    init: str = "fbp"
    box: tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        check_count(self, "steps", cap=10_000)
        check_count(self, "n_denoise", cap=256)
        check_range(self, "step_size", 0.0, 4.0, lo_open=True)
        check_positive(self, "alpha", allow_zero=True, maximum=100.0)
        check_unit_interval(self, "t_start", allow_zero=True)
        check_choice(self, "init", INITS)
        check_box(self)


@register
class PnPFlowSolver(Solver):
    name = "pnpflow"
    description = "PnP-Flow (Martin et al. 2025): gradient step, re-interpolation, flow denoiser; no backprop"
    needs_prior = True
    stochastic = True
    Options = PnPFlowOptions

    def _solve(self, ctx: SolveContext):
        o = self.options
        noise = SampleNoise(ctx)
        n, k = int(o.steps), int(o.n_denoise)
        step0 = float(o.step_size) / operator_norm_sq(ctx.op)
        # at t = 0 the re-interpolation discards x entirely, so only t_start > 0 needs the init image
        x = torch.zeros(ctx.image_shape, dtype=ctx.dtype, device=ctx.device)
        if o.t_start > 0:
            x = flow_init(ctx, o.init)
        for i in ctx.progress(range(n)):
            t = float(o.t_start) + (1.0 - float(o.t_start)) * i / n
            z = x - step0 * (1.0 - t) ** float(o.alpha) * ctx.AT(ctx.A(x) - ctx.y)
            zt = t * z.unsqueeze(0) + (1.0 - t) * noise.randn(k)  # (K, B, 1, H, W)
            flat = zt.reshape(-1, *zt.shape[2:])
            with torch.no_grad():
                den = flat + (1.0 - t) * ctx.prior(flat, t)
            ctx.prior.nfe += k - 1  # one batched call holding K denoiser evaluations per image
            x = den.reshape(zt.shape).mean(0)
            if not bool(torch.isfinite(x).all()):
                raise CTFlowError(f"pnpflow diverged at t={t:.3f}; lower step_size (stable below 2) or raise alpha")
            ctx.log(x, t=t)
            if ctx.stop:
                break
        return apply_box(x, o.box)

