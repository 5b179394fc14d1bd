"""The discrete ray transform A (forward projection) and its adjoint Aᵀ as differentiable torch modules."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch

from ..errors import BackendError, NonFiniteError, ShapeError
from ..geometry import Geometry, load_geometry
from .backends.astra import DEFAULT_PROJECTOR, AstraBackend, astra_projector_type
from .backends.matrix import MatrixBackend

BACKENDS = ("auto", "matrix", "astra")


class InexactAdjointWarning(UserWarning):
    """An operator whose adjoint is not the exact transpose of its forward map is being differentiated
    (ASTRA's CUDA projector: autograd would use its back projection as the gradient)."""

# Non-zeros per (view, pixel) of ASTRA's CPU matrices when detector pitch ≈ pixel size (measured).
_NNZ_PER_PIXEL_VIEW = {"line": 1.3, "linear": 1.9, "strip": 3.3}


def _default_max_nnz() -> int:
    return int(float(os.environ.get("CTFLOW_MATRIX_MAX_NNZ", "6e7")))


def estimate_nnz(geometry: Geometry, projector: str) -> int:
    """Rough non-zero count of the system matrix, used to choose the backend before building it."""
    h, w = geometry.image_shape
    iso_spacing = geometry.detector_spacing / getattr(geometry, "magnification", 1.0)
    per = _NNZ_PER_PIXEL_VIEW[projector] * max(1.0, geometry.pixel_size / iso_spacing)
    return int(per * geometry.n_angles * h * w)


class _Project(torch.autograd.Function):
    """y = A x; the gradient is Aᵀ applied to the upstream gradient (itself differentiable)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op: RayTransform) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return op._run(x, adjoint=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _Backproject.apply(grad.contiguous(), ctx.op), None


class _Backproject(torch.autograd.Function):
    """x = Aᵀ y; the gradient is A applied to the upstream gradient."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, op: RayTransform) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return op._run(y, adjoint=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _Project.apply(grad.contiguous(), ctx.op), None


class RayTransform(torch.nn.Module):
    r"""Forward projection :math:`y = A x` for a CT geometry, with the exact adjoint :math:`A^\top`.

    ``A`` maps images ``(..., H, W)`` to sinograms ``(..., n_angles, n_detectors)`` of line integrals
    in physical units (mm · image units); any leading batch/channel dimensions are kept. Inputs may
    be float32 or float64 torch tensors (the dtype is preserved) or numpy arrays (a numpy array is
    returned). Autograd works through both directions: the gradient of ``A`` is ``Aᵀ`` and vice versa,
    to any order.

    Args:
        geometry: a geometry object, a preset name or a YAML/JSON path.
        backend: ``"matrix"`` (ASTRA's own CPU system matrix as a torch sparse CSR tensor: fast and
            batched, any torch device), ``"astra"`` (ASTRA projector calls, one image at a time;
            CUDA tensors use ASTRA's GPU projector, whose adjoint is inexact: differentiating through it
            warns, :class:`InexactAdjointWarning`), or ``"auto"``: ``matrix`` unless its estimated
            size exceeds ``max_matrix_nnz`` non-zeros (``$CTFLOW_MATRIX_MAX_NNZ``, default 6e7 ≈ 1 GB).
        projector: ``"linear"`` (Joseph, parallel default), ``"line"`` (fan default) or ``"strip"``.
        cache_dir: system-matrix cache folder (``False`` to disable), see :mod:`ctflow.operators.backends.matrix`.
        check_finite: raise :class:`~ctflow.errors.NonFiniteError` on NaN/Inf inputs.

    >>> A = RayTransform("parallel-64-sparse30")
    >>> y = A(torch.ones(2, 1, 64, 64)); y.shape
    torch.Size([2, 1, 30, 92])
    """

    def __init__(
        self,
        geometry: Geometry | str | os.PathLike,
        backend: str = "auto",
        projector: str | None = None,
        cache_dir: str | os.PathLike | bool | None = None,
        check_finite: bool = True,
        max_matrix_nnz: int | None = None,
    ):
        super().__init__()
        self.geometry = load_geometry(geometry)
        self.projector = projector or DEFAULT_PROJECTOR[self.geometry.kind]
        astra_projector_type(self.geometry, self.projector)  # validate early
        if backend not in BACKENDS:
            raise BackendError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        self.auto_selected = backend == "auto"
        self._auto_reason = ""
        if backend == "auto":
            limit = _default_max_nnz() if max_matrix_nnz is None else max_matrix_nnz
            nnz = estimate_nnz(self.geometry, self.projector)
            backend = "matrix" if nnz <= limit else "astra"
            self._auto_reason = f"its system matrix would have ~{nnz:.3g} non-zeros > max_matrix_nnz = {limit:.3g}"
        self.backend_name = backend
        self.backend = (
            MatrixBackend(self.geometry, self.projector, cache_dir)
            if backend == "matrix"
            else AstraBackend(self.geometry, self.projector)
        )
        self.check_finite = check_finite
        self._norm: float | None = None
        self._warned_inexact = False

    # ---- shapes ---------------------------------------------------------------------------
    @property
    def domain_shape(self) -> tuple[int, int]:
        """Image shape ``(H, W)``."""
        return self.geometry.image_shape

    @property
    def range_shape(self) -> tuple[int, int]:
        """Sinogram shape ``(n_angles, n_detectors)``."""
        return self.geometry.sinogram_shape

    # ---- application ----------------------------------------------------------------------
    def _prepare(self, x: Any, expected: tuple[int, int], what: str) -> tuple[torch.Tensor, bool]:
        is_numpy = isinstance(x, np.ndarray)
        if is_numpy:
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"RayTransform expects a torch.Tensor or numpy array as {what}, got {type(x).__name__}")
        if not (x.is_floating_point()):
            raise ShapeError(
                f"RayTransform expects a floating-point {what} (float32 or float64), got {x.dtype}; convert it with .float()"
            )
        if x.ndim < 2 or tuple(x.shape[-2:]) != tuple(expected):
            name = self.geometry.name or type(self.geometry).__name__
            raise ShapeError(
                f"RayTransform for geometry {name!r} expects {what}s of shape (..., {expected[0]}, {expected[1]}), "
                f"got {tuple(x.shape)}. "
                + (
                    "Resample the image or choose a geometry with a matching image_shape."
                    if what == "image"
                    else "Check that the sinogram was made with this geometry (n_angles, n_detectors)."
                )
            )
        if self.check_finite and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise NonFiniteError(f"the {what} passed to RayTransform contains {bad} NaN/Inf value(s); clean the data first")
        return x, is_numpy

    def _run(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        """Apply the backend to a ``(N, ., .)`` tensor, keeping dtype (float32/float64)."""
        dtype = x.dtype
        work = dtype if (self.backend_name == "matrix" and dtype in (torch.float32, torch.float64)) else torch.float32
        x = x.detach().to(work).contiguous()
        out = self.backend.adjoint(x) if adjoint else self.backend.forward(x)
        return out.to(dtype)

    def exact_adjoint(self, device="cpu") -> bool:
        """Whether ``adjoint`` is the exact transpose of ``forward`` on ``device``: always for ``matrix`` and for
        ASTRA's CPU projectors; **not** for ASTRA's CUDA projector (ray-driven FP, pixel-driven BP).
        Differentiating through an inexact pair warns (:class:`InexactAdjointWarning`)."""
        return self.backend_name == "matrix" or torch.device(device).type != "cuda"

    def _check_differentiable(self, x: torch.Tensor) -> None:
        """Warn (once per operator) when autograd will use an inexact adjoint as the gradient."""
        if self._warned_inexact or not (torch.is_grad_enabled() and x.requires_grad) or self.exact_adjoint(x.device):
            return
        self._warned_inexact = True
        how = (f"backend='auto' chose 'astra' because {self._auto_reason}" if self.auto_selected
               else "backend='astra'")
        warnings.warn(
            f"RayTransform({self.geometry.name or type(self.geometry).__name__!r}) is being differentiated on "
            f"{x.device} with ASTRA's CUDA projector ({how}): its back projection is not the exact adjoint of its "
            "forward projection (~1e-2 relative mismatch), yet autograd uses it as the gradient. For exact "
            "gradients use backend='matrix' (raise max_matrix_nnz / $CTFLOW_MATRIX_MAX_NNZ if auto declined it) "
            "or CPU tensors; silence with warnings.filterwarnings('ignore', category=InexactAdjointWarning).",
            InexactAdjointWarning,
            stacklevel=4,
        )

    def _apply_op(self, x: Any, adjoint: bool):
        expected = self.range_shape if adjoint else self.domain_shape
        x, is_numpy = self._prepare(x, expected, "sinogram" if adjoint else "image")
        self._check_differentiable(x)
        lead = x.shape[:-2]
        flat = x.reshape(-1, *expected)
        fn = _Backproject if adjoint else _Project
        out = fn.apply(flat, self)
        out = out.reshape(*lead, *(self.domain_shape if adjoint else self.range_shape))
        return out.numpy() if is_numpy else out

    def forward(self, x):
        """:math:`A x`: images ``(..., H, W)`` → sinograms ``(..., n_angles, n_detectors)``."""
        return self._apply_op(x, adjoint=False)

    def adjoint(self, y):
        """:math:`A^\\top y`: sinograms ``(..., n_angles, n_detectors)`` → images ``(..., H, W)``."""
        return self._apply_op(y, adjoint=True)

    @property
    def T(self) -> AdjointRayTransform:
        """The adjoint as a module (``A.T(y) == A.adjoint(y)``; ``A.T.T is A``)."""
        return AdjointRayTransform(self)

    # ---- diagnostics ----------------------------------------------------------------------
    @torch.no_grad()
    def operator_norm(self, max_iter: int = 200, rtol: float = 1e-7, seed: int = 0) -> float:
        """‖A‖₂ = sqrt(λ_max(AᵀA)) by power iteration (cached after the first call)."""
        if self._norm is None:
            g = torch.Generator().manual_seed(seed)
            dtype = torch.float64 if self.backend_name == "matrix" else torch.float32
            x = torch.rand(self.domain_shape, generator=g, dtype=dtype)
            x /= x.norm()
            lam = 0.0
            for _ in range(max_iter):
                z = self.adjoint(self.forward(x))
                new = float(z.norm())
                x = z / new
                if abs(new - lam) <= rtol * new:
                    lam = new
                    break
                lam = new
            self._norm = math.sqrt(lam)
        return self._norm

    @torch.no_grad()
    def adjointness_test(self, n_trials: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu") -> float:
        """Largest relative mismatch |⟨Ax, y⟩ − ⟨x, Aᵀy⟩| / max(|⟨Ax, y⟩|, |⟨x, Aᵀy⟩|) over random x, y.

        The inner products are accumulated in float64. Matched CPU projectors give ~1e-7 in
        float32 (~1e-15 in float64 with the matrix backend).
        """
        g = torch.Generator().manual_seed(seed)
        worst = 0.0
        for _ in range(n_trials):
            x = torch.rand(self.domain_shape, generator=g, dtype=dtype).to(device)
            y = torch.rand(self.range_shape, generator=g, dtype=dtype).to(device)
            lhs = float((self.forward(x).double() * y.double()).sum())
            rhs = float((x.double() * self.adjoint(y).double()).sum())
            worst = max(worst, abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300))
        return worst

    def extra_repr(self) -> str:
        return f"geometry={self.geometry!r}, backend={self.backend_name!r}, projector={self.projector!r}"


class AdjointRayTransform(torch.nn.Module):
    """:math:`A^\\top` as a module; its ``.T`` is the original :class:`RayTransform`."""

    def __init__(self, op: RayTransform):
        super().__init__()
        self._op = [op]  # a list, so the parent is not registered as a child module

    @property
    def T(self) -> RayTransform:
        return self._op[0]

    def forward(self, y):
        return self._op[0].adjoint(y)

    def adjoint(self, x):
        return self._op[0].forward(x)

    @property
    def domain_shape(self) -> tuple[int, int]:
        return self._op[0].range_shape

    @property
    def range_shape(self) -> tuple[int, int]:
        return self._op[0].domain_shape
