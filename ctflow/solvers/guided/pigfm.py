r"""``pigfm``: ΠGFM, pseudo-inverse guided flow matching (the ΠGDM guidance on a rectified flow; the
baseline of Pandey, Yang & Mandt, NeurIPS 2024, arXiv 2405.17673, ``flow/sampler.py`` class ``PGDM``).

With :math:`P = A^+A` (orthogonal projector onto the row space of A) and :math:`\tilde y = A^+y`,
start at :math:`t_s` from :math:`x = t_s\tilde y + (1-t_s)\,ε` and take ``steps`` Euler steps of
:math:`Δt = (1-t_s)/n` on the guided velocity

.. math::
    v' = v + w\,\frac{(1-t)^2 + t^2}{t(1-t)}\;g,\qquad
    g = \Big(\frac{∂\hat x_1}{∂x}\Big)^{\!\top} (\tilde y - P\hat x_1),\qquad
    \hat x_1 = x + (1-t)\,v(x, t).

:math:`g` is one vector–Jacobian product through the single network call of the step (the gradient of
:math:`⟨\mathrm{sg}(r), \hat x_1⟩`; the graph never spans more than one call). The weight equals
:math:`\frac{1-t}{t}\,r_t^{-2}` with :math:`r_t^2 = (1-t)^2/((1-t)^2+t^2)`: OT-ODE's weight at
:math:`σ_y = 0`. For a Gaussian prior :math:`N(μ, I)` and noiseless data, ``guidance=1`` integrates the
exact posterior flow. ``rcond`` truncates small singular values of A in :math:`A^+`; ``damping`` δ
replaces :math:`1/s` by :math:`s/(s^2+δ)` in :math:`A^+` (Tikhonov, for noisy sinograms; P stays the
exact projector); ``noisy=True`` sets δ = σ² per sinogram (σ from ``noise_std`` or estimated). Cost per step: 1 NFE + 1 VJP + one :math:`P`.

Defaults (tuned on ``phantom-28`` / ``parallel-28-sparse30`` / 1 % noise): ``steps=100``,
``t_start=0.1``, ``guidance=1``, ``rcond=0.1``. With noisy data ``rcond`` (or ``damping``) is the
regulariser: the weight grows like 1/(1 − t), so the last steps project onto :math:`P x = \tilde y`
including its noise, and more steps fit more noise (30 NFE scored slightly higher than 100 there).
"""

from __future__ import annotations

import dataclasses

import torch

from ...errors import ConfigError
from ..base import Solver
from ..context import SolveContext
from ..initial import flow_init
from ..linalg import pseudo_inverse
from ..options import (
    INITS,
    SolverOptions,
    apply_box,
    check_bool,
    check_box,
    check_choice,
    check_count,
    check_noise_std,
    check_positive,
    check_unit_interval,
)
from ..registry import register
from .guidance import velocity_with_graph, vjp

#: guidance weights above this overflow the closed-form coefficients / blow the ODE up
MAX_GUIDANCE = 1e3


def check_noisy_damping(opts) -> None:
    """``noisy=True`` sets the pseudo-inverse damping to σ², so an explicit ``damping`` conflicts with it."""
    if opts.noisy and opts.damping > 0:
        raise ConfigError("options noisy=True and damping>0 conflict: noisy sets damping = noise_std²")


def check_rcond(opts) -> None:
    if not (0.0 < opts.rcond < 1.0):
        raise ConfigError(f"option rcond={opts.rcond!r} must be in (0, 1)")


def guided_denoise(ctx: SolveContext, x: torch.Tensor, t: float, target: torch.Tensor, project, wrt: str):
    r"""One network call and one VJP: returns ``(v, x̂1, g)`` with :math:`r = \mathrm{sg}(\tilde y - P\hat x_1)`
    and :math:`g = (∂\hat x_1/∂x)^\top r = r + (1-t) J_v^\top r` (``wrt="x1"``, ΠGFM) or
    :math:`g = J_v^\top r` (``wrt="v"``, C-ΠGFM), where :math:`\hat x_1 = x + (1-t) v`."""
    xg, v = velocity_with_graph(ctx, x, t)
    x1 = x.detach() + (1.0 - t) * v.detach()
    r = (target - project(x1)).detach()
    g = r + vjp(xg, v, (1.0 - t) * r) if wrt == "x1" else vjp(xg, v, r)
    return v.detach(), x1, g


