"""The classical baselines (sirt, cgls, tikhonov, tv) against independent dense float64 oracles.

Oracles: closed forms from ASTRA's own system matrix (Tikhonov normal equations, least squares by
``numpy.linalg.lstsq``, SIRT iterates as Landweber on R^½AC^½ through its SVD) and, for TV, a
smoothed-TV L-BFGS-B solve with an explicitly built sparse difference matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch

import ctflow
from ctflow.priors.unet import ConfigError
from ctflow.solvers import get_solver, list_methods
from ctflow.solvers.linalg import cg

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ("sirt", "cgls", "tikhonov", "tv")


def _dense(op) -> np.ndarray:
    A = np.asarray(op.backend.scipy_matrix().toarray(), dtype=np.float64)
    x = torch.rand(*op.domain_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert np.allclose(op(x).numpy().ravel(), A @ x.numpy().ravel(), atol=1e-12)  # layout convention
    return A


@pytest.fixture(scope="module")
def op16():
    """16×16 image, 12 angles: rank deficient (244 of 256), for Tikhonov."""
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(16, 12), backend="matrix")
    return op, _dense(op)


@pytest.fixture(scope="module")
def op8():
    """8×8 image, 16 angles: full column rank, condition number ≈ 60."""
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(8, 16), backend="matrix")
    A = _dense(op)
    assert np.linalg.matrix_rank(A) == 64
    return op, A


def _disk(n: int, dtype=torch.float64) -> torch.Tensor:
    return ctflow.phantoms.ellipses_image(ctflow.phantoms.disk(n * 0.3, 1.0, (0.5, -0.8)), n, dtype=dtype)


def _noisy(op, n: int, seed: int = 0, level: float = 0.02) -> torch.Tensor:
    """Sinogram (1, 1, A, D) float64 of a disk with relative Gaussian noise."""
    y = op(_disk(n)[None, None])
    return ctflow.noise.GaussianNoise(relative_sigma=level)(y, seed=seed)


def _flat(rec) -> np.ndarray:
    return rec.image.detach().double().numpy().ravel()


def test_registered():
    methods = list_methods()
    for m in METHODS:
        assert m in methods and methods[m]


# ---- Tikhonov -------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight", [1e-2, 1e-3])
def test_tikhonov_matches_closed_form(op16, weight):
    op, A = op16
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=g)
    y = op(x) + 0.1 * torch.randn(1, 1, *op.range_shape, dtype=torch.float64, generator=g)
    alpha = weight * op.operator_norm() ** 2
    ref = np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ y.numpy().ravel())
    rec = get_solver("tikhonov", weight=weight, iterations=400, tol=1e-12)(y, op)
    assert rec.image.dtype == torch.float64
    assert np.abs(_flat(rec) - ref).max() <= 1e-8 * np.abs(ref).max()
    # objective ½‖Ax − y‖² + ½α‖x‖², logged per iteration, never increases (CG minimises it over
    # growing Krylov spaces)
    obj = np.array(rec.history["objective"])
    assert len(obj) == len(rec.history["data_misfit"]) and np.all(np.diff(obj) <= 1e-10 * obj[0])
    r = A @ ref - y.numpy().ravel()
    assert obj[-1] == pytest.approx(0.5 * r @ r + 0.5 * alpha * ref @ ref, rel=1e-10)


def test_tikhonov_iterates_are_cg_on_normal_equations(op16):
    """Damped CGLS gives the iterates of linalg.cg on (AᵀA + αI)x = Aᵀy (checked at a fixed count)."""
    op, _ = op16
    y = _noisy(op, 16)
    alpha = 1e-2 * op.operator_norm() ** 2
    for k in (1, 3, 8):
        rec = get_solver("tikhonov", iterations=k, tol=0.0)(y, op)
        ref = cg(lambda v: op.adjoint(op(v)) + alpha * v, op.adjoint(y), iters=k, tol=0.0)
        assert len(rec.history["data_misfit"]) == k
        torch.testing.assert_close(rec.image, ref, rtol=1e-9, atol=1e-10)


def test_tikhonov_tol_stops_early(op16):
    op, _ = op16
    rec = get_solver("tikhonov", weight=1e-1, iterations=200, tol=1e-4)(_noisy(op, 16), op)
    assert 1 < len(rec.history["data_misfit"]) < 200


# ---- CGLS ---------------------------------------------------------------------------------------------
def test_cgls_reaches_least_squares(op8):
    op, A = op8
    y = _noisy(op, 8, level=0.05)
    ref = np.linalg.lstsq(A, y.numpy().ravel(), rcond=None)[0]
    rec = get_solver("cgls", iterations=150)(y, op)  # ≥ rank = 64
    assert np.abs(_flat(rec) - ref).max() <= 1e-8 * np.abs(ref).max()
    # the least-squares residual is non-zero (noisy, overdetermined) and is what CGLS reaches
    r = A @ ref - y.numpy().ravel()
    assert rec.history["data_misfit"][-1] == pytest.approx(0.5 * r @ r, rel=1e-9) and r @ r > 1e-3


def test_cgls_residual_non_increasing(op16):
    op, _ = op16
    for dtype in (torch.float64, torch.float32):
        rec = get_solver("cgls", iterations=40)(_noisy(op, 16).to(dtype), op)
        m = np.array(rec.history["data_misfit"])
        assert len(m) == 40
        slack = 1e-12 if dtype == torch.float64 else 1e-5
        assert np.all(np.diff(m) <= slack * m[0])
        assert m[-1] < 1e-2 * m[0]


def test_cgls_tol(op8):
    op, _ = op8
    y = _noisy(op, 8)
    rec = get_solver("cgls", iterations=500, tol=1e-6)(y, op)
    n = len(rec.history["data_misfit"])
    assert n < 500
    x = rec.image
    s = op.adjoint(y - op(x))
    assert float(s.norm()) <= 1e-6 * float(op.adjoint(y).norm()) * 1.0001


# ---- SIRT ---------------------------------------------------------------------------------------------
def _sirt_closed_form(A, y, k, omega):
    """SIRT iterate k from x₀ = 0 without clamping: Landweber on W = R^½AC^½ via the SVD of W."""
    rows, cols = A.sum(1), A.sum(0)
    R = np.where(rows > 0, 1.0 / np.where(rows > 0, rows, 1.0), 0.0)
    C = np.where(cols > 0, 1.0 / np.where(cols > 0, cols, 1.0), 0.0)
    W = np.sqrt(R)[:, None] * A * np.sqrt(C)[None, :]
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    keep = s > 1e-12 * s[0]
    U, s, Vt = U[:, keep], s[keep], Vt[keep]
    assert s[0] <= 1.0 + 1e-9  # the weighting makes ‖W‖ ≤ 1, so 0 < ω < 2 converges
    b = np.sqrt(R) * y
    filt = (1.0 - (1.0 - omega * s * s) ** k) / s
    return np.sqrt(C) * (Vt.T @ (filt * (U.T @ b))), np.sqrt(C) * (Vt.T @ ((U.T @ b) / s))


@pytest.mark.parametrize("omega", [1.0, 1.7])
def test_sirt_iterates_match_closed_form(op8, omega):
    op, A = op8
    y = _noisy(op, 8, level=0.05)
    yv = y.numpy().ravel()
    for k in (1, 5, 60):
        rec = get_solver("sirt", iterations=k, relaxation=omega, box=None)(y, op)
        xk, xls = _sirt_closed_form(A, yv, k, omega)
        assert np.abs(_flat(rec) - xk).max() <= 1e-9 * np.abs(xk).max()
    # …and it approaches the weighted least-squares solution: the weighted misfit gap closes
    # (x itself converges slowly: the corner pixels are seen by few rays, σ_min(R^½AC^½) ≈ 0.02)
    rec = get_solver("sirt", iterations=600, relaxation=omega, box=None)(y, op)
    x600, _ = _sirt_closed_form(A, yv, 600, omega)
    assert np.abs(_flat(rec) - x600).max() <= 1e-8 * np.abs(x600).max()
    R = np.where(A.sum(1) > 0, 1.0 / np.where(A.sum(1) > 0, A.sum(1), 1.0), 0.0)
    f_ls = 0.5 * np.sum(R * (A @ xls - yv) ** 2)
    f0 = 0.5 * np.sum(R * yv**2)
    w = np.array(rec.history["weighted_misfit"])
    assert np.all(np.diff(w) <= 1e-12 * w[0]) and w[-1] >= f_ls * (1 - 1e-9)
    assert w[-1] - f_ls < 1e-3 * (f0 - f_ls)
    assert np.abs(x600 - xls).max() < np.abs(xk - xls).max()


@pytest.mark.parametrize("nonnegative", [True, False])
def test_sirt_weighted_misfit_monotone(op16, nonnegative):
    op, _ = op16
    y = _noisy(op, 16, level=0.05)
    rec = get_solver("sirt", iterations=50, box=(0.0, None) if nonnegative else None)(y, op)
    w = np.array(rec.history["weighted_misfit"])
    m = np.array(rec.history["data_misfit"])
    assert len(w) == len(m) == 50
    assert np.all(np.diff(w) <= 1e-12 * w[0])
    assert m[-1] < 0.05 * m[0]
    if nonnegative:
        assert float(rec.image.min()) >= 0.0
    else:
        assert float(rec.image.min()) < 0.0  # so the clamp above is doing something


# ---- TV -------------------------------------------------------------------------------------------
def _difference_matrix(n: int) -> sp.csr_matrix:
    """Forward differences with Neumann boundary (zero at the last row/column) stacked [D_y; D_x]."""
    d = sp.diags([-np.ones(n), np.ones(n - 1)], [0, 1], shape=(n, n)).tolil()
    d[n - 1, n - 1] = 0.0
    d = d.tocsr()
    eye = sp.identity(n, format="csr")
    return sp.vstack([sp.kron(d, eye), sp.kron(eye, d)]).tocsr()


def _tv_reference(A, y, lam, eps, nonnegative):
    """min ½‖Ax − y‖² + λ Σ sqrt(|∇x|² + ε²) by L-BFGS-B (float64, bounds x ≥ 0 if asked)."""
    n = int(round(np.sqrt(A.shape[1])))
    D = _difference_matrix(n)
    N = n * n

    def f(x):
        r = A @ x - y
        g = D @ x
        mag = np.sqrt(g[:N] ** 2 + g[N:] ** 2 + eps * eps)
        return 0.5 * r @ r + lam * mag.sum(), A.T @ r + lam * (D.T @ (g / np.tile(mag, 2)))

    def tv(x):
        g = D @ x
        return np.sqrt(g[:N] ** 2 + g[N:] ** 2).sum()

    res = scipy.optimize.minimize(
        f, np.zeros(N), jac=True, method="L-BFGS-B", bounds=[(0, None)] * N if nonnegative else None,
        options={"maxiter": 50000, "maxfun": 100000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 30},
    )
    x = res.x
    r = A @ x - y
    return x, 0.5 * r @ r + lam * tv(x)


@pytest.mark.parametrize("nonnegative", [True, False])
def test_tv_reaches_optimum_of_tiny_problem(op8, nonnegative):
    op, A = op8
    y = _noisy(op, 8, level=0.1, seed=3)
    lam = 0.5
    eps = 1e-5
    x_ref, f_ref = _tv_reference(A, y.numpy().ravel(), lam, eps, nonnegative)
    rec = get_solver("tv", weight_abs=lam, iterations=500, box=(0.0, None) if nonnegative else None)(y, op)
    obj = np.array(rec.history["objective"])
    # f(x_ref) is within λ·ε·N of the true optimum (TV ≤ TV_ε ≤ TV + εN), x_pdhg is feasible
    slack = lam * eps * 64 + 1e-9 * f_ref
    assert obj[-1] == pytest.approx(f_ref, abs=slack + 1e-6 * f_ref)
    assert obj[-1] >= f_ref - slack
    assert np.abs(_flat(rec) - x_ref).max() < 2e-4
    # overall decrease: far below the start, and the tail is flat
    assert obj[-1] < 0.2 * obj[0] and obj[-100:].max() - obj[-1] < 1e-6 * obj[-1]
    if nonnegative:
        assert float(rec.image.min()) >= 0.0 and (x_ref < 1e-6).any()  # the constraint is active
    # the logged terms are consistent
    assert obj[-1] == pytest.approx(rec.history["data_misfit"][-1] + rec.history["tv"][-1], rel=1e-12)


def test_tv_weight_zero_is_least_squares(op8):
    op, A = op8
    y = _noisy(op, 8, level=0.05)
    ref = np.linalg.lstsq(A, y.numpy().ravel(), rcond=None)[0]
    rec = get_solver("tv", weight=0.0, box=None, iterations=1000, step_ratio=0.3)(y, op)
    assert np.abs(_flat(rec) - ref).max() < 1e-3 * np.abs(ref).max()
    r = A @ ref - y.numpy().ravel()
    assert rec.history["data_misfit"][-1] == pytest.approx(0.5 * r @ r, rel=1e-6)
    assert rec.history["tv"][-1] == 0.0


def test_tv_weight_abs_overrides_relative(op8):
    op, _ = op8
    y = _noisy(op, 8)
    lam = 0.3
    a = get_solver("tv", weight=123.0, weight_abs=lam, iterations=50)(y, op)
    b = get_solver("tv", weight=lam / op.operator_norm() ** 2, iterations=50)(y, op)
    torch.testing.assert_close(a.image, b.image, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def shepp32():
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(32, 20))
    x = ctflow.phantoms.shepp_logan(32)[None, None]
    return op, x, op(x)


def test_tv_beats_fbp_on_piecewise_constant_phantom(shepp32):
    op, x, y = shepp32
    fbp = get_solver("fbp")(y, op)
    tv = get_solver("tv", weight=1e-4)(y, op)
    p_fbp = fbp.metrics(x, data_range=1.0)["psnr"]
    p_tv = tv.metrics(x, data_range=1.0)["psnr"]
    assert p_tv > p_fbp + 5.0, (p_tv, p_fbp)
    assert tv.history["data_misfit"][-1] < fbp.history["data_misfit"][-1]
    obj = np.array(tv.history["objective"])
    assert len(obj) == 300 and obj[-1] < 0.01 * obj[0] and obj[-1] <= obj.min() * (1 + 1e-3)


# ---- contract -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, options, name",
    [
        ("tv", {"weight": -1.0}, "weight"),
        ("tv", {"weight_abs": -0.1}, "weight_abs"),
        ("tv", {"theta": 1.5}, "theta"),
        ("tv", {"iterations": 0}, "iterations"),
        ("tikhonov", {"weight": -1e-3}, "weight"),
        ("tikhonov", {"tol": -1.0}, "tol"),
        ("cgls", {"iterations": 0}, "iterations"),
        ("cgls", {"iterations": 2.5}, "iterations"),
        ("sirt", {"iterations": 0}, "iterations"),
        ("sirt", {"relaxation": 2.5}, "relaxation"),
        ("sirt", {"relaxation": 0.0}, "relaxation"),
        ("sirt", {"box": "yes"}, "box"),
        ("sirt", {"n_iter": 3}, "n_iter"),
    ],
)
def test_bad_options(method, options, name):
    with pytest.raises(ConfigError, match=name):
        get_solver(method, **options)


@pytest.fixture(scope="module")
def pair(op16):
    op, _ = op16
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)
    return op, op(x) + 0.05 * torch.randn(2, 1, *op.range_shape, generator=g, dtype=torch.float64), x


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_single_and_dtype(pair, method):
    op, y, _ = pair
    # tol makes the two samples of cgls/tikhonov stop at different iterations: each is frozen on its own
    opts = {"iterations": 20, **({"tol": 1e-3} if method in ("cgls", "tikhonov") else {})}
    solver = get_solver(method, **opts)
    both = solver(y, op)
    assert both.image.shape == (2, 1, 16, 16) and both.image.dtype == torch.float64
    for i in range(2):
        one = solver(y[i : i + 1], op)
        torch.testing.assert_close(both.image[i : i + 1], one.image, rtol=1e-9, atol=1e-11)
    # layouts: (A, D) in → (H, W) out; float32 stays float32 (and agrees to float32 accuracy
    # where the problem is well conditioned: compare the data fit, not the image)
    single = solver(y[0, 0].float(), op)
    assert single.image.shape == (16, 16) and single.image.dtype == torch.float32
    m64 = float((op(both.image[0, 0]) - y[0, 0]).norm())
    m32 = float((op(single.image.double()) - y[0, 0]).norm())
    assert m32 == pytest.approx(m64, rel=5e-2)


@pytest.mark.parametrize("method", METHODS)
def test_callback_stops_and_x_init(pair, method):
    op, y, truth = pair
    seen = []

    def cb(rec):
        seen.append((rec["iteration"], rec["x"].shape, rec["data_misfit"]))
        return rec["iteration"] >= 2

    rec = get_solver(method, iterations=50)(y, op, callback=cb)
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] == (2, 1, 16, 16)
    assert all(len(v) == 3 for v in rec.history.values())
    # x_init is the starting point: one iteration from the noiseless truth stays close to its fit
    start = get_solver(method, iterations=1)(y, op, x_init=truth).history["data_misfit"][0]
    cold = get_solver(method, iterations=1)(y, op).history["data_misfit"][0]
    assert start < 0.1 * cold
