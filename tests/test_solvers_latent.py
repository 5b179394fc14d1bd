r"""D-Flow and MS-Flow against closed-form oracles of an analytic Gaussian prior.

Set-up: 8×8 images (d = 64), a 5-angle parallel-beam matrix operator (65 rays, rank ≈ 40), a
squared-exponential prior covariance Σ (variance 0.25, length 2 px, nugget 0.02), prior mean μ a
smooth bump, noise σ = 0.05, all in float64. The exact velocity of N(μ, Σ) is affine in x, so every
numerical flow map (ψ for D-Flow, F_k for the MS-Flow segments) is an affine map m + Mz that the tests
recover by probing. Oracles:

* MAP = posterior mean = μ + ΣAᵀ(AΣAᵀ + σ²I)⁻¹(y − Aμ);
* the D-Flow optimum of the discretised problem, min_z ½σ⁻²‖A(m + Mz) − y‖² + ½‖z‖² (= the MAP up to
  the ODE discretisation error, 2e-3 for 6 midpoint steps);
* the MS-Flow stationary points at finite ρ (one linear system in (z_0..z_K)): the exact one
  (``jacobian_free=False``) and the Jacobian-free fixed point (J_F replaced by I in every block gradient).
  The latter is *not* a stationary point of J: as ρ → ∞ it tends to λz_0 = −Aᵀ(Ax−y)/σ², i.e. the
  whole-flow Jacobian is dropped, which for this prior sits ≈ 7 % from the MAP.

Tolerances are stated at each assertion. MS-Flow's block Gauss–Seidel converges slowly (error factor
≈ 0.93 per sweep at ρ = 10 here: prior-determined directions are held only by the weak z_0 anchor
against a chain of stiffness ρ), hence 60 sweeps and 2–3 % tolerances against the stationary points.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import ctflow
from ctflow.priors.unet import ConfigError
from ctflow.priors.gaussian import GaussianPrior
from ctflow.priors.velocity import VelocityModel
from ctflow.solvers import get_solver
from ctflow.solvers.tv_ops import tv_norm
from ctflow.solvers.latent.dflow import integrate
from ctflow.solvers.latent.msflow import segment_grids

from .gaussian_problems import PerSample

pytestmark = pytest.mark.usefixtures("one_thread")

SIGMA = 0.05
K, N, METHOD = 3, 6, "midpoint"  # MS-Flow grid used throughout (uniform, same as D-Flow with steps=6)


def rel(a, b) -> float:
    return float(torch.as_tensor(a - b).norm() / torch.as_tensor(b).norm())


def _affine(prior, grid, method):
    """The numerical flow map over ``grid`` as (m, M) with F(z) = m + M z (exact: the velocity is affine)."""
    with torch.no_grad():
        m = integrate(prior, torch.zeros(1, 1, 8, 8, dtype=torch.float64), grid, method).reshape(-1)
        E = torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)
        M = (integrate(prior, E, grid, method).reshape(64, -1) - m).T
    return m.numpy(), M.numpy()


def _dflow_optimum(psi, A, y):
    m, M = psi
    H = M.T @ A.T @ A @ M / SIGMA**2 + np.eye(64)
    z = np.linalg.solve(H, M.T @ A.T @ (y - A @ m) / SIGMA**2)
    return m + M @ z


def _msflow_stationary(maps, A, y, rho, jfree):
    """Stationary point of MS-Flow (free x, gaussian R, λ = 1) for affine segment maps; returns x = z_K."""
    d, Kk = 64, len(maps)
    n = (Kk + 1) * d
    L, rhs, eye = np.zeros((n, n)), np.zeros(n), np.eye(d)

    def blk(i):
        return slice(i * d, (i + 1) * d)

    for k in range(Kk + 1):
        r = blk(k)
        if k == 0:
            L[r, blk(0)] += eye
        else:  # + ρ r_{k-1},  r_{k-1} = z_k − M z_{k−1} − m
            m, M = maps[k - 1]
            L[r, blk(k)] += rho * eye
            L[r, blk(k - 1)] -= rho * M
            rhs[r] += rho * m
        if k < Kk:  # − J^T ρ r_k
            m, M = maps[k]
            J = eye if jfree else M
            L[r, blk(k + 1)] -= rho * J.T
            L[r, blk(k)] += rho * J.T @ M
            rhs[r] -= rho * J.T @ m
        else:  # data term on x
            L[r, blk(Kk)] += A.T @ A / SIGMA**2
            rhs[r] += A.T @ y / SIGMA**2
    return np.linalg.solve(L, rhs)[Kk * d :]


@pytest.fixture(scope="module")
def P(one_thread):
    torch.manual_seed(0)
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry((8, 8), 5), backend="matrix")
    ii, jj = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    pts = np.stack([ii.ravel(), jj.ravel()], 1).astype(float)
    cov = 0.25 * np.exp(-((pts[:, None] - pts[None]) ** 2).sum(-1) / (2 * 2.0**2)) + 0.02 * np.eye(64)
    mean = 0.5 * np.exp(-((ii - 3.5) ** 2 + (jj - 3.5) ** 2) / 12.0)
    prior = GaussianPrior(torch.tensor(mean), torch.tensor(cov))
    g = torch.Generator().manual_seed(1)
    truth = prior.sample(2, g).reshape(2, 1, 8, 8)
    y = op(truth)
    y = y + SIGMA * torch.randn(y.shape, generator=g, dtype=torch.float64)
    A = op.backend.scipy_matrix().toarray()
    yf = y.reshape(2, -1).numpy()
    G = A @ cov @ A.T + SIGMA**2 * np.eye(A.shape[0])
    xmap = mean.ravel() + cov @ A.T @ np.linalg.solve(G, yf[0] - A @ mean.ravel())
    grids = segment_grids(K, N)
    full = [0.0] + [t for gr in grids for t in gr[1:]]
    maps = [_affine(prior, gr, METHOD) for gr in grids]
    ns = types.SimpleNamespace(
        op=op, prior=prior, y=y[:1], y2=y, A=A,
        xmap=torch.tensor(xmap).reshape(1, 1, 8, 8),
        xdflow=torch.tensor(_dflow_optimum(_affine(prior, full, METHOD), A, yf[0])).reshape(1, 1, 8, 8),
        ms_exact10=torch.tensor(_msflow_stationary(maps, A, yf[0], 10.0, jfree=False)).reshape(1, 1, 8, 8),
        ms_jfree10=torch.tensor(_msflow_stationary(maps, A, yf[0], 10.0, jfree=True)).reshape(1, 1, 8, 8),
    )
    return ns


def dflow(**kw):
    o = dict(latent_reg="gaussian", latent_weight=1.0, steps=N, ode_method=METHOD, noise_std=SIGMA)
    o.update(kw)
    return get_solver("dflow", **o)


def msflow(**kw):
    o = dict(latent_reg="gaussian", radial_weight=1.0, segments=K, steps=N, ode_method=METHOD, noise_std=SIGMA,
             rho=10.0)
    o.update(kw)
    return get_solver("msflow", **o)


def nonincreasing(v, rtol=1e-9):
    return all(b <= a + rtol * abs(a) for a, b in zip(v, v[1:]))


# ---- oracle sanity ---------------------------------------------------------------------------------
def test_oracles_are_consistent(P):
    # the discretised D-Flow optimum is the MAP up to the ODE error; MS-Flow's exact stationary point is
    # a penalty approximation of it, the J-free fixed point is biased
    assert rel(P.xdflow, P.xmap) < 5e-3
    assert rel(P.ms_exact10, P.xdflow) < 0.15
    assert rel(P.ms_jfree10, P.ms_exact10) > 1e-2


# ---- D-Flow ------------------------------------------------------------------------------------------
def test_dflow_gaussian_reaches_closed_form_map(P):
    # 12 outer iterations: at 8 the strong-Wolfe line search's path is still rounding-sensitive (2.7e-4 from the
    # optimum on one BLAS, < 1e-4 on another); from 12 on it sits at 1.6e-6 on both
    rec = dflow(iterations=12)(P.y, P.op, P.prior)
    assert rel(rec.image, P.xdflow) < 1e-4  # L-BFGS converged on the discretised problem
    assert rel(rec.image, P.xmap) < 5e-3  # = MAP up to the 6-step midpoint discretisation (2e-3)
    h = rec.history
    assert nonincreasing(h["objective"]) and h["objective"][-1] < 0.5 * h["objective"][0]
    assert set(h) >= {"data", "latent", "objective", "data_misfit"}
    assert rec.nfe > 0


def test_dflow_default_radial_box_and_misfit(P):
    rec = get_solver("dflow", iterations=3, lbfgs_max_iter=5, noise_std=SIGMA, box=(0.0, 1.0))(P.y, P.op, P.prior)
    assert float(rec.image.min()) >= 0.0 and float(rec.image.max()) <= 1.0
    assert rec.history["data_misfit"][-1] < rec.history["data_misfit"][0]
    assert nonincreasing(rec.history["objective"])


def test_dflow_batch_equals_separate_runs(P):
    s = dflow(iterations=2, lbfgs_max_iter=6, blend=1.0)  # blend 1: no noise, so samples are comparable
    v = VelocityModel(PerSample(P.prior))
    both = s(P.y2, P.op, v).image
    for i in range(2):
        one = s(P.y2[i : i + 1], P.op, v).image
        assert torch.equal(both[i : i + 1], one)


def test_dflow_seed_determinism(P):
    a = dflow(iterations=1, lbfgs_max_iter=3, blend=0.5, seed=3)(P.y, P.op, P.prior).image
    b = dflow(iterations=1, lbfgs_max_iter=3, blend=0.5, seed=3)(P.y, P.op, P.prior).image
    c = dflow(iterations=1, lbfgs_max_iter=3, blend=0.5, seed=4)(P.y, P.op, P.prior).image
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "opt",
    [dict(latent_weight=-1.0), dict(latent_reg="l1"), dict(blend=1.5), dict(steps=0), dict(box=(1.0, 0.0)),
     dict(ode_method="rk45"), dict(init="svd"), dict(noise_std=-0.1)],
)
def test_dflow_bad_options(opt):
    name = next(iter(opt))
    with pytest.raises(ConfigError, match=name):
        get_solver("dflow", **opt)


# ---- MS-Flow: convergence to its stationary points and the ρ → ∞ limit ------------------------------
def test_msflow_vjp_converges_to_exact_stationary_point(P):
    rec = msflow(jacobian_free=False, iterations=60)(P.y, P.op, P.prior)
    assert rel(rec.image, P.ms_exact10) < 2e-2
    h = rec.history
    assert nonincreasing(h["objective"])  # exact block steps with Armijo + exact DC: monotone descent
    assert set(h) >= {"data", "radial", "trajectory", "gap", "objective", "data_misfit"}
    # it approaches the MAP (up to the penalty bias of ρ = 10, ≈ 8 %)
    first = msflow(jacobian_free=False, iterations=1)(P.y, P.op, P.prior).image
    assert rel(rec.image, P.xmap) < 0.1 and rel(rec.image, P.xmap) < 0.5 * rel(first, P.xmap)


def test_msflow_jacobian_free_converges_to_its_fixed_point(P):
    rec = msflow(iterations=60)(P.y, P.op, P.prior)
    assert rel(rec.image, P.ms_jfree10) < 3e-2
    h = rec.history
    assert h["objective"][-1] < 0.25 * h["objective"][0]
    assert h["data_misfit"][-1] < h["data_misfit"][0]


@pytest.mark.parametrize("jacobian", ["vjp", "free"])
def test_msflow_large_rho_is_consistent_and_matches_dflow(P, jacobian):
    # started on D-Flow's optimum (blend 1: z_0 = ψ⁻¹(x_dflow), then the roll-out), MS-Flow with a large ρ
    # keeps a consistent trajectory and stays at D-Flow's image (ρ → ∞: MS-Flow = D-Flow reparametrised)
    rec = msflow(rho=1e3, jacobian_free=jacobian == "free", iterations=20, blend=1.0)(P.y, P.op, P.prior, x_init=P.xdflow)
    assert rec.history["gap"][-1] < 1e-2
    assert rel(rec.image, P.xdflow) < (5e-3 if jacobian == "vjp" else 1e-2)


def test_msflow_rho_continuation_reaches_consistency(P):
    rec = msflow(rho=1.0, rho_growth=1.3, rho_max=1e4, iterations=45)(P.y, P.op, P.prior)
    h = rec.history
    assert h["rho"][0] == 1.0 and h["rho"][1] == 1.3 and h["rho"][-1] == 1e4
    assert h["gap"][-1] < 1e-2 < h["gap"][0]
    assert rel(rec.image, P.xmap) < 0.15  # J-free: biased (≈ 7 % here), see the module docstring


def test_msflow_tied_mode(P):
    for jac, its in (("free", 30), ("vjp", 8)):
        rec = msflow(x_mode="tied", jacobian_free=jac == "free", iterations=its)(P.y, P.op, P.prior)
        h = rec.history
        assert h["data_misfit"][-1] < h["data_misfit"][0]
        if jac == "vjp":
            assert nonincreasing(h["objective"])
        else:
            assert rel(rec.image, P.xmap) < 0.15


def test_msflow_memory_structure(P):
    """J-free never evaluates the prior with autograd on; the VJP variant builds graphs of ≤ one segment."""

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.flags = []

        def forward(self, x, t):
            # None: no graph; "leaf": a graph starts here (input is a leaf); "node": inside a graph
            on = torch.is_grad_enabled() and x.requires_grad
            self.flags.append(None if not on else ("leaf" if x.grad_fn is None else "node"))
            return P.prior(x, t)

    def longest_graph(flags):  # most velocity calls recorded in one autograd graph
        best = cur = 0
        for f in flags:
            cur = 0 if f is None else (1 if f == "leaf" else cur + 1)
            best = max(best, cur)
        return best

    rec = Recorder()
    msflow(iterations=2)(P.y, P.op, VelocityModel(rec))
    assert rec.flags and not any(rec.flags)
    rec.flags.clear()
    msflow(jacobian_free=False, iterations=2, state_norm_weight=0.1)(P.y, P.op, VelocityModel(rec))
    assert longest_graph(rec.flags) == (N // K) * 2  # one segment of 2 midpoint steps
    rec.flags.clear()
    dflow(iterations=1, lbfgs_max_iter=1)(P.y, P.op, VelocityModel(rec))
    assert longest_graph(rec.flags) == N * 2  # D-Flow: the whole trajectory


# ---- ablation terms --------------------------------------------------------------------------------
def test_msflow_ablation_terms_act_in_the_expected_direction(P):
    base = msflow(iterations=10)(P.y, P.op, P.prior)
    assert float(base.image.min()) < -0.05  # the unconstrained result has negative pixels

    nn_ = msflow(iterations=10, box=(0.0, None))(P.y, P.op, P.prior).image
    assert float(nn_.min()) >= 0.0
    bx = msflow(iterations=10, box=(0.0, 0.6))(P.y, P.op, P.prior).image
    assert float(bx.min()) >= 0.0 and float(bx.max()) <= 0.6

    tv0 = float(tv_norm(base.image).sum())
    for mode in ("free", "tied"):
        rec = msflow(iterations=10, tv_weight=50.0, x_mode=mode)(P.y, P.op, P.prior)
        assert float(tv_norm(rec.image).sum()) < 0.9 * tv0
        assert "tv" in rec.history

    def sn(w, jac):
        h = msflow(iterations=10, state_norm_weight=w, jacobian_free=jac == "free")(P.y, P.op, P.prior).history
        return h["state_norm"][-1] / w

    for jac in ("free", "vjp"):
        assert sn(5.0, jac) < 0.5 * sn(1e-9, jac)

    def radial(w):  # R_rad(z_0); blend 1 starts far from its minimum (ψ⁻¹ of the noisy FBP is long)
        h = msflow(iterations=5, latent_reg="radial", radial_weight=w, blend=1.0)(P.y, P.op, P.prior).history
        return h["radial"][-1] / w

    assert radial(10.0) < radial(1.0) < radial(0.1)
    off = msflow(iterations=3, radial_weight=0.0)(P.y, P.op, P.prior).history["radial"]
    assert off == [0.0, 0.0, 0.0]


# ---- options, determinism, batches ----------------------------------------------------------------
@pytest.mark.parametrize(
    "opt, name",
    [
        (dict(rho=-1.0), "rho"),
        (dict(rho=(1.0, -2.0, 1.0)), "rho"),
        (dict(rho=(1.0, 2.0)), "rho"),
        (dict(radial_weight=-1.0), "radial_weight"),
        (dict(state_norm_weight=-0.1), "state_norm_weight"),
        (dict(tv_weight=-0.1), "tv_weight"),
        (dict(segments=7, steps=6), "K > N"),
        (dict(x_mode="latent"), "x_mode"),
        (dict(jacobian_free="full"), "jacobian_free"),
        (dict(step_size=2.5), "step_size"),
        (dict(rho_growth=0.5), "rho_growth"),
        (dict(box=(1.0, 0.0)), "box"),
        (dict(init="random"), "init"),
    ],
)
def test_msflow_bad_options(opt, name):
    with pytest.raises(ConfigError, match=name):
        msflow(**opt)


def test_msflow_seed_determinism_and_batch(P):
    a = msflow(iterations=3, blend=0.5, seed=1)(P.y, P.op, P.prior).image
    b = msflow(iterations=3, blend=0.5, seed=1)(P.y, P.op, P.prior).image
    c = msflow(iterations=3, blend=0.5, seed=2)(P.y, P.op, P.prior).image
    assert torch.equal(a, b) and not torch.equal(a, c)
    # equal up to CG's amplification of last-bit differences (see PerSample): ≤ 1e-4 relative
    for jac in ("free", "vjp"):
        s = msflow(iterations=3, blend=1.0, jacobian_free=jac == "free", tv_weight=1.0, state_norm_weight=0.1)
        both = s(P.y2, P.op, P.prior).image
        for i in range(2):
            one = s(P.y2[i : i + 1], P.op, P.prior).image
            assert rel(both[i : i + 1], one) < 1e-4


def test_msflow_rho_tuple_noise_init_callback_and_progress(P, capsys):
    rec = msflow(rho=(1.0, 2.0, 3.0), init="noise", iterations=3)(P.y, P.op, P.prior)
    assert len(rec.history["gap"]) == 3
    seen = []
    rec = msflow(iterations=5)(P.y, P.op, P.prior, callback=lambda d: seen.append(d["iteration"]) or True)
    assert seen == [0] and len(rec.history["objective"]) == 1
    msflow(iterations=1, progress=True)(P.y, P.op, P.prior)
    dflow(iterations=1, lbfgs_max_iter=2, progress=True)(P.y, P.op, P.prior)


def test_segment_grids():
    g = segment_grids(3, 7)
    assert [len(s) - 1 for s in g] == [2, 2, 3]
    assert [s[0] for s in g] == [0.0, 1 / 3, 2 / 3] and g[-1][-1] == 1.0
    flat = [t for s in g for t in s]
    assert all(b >= a for a, b in zip(flat, flat[1:]))


@pytest.mark.parametrize("x_mode", ["free", "tied"])
def test_msflow_jacobi_sweep_reaches_the_gauss_seidel_fixed_point(P, x_mode):
    """The Jacobi sweep (all blocks from the previous iterate, one batched network call per ODE step)
    converges to the same Jacobian-free fixed point as Gauss–Seidel, with ⌈N/K⌉ batched ODE steps per
    sweep instead of N."""
    gs = msflow(x_mode=x_mode, iterations=150)(P.y, P.op, P.prior)
    ja = msflow(x_mode=x_mode, iterations=300, sweep="jacobi")(P.y, P.op, P.prior)
    assert rel(ja.image, gs.image) < 2e-3
    one = msflow(x_mode=x_mode, iterations=1, sweep="jacobi")(P.y, P.op, P.prior).nfe
    two = msflow(x_mode=x_mode, iterations=2, sweep="jacobi")(P.y, P.op, P.prior).nfe
    from ctflow.priors.ode import NFE_PER_STEP

    assert two - one == NFE_PER_STEP[METHOD] * -(-N // K)  # one sweep: ⌈N/K⌉ batched steps
    with pytest.raises(ConfigError, match="jacobian_free"):
        msflow(sweep="jacobi", jacobian_free=False)