def data_terms(ctx: SolveContext, rcond: float, damping):
    r"""The cached :class:`~ctflow.solvers.linalg.PseudoInverse` and :math:`\tilde y = A^+y`; ``damping``
    a number or a per-sample ``(B,)`` tensor (Tikhonov δ per sinogram)."""
    pinv = pseudo_inverse(ctx.op, rcond=rcond)
    return pinv, pinv.pinv(ctx.y, damping=damping).to(ctx.dtype)


def damping_of(ctx: SolveContext, o):
    """δ per sample: σ² (``noisy=True``; σ given or estimated per sinogram) or the fixed ``damping``."""
    if getattr(o, "noisy", False):
        return ctx.noise_var_vec(o.noise_std)
    return float(o.damping)


def start_image(ctx: SolveContext, o, y_t: torch.Tensor) -> torch.Tensor:
    """The ``init`` image the sampler starts from at ``t_start``: ``"pinv"`` is its own :math:`A^+y`."""
    if o.init == "pinv" and ctx.x_init is None:
        return y_t
    return flow_init(ctx, o.init).to(ctx.dtype)


def finish(x: torch.Tensor, box) -> torch.Tensor:
    return apply_box(x, box)


@dataclasses.dataclass(frozen=True)
class PiGFMOptions(SolverOptions):
    """``steps`` Euler steps (= NFE) from ``t_start`` ∈ (0, 1); guidance weight ``guidance`` w ∈ [0, 1000];
    :math:`A^+` truncation ``rcond`` and Tikhonov ``damping`` δ, or ``noisy=True``: δ = σ² per sinogram
    (``noise_std``; None: estimated); ``init`` image at ``t_start`` (default ``"pinv"``: :math:`A^+y`);
    optional ``box=(lo, hi)`` of the result."""

    search_space = {"steps": ("int", 10, 100), "t_start": ("float", 0.02, 0.6), "guidance": ("logfloat", 0.1, 3.0),
                    "rcond": ("logfloat", 0.01, 0.5), "noisy": ("choice", [False, True])}
    tune_fixed = {"box": (0.0, 1.0)}

    steps: int = 100
    t_start: float = 0.1
    guidance: float = 1.0
    rcond: float = 0.1
    damping: float = 0.0
    noisy: bool = False
    noise_std: float | tuple | None = None
    init: str = "pinv"
    box: tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        check_count(self, "steps", cap=10_000)
        check_positive(self, "guidance", allow_zero=True, maximum=MAX_GUIDANCE)
        check_positive(self, "damping", allow_zero=True)
        check_unit_interval(self, "t_start", allow_zero=False)  # the weight ~ 1/t is singular at t = 0
        check_rcond(self)
        check_bool(self, "noisy")
        check_noise_std(self)
        check_choice(self, "init", INITS)
        check_box(self)
        check_noisy_damping(self)


@register
class PiGFM(Solver):
    name = "pigfm"
    description = "ΠGFM: pseudo-inverse guided flow (Euler, 1 NFE + 1 VJP per step; Pandey et al. 2024 baseline)"
    needs_prior = True
    stochastic = True
    Options = PiGFMOptions

    def _solve(self, ctx: SolveContext) -> torch.Tensor:
        o = self.options
        pinv, y_t = data_terms(ctx, o.rcond, damping_of(ctx, o))
        n = int(o.steps)
        ts = torch.linspace(o.t_start, 1.0, n + 1, dtype=torch.float64).tolist()
        x = o.t_start * start_image(ctx, o, y_t) + (1.0 - o.t_start) * ctx.randn()
        for i in ctx.progress(range(n), "pigfm"):
            t, dt = ts[i], ts[i + 1] - ts[i]
            v, x1, g = guided_denoise(ctx, x, t, y_t, pinv.project, wrt="x1")
            weight = o.guidance * ((1.0 - t) ** 2 + t * t) / (t * (1.0 - t))
            x = x + dt * (v + weight * g)
            ctx.log(x1, t=t)
            if ctx.stop:
                return finish(x1, o.box)
        return finish(x, o.box)
