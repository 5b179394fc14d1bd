"""ΠGFM (``pigfm``) and C-ΠGFM (``cpigfm``): the conjugate map, the projector, the coefficient
integrals, and the samplers against closed-form Gaussian oracles on small CT operators.

Oracles. For a Gaussian prior both samplers are *affine* in their starting noise ε (the velocity is
affine in x, the Jacobians are constant), so the mean over ε of the output equals the output for ε = 0;
the ``zero_noise`` fixture uses that to test means deterministically (``test_zero_noise_is_the_mean``
checks the argument by Monte Carlo). For the prior N(μ, I) and noiseless data the ΠGDM
Gaussian approximation is exact (Cov[x₁|x_t] = r_t² I), so ΠGFM with ``guidance=1`` integrates the
exact posterior flow; its only bias is the start x = t_s·A⁺y + (1 − t_s)ε, whose null-space mean is 0
instead of t_s·(I − P)μ. The flow carries that offset to x₁ = A⁺y + (1 − t_s/√(t_s² + (1 − t_s)²))·(I − P)μ,
the limit the Euler iterates must converge to (the posterior mean is A⁺y + (I − P)μ).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ctflow
from ctflow.priors.unet import ConfigError
from ctflow.priors.gaussian import GaussianPrior
from ctflow.solvers import get_solver
from ctflow.solvers.context import SolveContext
from ctflow.solvers.linalg import pseudo_inverse
from ctflow.solvers.guided.cpigfm import (
    SCHEDULES,
    conjugate_coefficients,
    conjugate_map,
    conjugate_map_inverse,
    schedule_exponents,
    time_grid,
)
from ctflow.solvers.guided.pigfm import guided_denoise

pytestmark = pytest.mark.usefixtures("one_thread")

N = 8  # 8×8 images, 3 angles: A is 39×64 of rank 30 (all kept singular values ≥ 0.009 σ_max, the rest exactly 0)


def dense(op) -> torch.Tensor:
    h, w = op.domain_shape
    eye = torch.eye(h * w, dtype=torch.float64).reshape(-1, 1, h, w)
    return op(eye).reshape(h * w, -1).T.contiguous()


@pytest.fixture(scope="module")
def small():
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(N, 3), backend="matrix")
    pinv = pseudo_inverse(op, rcond=1e-3)
    Q, _ = torch.linalg.qr(pinv.V64)  # re-orthonormalised basis: an exact projector in float64

    def exact_P(x):
        f = x.reshape(-1, N * N)
        return ((f @ Q) @ Q.T).reshape(x.shape)

    rng = np.random.default_rng(0)
    mu = torch.tensor(rng.uniform(0.0, 1.0, (N, N)))
    yy, xx = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    pts = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    se_cov = torch.tensor(0.09 * np.exp(-d2 / (2 * 2.0**2)) + 0.01 * np.eye(N * N))
    return dict(op=op, M=dense(op), pinv=pinv, P=exact_P, mu=mu, se_cov=se_cov)


def _zeros(self, shape=None, n=None):
    s = tuple(shape or self.image_shape)
    return torch.zeros(s if n is None else (n, *s), dtype=self.dtype)


@pytest.fixture
def zero_noise(monkeypatch):
    monkeypatch.setattr(SolveContext, "randn", _zeros)


def data_for(small, prior, seed=1):
    x = prior.sample(1, torch.Generator().manual_seed(seed)).reshape(1, 1, N, N)
    return small["op"](x)


def posterior_mean(small, cov, y):
    M, mu = small["M"], small["mu"].reshape(-1)
    K = M @ cov @ M.T
    u = torch.linalg.lstsq(K, y.reshape(-1) - M @ mu, rcond=1e-10, driver="gelsd").solution  # gelsy fails here
    return (mu + cov @ M.T @ u).reshape(1, 1, N, N)


# ---- the projector and the pseudo-inverse ----------------------------------------------------------
def test_svd_projector_and_pseudo_inverse(small):
    op, pinv, M = small["op"], small["pinv"], small["M"]
    d = N * N
    Pm = pinv.project(torch.eye(d, dtype=torch.float64).reshape(d, 1, N, N)).reshape(d, d)
    assert torch.allclose(Pm, Pm.T, atol=1e-12)
    # idempotent up to the float32 storage of the cached eigenbasis (linalg.py keeps V as float32)
    assert float((Pm @ Pm - Pm).abs().max()) < 1e-6
    assert abs(float(torch.trace(Pm)) - pinv.rank) < 1e-5 and pinv.rank == 30
    assert float((M @ Pm - M).abs().max()) < 1e-6 * float(M.abs().max())  # A P = A
    x = torch.randn(3, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # A⁺A x = P x; A⁺ = VΣ⁻²VᵀAᵀ amplifies the float32 rounding of V by κ² ≈ 1e4 here
    assert float((pinv.pinv(op(x)) - pinv.project(x)).norm() / x.norm()) < 1e-3
    y = torch.randn(3, 1, *op.range_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lhs = (pinv.pinv(y) * x).sum()
    rhs = (y * pinv.pinv_t(x)).sum()
    assert abs(float(lhs - rhs)) < 1e-10 * float(lhs.abs() + rhs.abs())  # ⟨A⁺y, x⟩ = ⟨y, A⁺ᵀx⟩
    # the QR-orthonormalised projector the map tests use is exact in float64
    Pe = small["P"](torch.eye(d, dtype=torch.float64).reshape(d, 1, N, N)).reshape(d, d)
    assert float((Pe @ Pe - Pe).abs().max()) < 1e-13 and float((Pe - Pm).abs().max()) < 1e-6


# ---- the conjugate map ------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_conjugate_map_inverse_is_exact(small, schedule, lam):
    x = torch.randn(2, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for t in (0.05, 0.3, 0.7, 0.95):
        kw = dict(schedule=schedule, guidance=3.0, lam=lam)
        for P, tol in ((small["P"], 1e-10), (small["pinv"].project, 1e-5)):
            back = conjugate_map_inverse(conjugate_map(x, t, P, **kw), t, P, **kw)
            fwd = conjugate_map(conjugate_map_inverse(x, t, P, **kw), t, P, **kw)
            scale = math.exp(abs(schedule_exponents(t, **kw)[1]))  # error grows with the P-gain e^{|b|}
            assert float((back - x).norm() / x.norm()) < tol * scale
            assert float((fwd - x).norm() / x.norm()) < tol * scale


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_conjugate_map_derivative(small, schedule):
    """d/dt A_t = A_t (λI + w_t P): the map absorbs the stiff term −w_t P x (b' = w_t)."""
    P, lam, w, t, h = small["P"], 0.4, 2.5, 0.45, 1e-5
    x = torch.randn(1, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw = dict(schedule=schedule, guidance=w, lam=lam)
    fd = (conjugate_map(x, t + h, P, **kw) - conjugate_map(x, t - h, P, **kw)) / (2 * h)
    wt = SCHEDULES[schedule][0](t, w)
    exact = conjugate_map(lam * x + wt * P(x), t, P, **kw)
    assert float((fd - exact).norm() / exact.norm()) < 1e-8


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_coefficients_match_trapezoid(schedule):
    from scipy.integrate import trapezoid

    w, lam = 3.0, 0.5
    ts = time_grid(0.2, 5, schedule)
    c = conjugate_coefficients(schedule, w, lam, ts)
    wf, bf, _, _ = SCHEDULES[schedule]
    for i in range(5):
        u = np.linspace(0.0, 1.0, 200001)
        s = ts[i] + (ts[i + 1] - ts[i]) * u * u * (3 - 2 * u)  # clustered at both ends (steep e^b near t = 1)
        ea, eb1, wt = np.exp(lam * s), np.expm1(bf(s, w)), wf(s, w)
        ref = {
            "I1": ea, "I2": ea * eb1, "I3": wt * (1 - s) * ea, "I4": wt * (1 - s) * ea * eb1,
            "J1": wt * ea, "J2": wt * ea * eb1, "K1": wt * (1 - s) * ea, "K2": wt * (1 - s) * ea * eb1,
        }  # fmt: skip
        for k, f in ref.items():
            r = trapezoid(f, s)
            assert abs(c[k][i] - r) <= 1e-7 * max(abs(r), 1e-3), (schedule, k, i, c[k][i], r)


# ---- the VJP -----------------------------------------------------------------------------------------
def test_guided_denoise_vjp(small):
    prior = GaussianPrior(small["mu"], small["se_cov"])
    from ctflow.solvers.context import CountingVelocity

    ctx = type("C", (), {"prior": CountingVelocity(prior)})()
    x = torch.randn(2, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    target = torch.randn_like(x)
    t = 0.35
    lam = ((t * prior.eigvals - (1 - t)) / (t * t * prior.eigvals + (1 - t) ** 2))
    Jv = prior.eigvecs @ torch.diag(lam) @ prior.eigvecs.T  # constant Jacobian of the Gaussian velocity
    Jx1 = torch.eye(N * N, dtype=torch.float64) + (1 - t) * Jv
    v, x1, g = guided_denoise(ctx, x, t, target, small["P"], wrt="x1")
    r = (target - small["P"](x1)).reshape(2, -1)
    assert torch.allclose(g.reshape(2, -1), r @ Jx1, atol=1e-10)
    _, _, gv = guided_denoise(ctx, x, t, target, small["P"], wrt="v")
    assert torch.allclose(gv.reshape(2, -1), r @ Jv, atol=1e-10)
    assert ctx.prior.nfe == 2  # one network call per evaluation


# ---- ΠGFM against the exact oracle ------------------------------------------------------------------
def test_pigfm_converges_to_exact_posterior_flow(small, zero_noise):
    prior = GaussianPrior(small["mu"], torch.eye(N * N, dtype=torch.float64))
    y = data_for(small, prior)
    pinv = small["pinv"]
    Qmu = small["mu"].reshape(1, 1, N, N) - pinv.project(small["mu"].reshape(1, 1, N, N))
    x_post = posterior_mean(small, torch.eye(N * N, dtype=torch.float64), y)
    assert float((x_post - pinv.pinv(y) - Qmu).norm() / x_post.norm()) < 1e-3  # float32-stored V, see above
    ts = 0.1
    limit = pinv.pinv(y) + (1 - ts / math.hypot(ts, 1 - ts)) * Qmu
    errs = []
    for steps in (5, 20, 80):
        x = get_solver("pigfm", steps=steps, t_start=ts, rcond=1e-3)(y, small["op"], prior=prior).image
        errs.append(float((x - limit).norm()))
        assert float((small["op"](x) - y).norm()) < 1e-4 * float(y.norm())  # data consistent (P x = A⁺y)
    assert errs[0] > errs[1] > errs[2] and errs[2] < 2e-3 * float(limit.norm()), errs
    # the distance to the posterior mean is the start bias t_s‖(I−P)μ‖/√(t_s²+(1−t_s)²) (≈ 11 % of ‖(I−P)μ‖)
    bias = ts / math.hypot(ts, 1 - ts) * float(Qmu.norm())
    assert abs(float((x - x_post).norm()) - bias) < 0.02 * bias
    # and a start near t = 0 approaches the posterior mean itself
    x0 = get_solver("pigfm", steps=40, t_start=0.01, rcond=1e-3)(y, small["op"], prior=prior).image
    assert float((x0 - x_post).norm()) < 0.011 * float(Qmu.norm())


def test_zero_noise_is_the_mean(small, monkeypatch):
    prior = GaussianPrior(small["mu"], torch.eye(N * N, dtype=torch.float64))
    # 256 posterior samples (a batch of identical sinograms would give identical samples: one generator
    # per batch element, each seeded with the seed)
    y = data_for(small, prior).expand(1, 1, *small["op"].range_shape).clone()
    mean = get_solver("pigfm", steps=8, t_start=0.1, rcond=1e-3, n_samples=256)(y, small["op"], prior=prior).image[0]
    s = get_solver("pigfm", steps=8, t_start=0.1, rcond=1e-3)
    monkeypatch.setattr(SolveContext, "randn", _zeros)
    x0 = s(y[:1], small["op"], prior=prior).image[0]
    # null-space sample std ≈ (1 − t_s)/√(t_s² + (1 − t_s)²) ≈ 1 per direction, 34 directions
    assert float((mean - x0).norm()) < 4.0 * math.sqrt(34 / 256)


def test_pigfm_smooth_prior_beats_pseudo_inverse(small, zero_noise):
    """Σ ≠ I: ΠGDM's isotropic r_t² is an approximation, so ΠGFM is biased; it still lands far closer
    to the posterior mean than A⁺y or μ, with the error shrinking with NFE to a floor."""
    cov = small["se_cov"]
    prior = GaussianPrior(small["mu"], cov)
    y = data_for(small, prior)
    x_post = posterior_mean(small, cov, y)
    errs = []
    for steps in (10, 40, 160):
        x = get_solver("pigfm", steps=steps, t_start=0.1, rcond=1e-3)(y, small["op"], prior=prior).image
        errs.append(float((x - x_post).norm()))
    ref = float((small["pinv"].pinv(y) - x_post).norm())
    assert errs[0] > errs[1] and errs[2] <= 1.05 * errs[1], errs
    assert errs[2] < 0.5 * ref and errs[2] < 0.1 * float((small["mu"] - x_post).norm()), (errs, ref)


# ---- C-ΠGFM against a fine reference solution of its ODE --------------------------------------------
def reference_ode(small, prior, y, schedule, w, t0, jacobian=True, steps=400):
    """RK4 on dx/dt = v + w_t (∂x̂₁/∂x)ᵀ(A⁺y − P x̂₁) (or without the Jacobian), Gaussian prior."""
    P = small["pinv"].project
    yt = small["pinv"].pinv(y)
    U, lam_ = prior.eigvecs, prior.eigvals
    mu = prior.mean.reshape(1, 1, N, N)
    wf, _, _, t_end = SCHEDULES[schedule]

    def f(x, t):
        gain = (t * lam_ - (1 - t)) / (t * t * lam_ + (1 - t) ** 2)
        G = U @ torch.diag(gain) @ U.T
        v = mu + ((x - t * mu).reshape(1, -1) @ G).reshape(x.shape)
        x1 = x + (1 - t) * v
        r = yt - P(x1)
        if jacobian:
            r = r + (1 - t) * (r.reshape(1, -1) @ G).reshape(x.shape)
        return v + wf(t, w) * r

    x = t0 * yt
    ts = np.linspace(t0, t_end, steps + 1)
    for i in range(steps):
        t, h = ts[i], ts[i + 1] - ts[i]
        k1 = f(x, t)
        k2 = f(x + h / 2 * k1, t + h / 2)
        k3 = f(x + h / 2 * k2, t + h / 2)
        k4 = f(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_cpigfm_clean_converges_to_its_ode(small, zero_noise, lam):
    """faithful_quirks=False is a consistent first-order integrator of the guided ODE (v, g frozen per
    step; explicit head term λx̄Δt): relative error vs RK4 halves with each doubling of the steps."""
    prior = GaussianPrior(small["mu"], small["se_cov"])
    y = data_for(small, prior)
    w, t0 = 6.0, 0.2
    ref = reference_ode(small, prior, y, "v2", w, t0, jacobian=True)
    errs = []
    for steps in (5, 10, 20, 40):
        x = get_solver("cpigfm", steps=steps, t_start=t0, guidance=w, lam=lam, faithful_quirks=False, rcond=1e-3)(
            y, small["op"], prior=prior
        ).image
        errs.append(float((x - ref).norm() / ref.norm()))
    rates = [a / b for a, b in zip(errs, errs[1:])]
    assert all(1.8 < q < 2.2 for q in rates) and errs[-1] < 1e-2, errs  # first order: halves per doubling


def test_cpigfm_quirks_converge_to_the_jacobian_free_ode(small, zero_noise):
    """With the released code's extra Δt on the Jacobian term, that term vanishes as steps → ∞."""
    prior = GaussianPrior(small["mu"], small["se_cov"])
    y = data_for(small, prior)
    w, t0 = 6.0, 0.2
    ref = reference_ode(small, prior, y, "v2", w, t0, jacobian=False)
    errs = []
    for steps in (5, 20, 80):
        x = get_solver("cpigfm", steps=steps, t_start=t0, guidance=w, faithful_quirks=True, rcond=1e-3)(
            y, small["op"], prior=prior
        ).image
        errs.append(float((x - ref).norm() / ref.norm()))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 5e-3, errs


def test_cpigfm_pigfm_schedule_matches_pigfm(small, zero_noise):
    """C-ΠGFM with ΠGFM's weight (clean) approaches the same exact limit as ΠGFM, up to t_end = 1 − 1e-3."""
    prior = GaussianPrior(small["mu"], torch.eye(N * N, dtype=torch.float64))
    y = data_for(small, prior)
    ts = 0.1
    pinv = small["pinv"]
    Qmu = small["mu"].reshape(1, 1, N, N) - pinv.project(small["mu"].reshape(1, 1, N, N))
    limit = pinv.pinv(y) + (1 - ts / math.hypot(ts, 1 - ts)) * Qmu
    x = get_solver("cpigfm", steps=10, t_start=ts, guidance=1.0, schedule="pigfm", faithful_quirks=False, rcond=1e-3)(
        y, small["op"], prior=prior
    ).image
    assert float((x - limit).norm()) < 5e-3 * float(limit.norm())


# ---- a 32² CT problem ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ct32():
    from ctflow.physics.phantoms import ellipses_image, random_ellipses

    n = 32
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(n, 8), backend="matrix")
    truth = ellipses_image(random_ellipses(3, radius=14.0, n_ellipses=4), n, dtype=torch.float64)
    k = torch.exp(-torch.arange(-4, 5, dtype=torch.float64) ** 2 / (2 * 1.5**2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    blurred = torch.nn.functional.conv2d(truth[None, None], k[None, None], padding=4)[0, 0]
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    pts = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    cov = torch.tensor(0.04 * np.exp(-d2 / (2 * 1.5**2)) + 1e-3 * np.eye(n * n))
    prior = GaussianPrior(blurred, cov)
    y = op(truth[None, None])
    return dict(op=op, truth=truth[None, None], prior=prior, y=y)


def test_ct32_lower_misfit_and_error_than_fbp(ct32, monkeypatch):
    """Noiseless 8-view 32² ellipse phantom, prior N(blurred truth, SE kernel + nugget), default options.
    Samples fit the data far better than FBP; the sampler means (ε = 0, see the module docstring) are
    also closer to the truth than FBP (single samples carry the posterior spread of the ~700-dimensional
    null space, so their error is not compared)."""
    op, y, truth = ct32["op"], ct32["y"], ct32["truth"]
    fbp = get_solver("fbp")(y, op).image
    mis_fbp = float((op(fbp) - y).norm())
    err_fbp = float((fbp - truth).norm())
    solvers = {"pigfm": get_solver("pigfm", steps=30), "cpigfm": get_solver("cpigfm", steps=10)}
    for name, s in solvers.items():
        r = s(y, op, prior=ct32["prior"])
        assert r.nfe == r.options["steps"] and len(r.history["data_misfit"]) == r.options["steps"]
        assert float((op(r.image) - y).norm()) < 0.5 * mis_fbp, name
    monkeypatch.setattr(SolveContext, "randn", _zeros)
    for name, s in solvers.items():
        x = s(y, op, prior=ct32["prior"]).image
        assert float((op(x) - y).norm()) < 0.5 * mis_fbp, name
        assert float((x - truth).norm()) < 0.8 * err_fbp, name


# ---- noisy variant, options, determinism, samples ---------------------------------------------------
def test_cpigfm_noisy_is_damped_pseudo_inverse(small):
    prior = GaussianPrior(small["mu"], small["se_cov"])
    gen = torch.Generator().manual_seed(5)
    y = data_for(small, prior) + 0.05 * torch.randn(1, 1, *small["op"].range_shape, dtype=torch.float64, generator=gen)
    a = get_solver("cpigfm", steps=4, noisy=True, noise_std=0.05)(y, small["op"], prior=prior).image
    b = get_solver("cpigfm", steps=4, damping=0.05**2)(y, small["op"], prior=prior).image
    c = get_solver("cpigfm", steps=4)(y, small["op"], prior=prior).image
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ConfigError, match="noisy"):
        get_solver("cpigfm", noisy=True, damping=0.1)


@pytest.mark.parametrize(
    "method, options, name",
    [
        ("pigfm", dict(guidance=-1.0), "guidance"),
        ("pigfm", dict(steps=0), "steps"),
        ("pigfm", dict(t_start=1.0), "t_start"),
        ("pigfm", dict(t_start=0.0), "t_start"),  # ΠGFM's weight is singular at t = 0
        ("pigfm", dict(rcond=0.0), "rcond"),
        ("pigfm", dict(damping=-1e-3), "damping"),
        ("pigfm", dict(box=(1.0, 0.0)), "box"),
        ("cpigfm", dict(guidance=-2.0), "guidance"),
        ("cpigfm", dict(steps=0), "steps"),
        ("cpigfm", dict(t_start=-0.1), "t_start"),
        ("cpigfm", dict(t_start=1.0), "t_start"),
        ("cpigfm", dict(schedule="v9"), "schedule"),
        ("cpigfm", dict(schedule="v4", t_start=0.0), "t_start"),
        ("cpigfm", dict(lam=float("nan")), "lam"),
        ("cpigfm", dict(noise_std=-1.0), "noise_std"),
    ],
)
def test_bad_options(method, options, name):
    with pytest.raises(ConfigError, match=name):
        get_solver(method, **options)


def test_valid_edge_options():
    get_solver("cpigfm", t_start=0.0)  # v2/v3 weights vanish at t = 0
    get_solver("cpigfm", schedule="v3", t_start=0.0, guidance=0.0, lam=-1.0)
    get_solver("pigfm", box=(0.0, 1.0))


@pytest.mark.parametrize("method", ["pigfm", "cpigfm"])
def test_determinism_samples_and_clip(small, method):
    prior = GaussianPrior(small["mu"], small["se_cov"])
    y = data_for(small, prior).float()
    op = small["op"]
    a = get_solver(method, steps=6, seed=3)(y, op, prior=prior)
    b = get_solver(method, steps=6, seed=3)(y, op, prior=prior)
    c = get_solver(method, steps=6, seed=4)(y, op, prior=prior)
    assert a.image.dtype == torch.float32 and a.image.shape == (1, 1, N, N)
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)
    r = get_solver(method, steps=6, n_samples=3)(y[0, 0], op, prior=prior)
    assert r.image.shape == (N, N) and r.std.shape == (N, N) and r.samples.shape == (3, N, N)
    assert float(r.std.min()) >= 0 and float(r.std.max()) > 1e-3 and r.nfe == 18
    cl = get_solver(method, steps=6, box=(0.2, 0.8))(y, op, prior=prior).image
    assert bool((cl >= torch.tensor(0.2)).all() and (cl <= torch.tensor(0.8)).all())


@pytest.mark.parametrize("method", ["pigfm", "cpigfm"])
def test_callback_stops_early(small, method):
    prior = GaussianPrior(small["mu"], small["se_cov"])
    y = data_for(small, prior)
    r = get_solver(method, steps=10)(y, small["op"], prior=prior, callback=lambda rec: rec["iteration"] >= 1)
    assert len(r.history["data_misfit"]) == 2 and r.nfe == 2 and len(r.history["t"]) == 2
