r"""``msflow``: MS-Flow, multiple shooting for flow priors (Denker et al. 2026; reconstructed from
methods.md §A.2, so "ablation-compatible", not "paper-identical").

**Grid.** K = ``segments`` segments with boundaries :math:`τ_k = k/K`; segment k gets
:math:`n_k` of the N = ``steps`` ODE steps (N split as evenly as possible, the remainder going to
the last segments, nearest the data). :math:`F_k` is the numerical flow map :math:`τ_k → τ_{k+1}`
(:math:`n_k` steps of ``ode_method``).

**Variables.** :math:`z_0` (noise), :math:`z_1 … z_{K-1}` (intermediate states) and the image
:math:`x = z_K`, free (``x_mode="free"``) or tied, :math:`x = F_{K-1}(z_{K-1})` (``"tied"``).

**Objective** (σ = ``noise_std`` per sinogram, default: estimated, :mod:`ctflow.solvers.noise_estimate`;
λ = ``radial_weight``)

.. math::
   J = \frac{1}{2σ^2}\|Ax - y\|^2 + λR(z_0) + \sum_{k=0}^{K-1}\frac{ρ_k}{2}\|z_{k+1} - F_k(z_k)\|^2
       + w_s\sum_{k=1}^{K-1} S_k(z_k) + μ\,\mathrm{TV}_ε(x) + ι_{[lo,hi]}(x)

with :math:`R = \tfrac12\|z\|^2 - (d-1)\log\|z\|` (``latent_reg="radial"``; ``"gaussian"``: ½‖z‖²),
the trajectory penalties :math:`ρ_k` (``rho``; in tied mode the last one is absent), and the optional
ablation terms (0 = off):

* ``state_norm_weight`` :math:`w_s`: :math:`S_k = \tfrac12(\|e_k\| - (1-τ_k)c_d)^2` with
  :math:`e_k = z_k - τ_k\hat x_1(z_k) = (1-τ_k)(z_k - τ_k v(z_k, τ_k))` the noise part of the state
  (:math:`(1-τ_k)` × Tweedie's :math:`\hat x_0`) and :math:`c_d = E\|ε\| ≈ \sqrt{d}` — the brief's
  :math:`(\|z_k - τ_k\hat x_1\| - (1-τ_k)\sqrt d)^2` with a ½ and the exact χ mean. With
  ``jacobian_free=True`` its gradient treats :math:`v(z_k, τ_k)` as a constant (no extra NFE: v is the
  first velocity of :math:`F_k(z_k)`, cached); with ``"vjp"`` it is exact. Caveat: the Tweedie noise
  estimate is shrunk, :math:`E\|\hat x_0\|^2 < d`, so the target is an upper bound; keep the weight small.
* ``tv_weight`` μ: smoothed isotropic TV :math:`\sum\sqrt{|\nabla x|^2 + ε^2}` (ε = ``tv_eps``) inside
  the data-consistency step, solved by lagged diffusivity (``tv_rounds`` re-weightings, each a
  warm-started CG on :math:`(A^\top A/σ^2 + ρI - μ\,\mathrm{div}(w\nabla))x = A^\top y/σ^2 + ρx_{ref}`,
  :math:`w = 1/\sqrt{|\nabla x|^2+ε^2}`; each round does not increase the DC objective).
* ``box=(lo, hi)`` (an end may be None; ``(0, None)``: x ≥ 0): projection of x onto the box after each DC step (not the exact
  constrained minimiser). In tied mode the returned image is clamped instead.

**One outer iteration** (``iterations`` of them) = a Gauss–Seidel sweep k = 0 … K−1 over the latent
blocks with the newest neighbours, then the DC step. Block k takes ``inner_steps`` preconditioned
gradient steps :math:`z_k ← z_k - η P_k g_k` (η = ``step_size``) with

.. math::
   g_k = λ∇R(z_0)[k=0] + ρ_{k-1}(z_k - F_{k-1}(z_{k-1}))[k>0] + w_s∇S_k - ρ_k J_{F_k}(z_k)^\top(z_{k+1} - F_k(z_k)),
   \qquad P_k = (c_k + ρ_k)^{-1},

:math:`c_k` = the curvature of the anchor terms (λ·radial curvature of R for k = 0, :math:`ρ_{k-1}`
otherwise, plus :math:`w_s(1-τ_k)^2`). ``jacobian_free=True`` replaces :math:`J_{F_k}^\top` by I, so only
no-grad forward maps are needed; then η = 1 is the exact minimiser of the block objective
linearised with :math:`J_F = I` (for quadratic anchors). ``jacobian_free=False`` uses the exact VJP through
segment k only (an autograd graph of :math:`n_k` steps, never N), with an Armijo backtracking on the
block objective, so every block step (and the exact DC step) decreases J. Note: the Jacobian-free fixed
point is *not* a stationary point of J — it satisfies λ∇R(z_0) = ρ_k r_k = −Aᵀ(Ax − y)/σ² for all k
(r_k the gaps), i.e. the whole-flow Jacobian is dropped; for a Gaussian prior N(μ, Σ), R = ½‖z‖² and ρ → ∞ it is
:math:`x = μ - Σ^{1/2}A^\top(Ax-y)/(λσ^2)` instead of the MAP's Σ (tests: ≈ 7 % apart). In tied mode the last block is
coupled to the data instead: :math:`g_{K-1}` holds :math:`J^\top A^\top(AF_{K-1}(z_{K-1}) - y)/σ^2` and
:math:`P_{K-1} = (c_{K-1}I + A^\top A/σ^2)^{-1}` (CG); with ``jacobian_free=True`` this step is exactly a DC
solve with reference :math:`F_{K-1}(z_{K-1}) - g_{anchor}/c_{K-1}` (so TV/box apply there too).

**Jacobi sweep** (``sweep="jacobi"``, Jacobian-free only): every block takes its step from the previous
iterate (half steps: both ends of a gap move at once, and full steps over-correct and oscillate), then
the K segment maps are evaluated together — the K states stacked into one batch of K·B images with
per-image times, so each ODE step is one network call (⌈N/K⌉ calls per sweep instead of N; segments
with fewer steps take zero-length steps at the end). Same fixed point as Gauss–Seidel (tested); it pays
where a batched call is cheaper than K calls (a GPU), not on a CPU that is already compute-bound
(``python -m ctflow.studies.msflow_sweeps``).

**Data consistency** (free mode):
:math:`x ← \arg\min_x \frac{1}{2σ^2}\|Ax-y\|^2 + \frac{ρ_{K-1}}{2}\|x - F_{K-1}(z_{K-1})\|^2`
(+ μTV), warm-started CG with exactly ``dc_iters`` iterations (:func:`solve_data_consistency`
with tol = 0: no early exit, so a batch gives the per-sample results; CG's stopping test is batch-wide).

**Continuation.** ``rho_growth`` g ≥ 1 multiplies every ρ_k by g after each outer iteration, capped at
``rho_max`` (g = 1: fixed ρ, the default).

**Initialisation** (``init``, ``blend``): :math:`z_0` as in D-Flow
(:func:`ctflow.solvers.latent.dflow.initial_latent`: blended back-integrated FBP/Tikhonov image, or pure
noise), then the roll-out :math:`z_{k+1} = F_k(z_k)`, so every trajectory penalty starts at 0.

**Memory.** ``jacobian_free=True`` holds the K+1 states, the K cached segment ends :math:`F_k(z_k)`
(each map is evaluated once per sweep: after block k's update, and reused as the coupling term of the
next sweep; with ``state_norm_weight`` > 0 also the K velocities :math:`v(z_k, τ_k)`) and one no-grad
forward — independent of N. ``"vjp"`` adds one segment's graph, O(N/K). Compute per sweep ≈
``inner_steps`` × N steps (+ one forward per Armijo trial for ``"vjp"``) + the DC solve.

**Defaults** (all [INF]; the paper's values were not retrieved): K = 4, N = 20 Euler steps (the paper's
memory figure uses Euler), ρ = 10³, λ = 1, 20 sweeps, η = 1 (the exact J-free block minimiser),
20 CG iterations, blended FBP init with α = 0.1 as in D-Flow. ρ was picked on the shipped ``phantom-28``
prior (16 angles, 1 % noise, 2 phantoms, FBP 28.4 dB): ρ = 10 / 300 / 10³ / 3·10³ / 10⁴ gave
24.1 / 32.5 / 32.9 / 31.4 / 28.1 dB after 20 sweeps. Small ρ lets the DC step fit the noise; large ρ
makes the chain stiff, and the block Gauss–Seidel then converges slowly in directions that only the
z_0 regulariser determines (rate ≈ λ/(λ+ρ) per sweep). Like D-Flow it fits the noise if run long with
a loose coupling (ρ = 100: 50 sweeps scored 1 dB below 20).

**Logged per outer iteration:** ``data`` (1/2σ²‖Ax−y‖²), ``radial`` (λΣR(z_0)), ``trajectory``
(Σ_k ρ_k/2‖z_{k+1} − F_k(z_k)‖²), ``gap`` (max over k and batch of ‖z_{k+1} − F_k(z_k)‖/‖z_{k+1}‖),
``state_norm`` / ``tv`` when active, ``rho`` (ρ_{K−1}) when continuation is on, and ``objective``.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import torch

from ..._tensor import per_sample
from ...errors import ConfigError
from ...priors.ode import NFE_PER_STEP, ode_step
from ..base import Solver
from ..context import SolveContext
from ..linalg import bdot, cg, solve_data_consistency
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
    check_range,
)
from ..registry import register
from ..tv_ops import div2d, grad2d, tv_norm
from .dflow import (
    LATENT_REGS,
    initial_latent,
    integrate,
    latent_penalty,
    latent_penalty_curvature,
    latent_penalty_grad,
)
from .penalties import chi_norm_mean


def segment_grids(segments: int, steps: int) -> list[list[float]]:
    """Per-segment time grids: K lists, segment k from k/K to (k+1)/K with n_k + 1 points, Σn_k = N
    (the remainder N mod K goes to the last segments)."""
    K, N = int(segments), int(steps)
    base, extra = divmod(N, K)
    grids = []
    for k in range(K):
        n = base + (1 if k >= K - extra else 0)
        t0, t1 = k / K, (k + 1) / K
        grids.append([t0 + (t1 - t0) * i / n for i in range(n)] + [t1])
    return grids



def _norms(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).norm(dim=1)


@dataclasses.dataclass(frozen=True)
class MSFlowOptions(SolverOptions):
    """See the module docstring. ``sweep``: ``"gauss-seidel"`` (blocks in order, newest neighbours) or
    ``"jacobi"`` (every block from the previous iterate, all K segment maps in one batched network call
    per ODE step; needs ``jacobian_free=True``)."""

    search_space = {"rho": ("logfloat", 3.0, 3e3), "blend": ("float", 0.0, 0.95),
                    "radial_weight": ("logfloat", 0.1, 10.0), "iterations": ("int", 3, 15),
                    "tv_weight": ("choice", [0.0, 0.1, 0.3, 1.0])}
    tune_fixed = {"box": (0.0, 1.0)}

    segments: int = 4
    steps: int = 20
    ode_method: str = "euler"
    x_mode: str = "free"
    jacobian_free: bool = True
    sweep: str = "gauss-seidel"
    rho: float | tuple[float, ...] = 1000.0
    rho_growth: float = 1.0
    rho_max: float | None = None
    latent_reg: str = "radial"
    radial_weight: float = 1.0
    state_norm_weight: float = 0.0
    tv_weight: float = 0.0
    tv_eps: float = 1e-2
    tv_rounds: int = 3
    box: tuple | None = None
    iterations: int = 20
    inner_steps: int = 1
    step_size: float = 1.0
    dc_iters: int = 20
    init: str = "fbp"
    blend: float = 0.1
    inverse_steps: int | None = None
    noise_std: float | tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        check_count(self, "segments", "steps", "iterations", "inner_steps", "dc_iters", "tv_rounds", "inverse_steps",
                    cap=10_000)
        check_positive(self, "step_size", "tv_eps", "rho_max")
        check_noise_std(self)
        check_positive(self, "radial_weight", "state_norm_weight", "tv_weight", allow_zero=True, maximum=1e8)
        check_choice(self, "ode_method", NFE_PER_STEP)
        check_choice(self, "x_mode", ("free", "tied"))
        check_bool(self, "jacobian_free")
        check_choice(self, "sweep", ("gauss-seidel", "jacobi"))
        check_choice(self, "latent_reg", LATENT_REGS)
        check_choice(self, "init", INITS)
        if self.sweep == "jacobi" and not self.jacobian_free:
            raise ConfigError("option sweep='jacobi' needs jacobian_free=True (the exact-VJP blocks are Gauss–Seidel only)")
        if int(self.segments) > int(self.steps):
            raise ConfigError(
                f"option segments={self.segments} > steps={self.steps}: K > N (every segment needs ≥ 1 ODE step)"
            )
        check_range(self, "step_size", 0.0, 2.0, lo_open=True, hi_open=True)
        check_positive(self, "rho_growth")
        if float(self.rho_growth) < 1.0:
            raise ConfigError(f"option rho_growth={self.rho_growth!r} must be ≥ 1")
        check_range(self, "blend", 0.0, 1.0)
        rho = self.rho
        if isinstance(rho, (list, tuple)):
            rho = tuple(float(r) for r in rho)
            if len(rho) != int(self.segments):
                raise ConfigError(
                    f"option rho has {len(rho)} entries but segments={self.segments}; give one per segment or a scalar"
                )
        else:
            rho = float(rho)
        object.__setattr__(self, "rho", rho)
        check_positive(self, "rho", maximum=1e12)
        check_box(self)

    def rho_list(self) -> list[float]:
        return list(self.rho) if isinstance(self.rho, tuple) else [float(self.rho)] * int(self.segments)

    def bounds(self):
        """The box (lo, hi) with optional ends, or None."""
        return self.box


@register
class MSFlowSolver(Solver):
    name = "msflow"
    description = "MS-Flow: multiple shooting over K flow segments, Jacobian-free Gauss–Seidel + CG data consistency"
    needs_prior = True
    Options = MSFlowOptions
    max_backtracks = 12

    # ---- pieces -----------------------------------------------------------------------------------
    def _segment(self, ctx, k: int, z: torch.Tensor, keep_first: bool = False):
        """F_k(z) (graph kept iff grad mode is on); with ``keep_first`` also v(z, τ_k) (its first NFE)."""
        first = []

        def vel(x, t):
            out = ctx.prior(x, t)
            if keep_first and not first:
                first.append(out)
            return out

        out = integrate(vel, z, ctx.run.grids[k], self.options.ode_method)
        return out, (first[0] if first else None)

    def _state_norm(self, ctx, z, v, tau):
        """S = ½(‖e‖ − (1−τ)c_d)² per sample and e = (1−τ)(z − τ v)."""
        e = (1.0 - tau) * (z - tau * v)
        n = _norms(e).clamp_min(1e-12)
        return 0.5 * (n - (1.0 - tau) * ctx.run.c_d) ** 2, e, n

    def _tv_grad(self, x):
        eps = float(self.options.tv_eps)
        g = grad2d(x)
        w = 1.0 / (g.pow(2).sum(1, keepdim=True) + eps * eps).sqrt()
        return -div2d(g * w)

    def _dc(self, ctx, x_ref, rho, x0):
        """argmin_x 1/2σ²‖Ax−y‖² + ρ/2‖x − x_ref‖² (+ μ TV_ε), then the box projection."""
        o = self.options
        s2 = ctx.run.s2
        if o.tv_weight == 0:
            x = solve_data_consistency(ctx.op, ctx.y, x_ref, rho, noise_var=s2, x0=x0, iters=int(o.dc_iters), tol=0.0)
        else:
            mu, eps = float(o.tv_weight), float(o.tv_eps)
            rhs = ctx.AT(ctx.y) / s2 + rho * x_ref
            x = x0
            for _ in range(int(o.tv_rounds)):
                w = 1.0 / (grad2d(x).pow(2).sum(1, keepdim=True) + eps * eps).sqrt()
                x = cg(lambda v, w=w: ctx.AT(ctx.A(v)) / s2 + rho * v - mu * div2d(w * grad2d(v)),
                              rhs, x0=x, iters=int(o.dc_iters), tol=0.0)
        return apply_box(x, o.box)

    def _block_value(self, ctx, k, zk, fk, v1, anchor_ref, rho, last_tied):
        """Per-sample value of the terms of J that depend on z_k, given f_k = F_k(z_k), v1 = v(z_k, τ_k)."""
        o = self.options
        if k == 0:
            val = float(o.radial_weight) * latent_penalty(zk, o.latent_reg)
        else:
            val = 0.5 * rho[k - 1] * (zk - anchor_ref).pow(2).reshape(zk.shape[0], -1).sum(1)
        if o.state_norm_weight > 0 and k > 0:
            val = val + float(o.state_norm_weight) * self._state_norm(ctx, zk, v1, ctx.run.taus[k])[0]
        if last_tied:
            val = val + 0.5 / ctx.run.s2v * (ctx.A(fk) - ctx.y).pow(2).reshape(zk.shape[0], -1).sum(1)
            if o.tv_weight > 0:
                val = val + float(o.tv_weight) * tv_norm(fk, float(o.tv_eps))
        else:
            val = val + 0.5 * rho[k] * (ctx.run.z[k + 1] - fk).pow(2).reshape(zk.shape[0], -1).sum(1)
        return val

    def _vjp_block(self, ctx, k, z, Fc, vfirst, ga, ca, rho, last_tied):
        r"""One exact-gradient step on block k: g = anchor gradient + J_{F_k}^\top(coupling gradient)
        (+ exact ∇S_k), one autograd graph of segment k only; preconditioned by the J-free curvature and
        safeguarded by an Armijo backtracking on the block objective (per sample)."""
        o = self.options
        s2, mu, ws = ctx.run.s2, float(o.tv_weight), float(o.state_norm_weight)
        zk = z[k]
        with torch.enable_grad():
            zz = zk.detach().requires_grad_(True)
            f, v1 = self._segment(ctx, k, zz, keep_first=ws > 0 and k > 0)
            fd = f.detach()
            if last_tied:
                gout = ctx.AT(ctx.A(fd) - ctx.y) / s2
                if mu > 0:
                    gout = gout + mu * self._tv_grad(fd)
            else:
                gout = -rho[k] * (z[k + 1] - fd)
            obj = (f * gout).sum()
            if v1 is not None:
                obj = obj + ws * self._state_norm(ctx, zz, v1, ctx.run.taus[k])[0].sum()
            (gc,) = torch.autograd.grad(obj, zz)
        del f, v1, obj, zz
        with torch.no_grad():
            g = ga + gc
            if last_tied:
                cc = ca.clamp_min(1e-8)
                p = cg(lambda v: ctx.AT(ctx.A(v)) / s2 + per_sample(cc, v) * v, g, iters=int(o.dc_iters), tol=0.0)
            else:
                p = g / per_sample(ca + rho[k], g)
            anchor_ref = Fc[k - 1] if k > 0 else None
            phi0 = self._block_value(ctx, k, zk, Fc[k], vfirst[k], anchor_ref, rho, last_tied)
            slope = bdot(g, p)
            eta = torch.full_like(phi0, float(o.step_size))
            done = torch.zeros_like(phi0, dtype=torch.bool)
            znew, fnew, vnew = zk.clone(), Fc[k].clone(), vfirst[k]
            for _ in range(self.max_backtracks):
                zt = zk - per_sample(eta, zk) * p
                ft, vt = self._segment(ctx, k, zt, keep_first=ws > 0)
                phi = self._block_value(ctx, k, zt, ft, vt, anchor_ref, rho, last_tied)
                ok = (~done) & torch.isfinite(phi) & (phi <= phi0 - 1e-4 * eta * slope)
                m = per_sample(ok, zk)
                znew, fnew = torch.where(m, zt, znew), torch.where(m, ft, fnew)
                vnew = torch.where(m, vt, vnew) if vt is not None else None
                done = done | ok
                if bool(done.all()):
                    break
                eta = torch.where(done, eta, 0.5 * eta)
            z[k], Fc[k], vfirst[k] = znew, fnew, vnew

    def _anchor(self, ctx, k, z, Fc, vfirst, rho, exact: bool):
        """Gradient and curvature (per sample) of the terms anchoring block k (latent prior or incoming
        trajectory penalty, + the state-norm term: its J-free gradient unless ``exact``)."""
        o = self.options
        lam, ws, taus = float(o.radial_weight), float(o.state_norm_weight), ctx.run.taus
        zk = z[k]
        if k == 0:
            ga = lam * latent_penalty_grad(zk, o.latent_reg)
            ca = lam * latent_penalty_curvature(zk, o.latent_reg)
        else:
            ga = rho[k - 1] * (zk - Fc[k - 1])
            ca = torch.full((ctx.batch,), rho[k - 1], dtype=zk.dtype, device=zk.device)
        if ws > 0 and k > 0:
            ca = ca + ws * (1.0 - taus[k]) ** 2
            if not exact:
                _, e, n = self._state_norm(ctx, zk, vfirst[k], taus[k])
                ga = ga + ws * (1.0 - taus[k]) * per_sample(1.0 - (1.0 - taus[k]) * ctx.run.c_d / n, e) * e
        return ga, ca

    def _jfree_update(self, ctx, k, z, Fc, vfirst, rho, last_tied):
        """The Jacobian-free preconditioned step on block k (returns the new z_k; Fc is not updated)."""
        o = self.options
        zk = z[k]
        ga, ca = self._anchor(ctx, k, z, Fc, vfirst, rho, exact=False)
        if last_tied:  # J-free step on the data-coupled block = a shifted DC solve
            cc = ca.clamp_min(1e-8)
            u = self._dc(ctx, Fc[k] - ga / per_sample(cc, ga), per_sample(cc, ga), Fc[k])
            return zk + o.step_size * (0.5 if o.sweep == "jacobi" else 1.0) * (u - Fc[k])
        g = ga - rho[k] * (z[k + 1] - Fc[k])
        # Jacobi moves both ends of each gap at once: half steps, else the chain over-corrects and oscillates
        eta = o.step_size * (0.5 if o.sweep == "jacobi" else 1.0)
        return zk - eta * g / per_sample(ca + rho[k], g)

    def _segments_batched(self, ctx, zs, keep_first: bool = False):
        """All K segment maps F_k(z_k) at once: the K states are stacked into one batch of K·B images with
        per-image times, so every ODE step is one network call (segments with fewer steps than the
        longest take zero-length steps at the end). Returns ``(Fc, vfirst)`` lists of K tensors."""
        o = self.options
        grids = ctx.run.grids
        K, B = len(zs), zs[0].shape[0]
        n_max = max(len(g) - 1 for g in grids)
        tt = torch.tensor([g + [g[-1]] * (n_max + 1 - len(g)) for g in grids], dtype=torch.float64)  # (K, n_max+1)
        x = torch.cat(zs, 0)
        dev, dt = x.device, x.dtype
        first = []

        def vel(xx, t):
            out = ctx.prior(xx, t.reshape(-1))
            if keep_first and not first:
                first.append(out)
            return out

        for i in range(n_max):
            t = tt[:, i].repeat_interleave(B).to(dev, dt).reshape(-1, 1, 1, 1)
            h = (tt[:, i + 1] - tt[:, i]).repeat_interleave(B).to(dev, dt).reshape(-1, 1, 1, 1)
            x = ode_step(o.ode_method, vel, x, t, h)
        Fc = list(x.split(B, 0))
        vfirst = list(first[0].split(B, 0)) if first else [None] * K
        return Fc, vfirst

    # ---- the solver -------------------------------------------------------------------------------
    def _solve(self, ctx: SolveContext) -> torch.Tensor:
        o = self.options
        K = int(o.segments)
        ctx.run = SimpleNamespace()  # this call's state lives on its context: one solver object is re-entrant
        ctx.run.grids = segment_grids(K, int(o.steps))
        full = [0.0] + [t for g in ctx.run.grids for t in g[1:]]
        inv = full if o.inverse_steps is None else [i / int(o.inverse_steps) for i in range(int(o.inverse_steps) + 1)]
        ctx.run.s2 = s2 = ctx.noise_std(o.noise_std) ** 2  # (B, 1, 1, 1): σ per sinogram
        ctx.run.s2v = s2.reshape(-1)
        h, w = ctx.op.domain_shape
        ctx.run.c_d = chi_norm_mean(int(h) * int(w))
        lam, ws, mu = float(o.radial_weight), float(o.state_norm_weight), float(o.tv_weight)
        tied, vjp = o.x_mode == "tied", not o.jacobian_free
        jacobi = o.sweep == "jacobi"
        ctx.run.taus = taus = [k / K for k in range(K + 1)]
        rho0 = o.rho_list()

        # initialisation: z_0 (blend or noise), then roll-out so that all penalties start at 0
        with torch.no_grad():
            z = [initial_latent(ctx, o.init, o.blend, inv, o.ode_method)]
            Fc, vfirst = [], []
            for k in ctx.progress(range(K), desc="msflow roll-out"):
                f, v1 = self._segment(ctx, k, z[k], keep_first=ws > 0)
                Fc.append(f)
                vfirst.append(v1)
                z.append(f.clone())
        ctx.run.z = z
        # z[K] is x; in tied mode it is always Fc[K-1]

        x = z[K]
        with torch.no_grad():  # only the vjp variant builds a (one-segment) graph, under enable_grad
            for it in ctx.progress(range(int(o.iterations)), desc="msflow sweeps"):
                cap = float("inf") if o.rho_max is None else float(o.rho_max)
                rho = [min(r * float(o.rho_growth) ** it, max(cap, r)) for r in rho0]
                if jacobi:
                    for _ in range(int(o.inner_steps)):
                        # every block from the previous iterate, then all K segment maps in one batched solve
                        znew = [self._jfree_update(ctx, k, z, Fc, vfirst, rho, tied and k == K - 1) for k in range(K)]
                        z[:K] = znew
                        Fc, vfirst = self._segments_batched(ctx, z[:K], keep_first=ws > 0)
                else:
                    for k in range(K):
                        last_tied = tied and k == K - 1
                        for _ in range(int(o.inner_steps)):
                            if vjp:
                                ga, ca = self._anchor(ctx, k, z, Fc, vfirst, rho, exact=True)
                                self._vjp_block(ctx, k, z, Fc, vfirst, ga, ca, rho, last_tied)
                            else:
                                z[k] = self._jfree_update(ctx, k, z, Fc, vfirst, rho, last_tied)
                                Fc[k], vfirst[k] = self._segment(ctx, k, z[k], keep_first=ws > 0)
                with torch.no_grad():
                    if tied:
                        x = Fc[K - 1]
                    else:
                        x = self._dc(ctx, Fc[K - 1], rho[K - 1], z[K])
                    z[K] = x
                    # logging (every F_k(z_k) in Fc is current)
                    data = float((0.5 / s2 * (ctx.A(x) - ctx.y).pow(2)).sum())
                    radial = float(lam * latent_penalty(z[0], o.latent_reg).sum())
                    n_pen = K - 1 if tied else K
                    traj = sum(float(0.5 * rho[k] * (z[k + 1] - Fc[k]).pow(2).sum()) for k in range(n_pen))
                    gap = max(
                        (float((_norms(z[k + 1] - Fc[k]) / _norms(z[k + 1]).clamp_min(1e-12)).max())
                         for k in range(n_pen)),
                        default=0.0,
                    )
                    terms = {"data": data, "radial": radial, "trajectory": traj, "gap": gap}
                    obj = data + radial + traj
                    if ws > 0:
                        sn = sum(float(ws * self._state_norm(ctx, z[k], vfirst[k], taus[k])[0].sum()) for k in range(1, K))
                        terms["state_norm"] = sn
                        obj += sn
                    if mu > 0:
                        tv = float(mu * tv_norm(x, float(o.tv_eps)).sum())
                        terms["tv"] = tv
                        obj += tv
                    if float(o.rho_growth) != 1.0:
                        terms["rho"] = rho[K - 1]
                    terms["objective"] = obj
                ctx.log(x, **terms)
                if ctx.stop:
                    break
        if tied:
            x = apply_box(x, o.box)
        return x.detach()
