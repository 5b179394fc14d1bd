"""One operator contract, run over every backend × geometry × projector (deepinv-style matrix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ctflow
from ctflow import RayTransform
from ctflow.errors import BackendError, NonFiniteError, ShapeError

from .geometries import CASES, CONTRACT_GEOMETRIES

BACKENDS = ["astra", "matrix"]


def _op(geom: str, projector: str, backend: str) -> RayTransform:
    return RayTransform(CONTRACT_GEOMETRIES[geom], backend=backend, projector=projector)


@pytest.fixture(scope="module")
def ops():
    cache: dict = {}

    def get(geom, projector, backend):
        key = (geom, projector, backend)
        if key not in cache:
            cache[key] = _op(*key)
        return cache[key]

    return get


def _rand(shape, seed, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geom,projector", CASES)
class TestContract:
    def test_adjointness(self, ops, geom, projector, backend):
        A = ops(geom, projector, backend)
        assert A.adjointness_test(n_trials=3, seed=1) < 1e-5
        if backend == "matrix":  # the same matrix in float64: exact to rounding
            assert A.adjointness_test(n_trials=2, seed=2, dtype=torch.float64) < 1e-12

    def test_autograd_is_adjoint(self, ops, geom, projector, backend):
        A = ops(geom, projector, backend)
        x = _rand((2, 1, *A.domain_shape), 3).requires_grad_(True)
        g = _rand((2, 1, *A.range_shape), 4)
        (gx,) = torch.autograd.grad((A(x) * g).sum(), x)
        torch.testing.assert_close(gx, A.adjoint(g), rtol=1e-6, atol=1e-6)
        # and through the adjoint: the gradient of Aᵀ is A
        y = _rand((2, 1, *A.range_shape), 5).requires_grad_(True)
        h = _rand((2, 1, *A.domain_shape), 6)
        (gy,) = torch.autograd.grad((A.T(y) * h).sum(), y)
        torch.testing.assert_close(gy, A(h), rtol=1e-6, atol=1e-6)

    def test_second_order_autograd(self, ops, geom, projector, backend):
        # d/dx ½‖A x‖² = AᵀA x; its Hessian-vector product is AᵀA v (needs backward of backward)
        A = ops(geom, projector, backend)
        x = _rand(A.domain_shape, 7).requires_grad_(True)
        v = _rand(A.domain_shape, 8)
        (grad,) = torch.autograd.grad(0.5 * (A(x) ** 2).sum(), x, create_graph=True)
        (hv,) = torch.autograd.grad((grad * v).sum(), x)
        torch.testing.assert_close(hv, A.adjoint(A(v)), rtol=1e-5, atol=1e-5)

    def test_matches_astra_system_matrix(self, ops, geom, projector, backend):
        # Oracle: ASTRA's own sparse matrix applied with scipy in float64.
        from ctflow.operators.backends.matrix import build_system_matrix

        A = ops(geom, projector, backend)
        W = build_system_matrix(A.geometry, projector).astype(np.float64)
        x = _rand(A.domain_shape, 9, torch.float64)
        y = _rand(A.range_shape, 10, torch.float64)
        ref_fp = (W @ x.numpy().ravel()).reshape(A.range_shape)
        ref_bp = (W.T @ y.numpy().ravel()).reshape(A.domain_shape)
        fp, bp = A(x).numpy(), A.adjoint(y).numpy()
        assert np.linalg.norm(fp - ref_fp) <= 1e-5 * np.linalg.norm(ref_fp)
        assert np.linalg.norm(bp - ref_bp) <= 1e-5 * np.linalg.norm(ref_bp)

    def test_batch_and_channels(self, ops, geom, projector, backend):
        A = ops(geom, projector, backend)
        x = _rand((3, 2, *A.domain_shape), 11)
        y = A(x)
        assert y.shape == (3, 2, *A.range_shape)
        torch.testing.assert_close(y[2, 1], A(x[2, 1]), rtol=1e-6, atol=1e-6)
        assert A(x[0, 0]).shape == A.range_shape  # no leading dims
        b = A.adjoint(y)
        assert b.shape == x.shape
        torch.testing.assert_close(b[1, 0], A.adjoint(y[1, 0]), rtol=1e-6, atol=1e-5)

    def test_dtypes(self, ops, geom, projector, backend):
        A = ops(geom, projector, backend)
        x64 = _rand(A.domain_shape, 12, torch.float64)
        y64 = A(x64)
        assert y64.dtype == torch.float64 and A.adjoint(y64).dtype == torch.float64
        assert A(x64.float()).dtype == torch.float32
        torch.testing.assert_close(A(x64.float()).double(), y64, rtol=1e-5, atol=1e-5)
        # numpy in → numpy out, same values
        yn = A(x64.numpy())
        assert isinstance(yn, np.ndarray) and yn.dtype == np.float64
        np.testing.assert_allclose(yn, y64.numpy(), rtol=1e-12)


@pytest.mark.parametrize("geom,projector", CASES)
def test_backends_agree(ops, geom, projector):
    a, m = ops(geom, projector, "astra"), ops(geom, projector, "matrix")
    x = _rand((2, *a.domain_shape), 13)
    y = _rand((2, *a.range_shape), 14)
    torch.testing.assert_close(a(x), m(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.adjoint(y), m.adjoint(y), rtol=1e-5, atol=1e-5)


def test_float64_gradcheck_matrix_backend():
    A = RayTransform(ctflow.ParallelBeamGeometry(8, 5), backend="matrix")
    x = _rand((1, 8, 8), 15, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(A, (x,), eps=1e-6, atol=1e-8)
    y = _rand((1, *A.range_shape), 16, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(A.T, (y,), eps=1e-6, atol=1e-8)


def test_operator_norm_matches_svd():
    import scipy.sparse.linalg as sla

    from ctflow.operators.backends.matrix import build_system_matrix

    g = CONTRACT_GEOMETRIES["fan-flat"]
    A = RayTransform(g, backend="matrix")
    W = build_system_matrix(g, "line").astype(np.float64)
    sigma_max = sla.svds(W, k=1, return_singular_vectors=False)[0]
    assert abs(A.operator_norm() - sigma_max) <= 1e-4 * sigma_max
    # the astra backend computes the same norm
    assert abs(RayTransform(g, backend="astra").operator_norm() - sigma_max) <= 1e-4 * sigma_max


def test_adjointness_test_detects_a_wrong_adjoint():
    A = RayTransform(ctflow.ParallelBeamGeometry(16, 10), backend="matrix")
    assert A.adjointness_test() < 1e-6
    good = A.backend.adjoint
    A.backend.adjoint = lambda y: 1.01 * good(y)
    assert 0.005 < A.adjointness_test() < 0.02


def test_transpose_objects():
    A = RayTransform("parallel-28-sparse8")
    assert A.T.T is A
    assert A.T.domain_shape == A.range_shape and A.T.range_shape == A.domain_shape
    y = _rand(A.range_shape, 17)
    torch.testing.assert_close(A.T(y), A.adjoint(y))
    assert "parallel-28-sparse8" in repr(A)


def test_auto_backend_choice():
    small = RayTransform("parallel-64-sparse30")
    assert small.backend_name == "matrix"
    big = RayTransform("fan-512-clinical")  # 2304 views × 512²: far too large for a matrix
    assert big.backend_name == "astra"
    capped = RayTransform("parallel-64-sparse30", max_matrix_nnz=10)
    assert capped.backend_name == "astra"


def test_matrix_cache_written_reused_and_corruption_rebuilt(tmp_path):
    g = ctflow.ParallelBeamGeometry(16, 9)
    A1 = RayTransform(g, backend="matrix", cache_dir=tmp_path)
    x = _rand(g.image_shape, 18)
    y1 = A1(x)
    path = A1.backend.cache_path
    assert path.is_file() and path.parent == tmp_path / "matrices"
    A2 = RayTransform(g, backend="matrix", cache_dir=tmp_path)
    assert A2.backend._load_cached() is not None  # read from disk, not rebuilt
    torch.testing.assert_close(A2(x), y1)
    # a different geometry gets a different key
    assert RayTransform(g.replace(n_detectors=30), backend="matrix", cache_dir=tmp_path).backend.cache_path != path
    path.write_bytes(b"not an npz")
    A3 = RayTransform(g, backend="matrix", cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="unreadable system-matrix cache"):
        torch.testing.assert_close(A3(x), y1)
    assert not list(tmp_path.glob("matrices/.*tmp*"))  # no temp files left behind


def test_astra_ids_are_freed():
    import astra

    g = ctflow.ParallelBeamGeometry(16, 7)
    A = RayTransform(g, backend="astra")
    A(_rand(g.image_shape, 19))
    assert len(A.backend._ids) == 1
    pid = next(iter(A.backend._ids.values()))
    astra.projector.projection_geometry(pid)  # alive while the operator is
    A.backend.close()
    assert A.backend._ids == {}
    with pytest.raises(Exception):
        astra.projector.projection_geometry(pid)  # freed in ASTRA's registry


class TestBadInput:
    A = None

    @classmethod
    def setup_class(cls):
        cls.A = RayTransform(ctflow.load_geometry("parallel-28-sparse8"), backend="matrix")

    def test_wrong_image_shape(self):
        with pytest.raises(ShapeError, match=r"expects images of shape \(\.\.\., 28, 28\), got \(2, 1, 32, 32\)"):
            self.A(torch.zeros(2, 1, 32, 32))

    def test_wrong_sinogram_shape(self):
        with pytest.raises(ShapeError, match="sinogram"):
            self.A.adjoint(torch.zeros(8, 40))

    def test_nan_and_inf(self):
        x = torch.zeros(28, 28)
        x[3, 4] = float("nan")
        with pytest.raises(NonFiniteError, match="1 NaN/Inf"):
            self.A(x)
        y = torch.zeros(self.A.range_shape)
        y[0, 0] = float("inf")
        with pytest.raises(NonFiniteError):
            self.A.adjoint(y)

    def test_integer_and_non_tensor(self):
        with pytest.raises(ShapeError, match="floating-point"):
            self.A(torch.zeros(28, 28, dtype=torch.int64))
        with pytest.raises(ShapeError, match="torch.Tensor or numpy"):
            self.A([[0.0] * 28] * 28)

    def test_bad_backend_and_projector(self):
        with pytest.raises(BackendError, match="unknown backend"):
            RayTransform("parallel-28-sparse8", backend="gpu-magic")
        with pytest.raises(BackendError, match="not available for fan-beam"):
            RayTransform("fan-64-sparse60", projector="linear")
        with pytest.raises(BackendError, match="flat detectors without offset"):
            RayTransform("fan-512-clinical-sparse64", projector="strip")

    def test_errors_are_ctflow_errors(self):
        with pytest.raises(ctflow.CTFlowError):
            self.A(torch.zeros(3, 3))
