r"""Linear algebra on batched images ``(B, 1, H, W)``: per-sample inner products, batched CG, the
data-consistency solve, the operator norm, and the pseudo-inverse / range projector of the CT operator.
Inner products and norms are per batch sample."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .._tensor import per_sample
from ..errors import CTFlowError
from ..files import atomic_path


def bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner products ``⟨a_i, b_i⟩`` → shape (B,)."""
    return (a * b).reshape(a.shape[0], -1).sum(1)


def cg(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    iters: int = 50,
    tol: float = 1e-6,
) -> torch.Tensor:
    r"""Conjugate gradients for :math:`Mx = b` with a symmetric positive (semi-)definite ``apply``,
    run independently per batch sample (a sample stops updating once its ‖r‖ ≤ tol·‖b‖)."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rs = bdot(r, r)
    bn = bdot(b, b).sqrt().clamp_min(1e-30)
    for _ in range(int(iters)):
        active = rs.sqrt() > tol * bn  # each sample stops on its own test: batched == one at a time
        if not bool(active.any()):
            break
        Mp = apply(p)
        denom = bdot(p, Mp)
        alpha = torch.where(active & (denom > 0), rs / denom.clamp_min(1e-30), torch.zeros_like(rs))
        x = x + per_sample(alpha, x) * p
        r = r - per_sample(alpha, r) * Mp
        rs_new = bdot(r, r)
        beta = torch.where(active & (rs > 0), rs_new / rs.clamp_min(1e-30), torch.zeros_like(rs))
        p = r + per_sample(beta, p) * p
        rs = rs_new
    return x


def solve_data_consistency(
    op,
    y: torch.Tensor,
    x_ref: torch.Tensor,
    rho: float,
    noise_var: float = 1.0,
    x0: torch.Tensor | None = None,
    iters: int = 30,
    tol: float = 1e-6,
) -> torch.Tensor:
    r"""Minimise :math:`\tfrac{1}{2σ^2}\|Ax-y\|^2 + \tfrac{ρ}{2}\|x - x_{ref}\|^2` by warm-started CG on
    :math:`(A^\top A/σ^2 + ρI)\,x = A^\top y/σ^2 + ρ\,x_{ref}`."""
    s2 = noise_var if isinstance(noise_var, torch.Tensor) else float(noise_var)  # a tensor: per sample (B, 1, 1, 1)
    rhs = op.adjoint(y) / s2 + rho * x_ref
    return cg(lambda v: op.adjoint(op(v)) / s2 + rho * v, rhs, x0=x_ref if x0 is None else x0, iters=iters, tol=tol)


# ---- pseudo-inverse and range projector -------------------------------------------------------------
def _dense_system_matrix(op) -> np.ndarray:
    backend = getattr(op, "backend", None)
    if backend is not None and hasattr(backend, "scipy_matrix"):
        return np.asarray(backend.scipy_matrix().toarray(), dtype=np.float64)
    h, w = op.domain_shape
    n = h * w
    cols = []
    eye = torch.eye(n, dtype=torch.float64)
    for i in range(0, n, 256):
        blk = eye[i : i + 256].reshape(-1, h, w)
        cols.append(op(blk).reshape(blk.shape[0], -1).T.numpy())
    return np.concatenate(cols, axis=1)


class PseudoInverse:
    r"""Moore–Penrose pseudo-inverse :math:`A^+` of the CT operator and the range projector
    :math:`P = A^+A` (orthogonal projector onto the row space).

    ``mode="svd"`` (default for ≤ ``max_svd_pixels`` pixels): eigendecomposition of the dense
    :math:`A^\top A = VΣ^2V^\top`, singular values below ``rcond·σ_max`` dropped, then
    :math:`A^+y = VΣ^{-2}V^\top A^\top y`, :math:`Px = VV^\top x` (exactly idempotent), and
    :math:`A^{+\top}x = AVΣ^{-2}V^\top x`. ``damping`` δ > 0 replaces :math:`Σ^{-1}` by the Tikhonov
    filter :math:`σ/(σ^2+δ)` (for noisy data). Decompositions are cached on disk by geometry.
    ``mode="cg"``: :math:`A^+y = A^\top (AA^\top)^{-1} y` and :math:`Px = A^+Ax` by CG (approximately
    idempotent only).
    """

    def __init__(self, op, rcond: float = 1e-3, damping: float = 0.0, mode: str = "auto",
                 max_svd_pixels: int = 64 * 64, cg_iters: int = 100, cg_tol: float = 1e-6, cache: bool = True):
        self.op = op
        self.rcond = float(rcond)
        self.damping = float(damping)
        h, w = op.domain_shape
        if mode == "auto":
            mode = "svd" if h * w <= max_svd_pixels else "cg"
        if mode not in ("svd", "cg"):
            raise CTFlowError(f"PseudoInverse mode must be 'svd', 'cg' or 'auto', got {mode!r}")
        self.mode = mode
        self.cg_iters, self.cg_tol = cg_iters, cg_tol
        self._V: dict = {}
        if mode == "svd":
            self.V64, self.s = self._decompose(cache)
            self.rank = int(self.s.numel())

    # -- decomposition --------------------------------------------------------------------------
    def _cache_file(self) -> Path | None:
        geom = getattr(self.op, "geometry", None)
        if geom is None or not hasattr(geom, "fingerprint"):
            return None
        from ..operators.backends.matrix import default_cache_dir

        key = hashlib.sha1(f"v2|{geom.fingerprint()}|{getattr(self.op, 'projector', '')}|{self.rcond:.3e}".encode()).hexdigest()[:20]
        return default_cache_dir() / "pinv" / f"{key}.npz"

    def _decompose(self, cache: bool):
        path = self._cache_file() if cache else None
        if path is not None and path.exists():
            try:
                with np.load(path) as f:
                    return torch.from_numpy(f["V"]).double(), torch.from_numpy(f["s"]).double()
            except Exception:  # corrupt cache: rebuild
                pass
        backend = getattr(self.op, "backend", None)
        if backend is not None and hasattr(backend, "scipy_matrix"):
            A = backend.scipy_matrix().astype(np.float64)  # sparse: Gram products are cheap
        else:
            A = _dense_system_matrix(self.op)
        m, n = A.shape

        def gram(M):
            G = M @ M.T
            return G.toarray() if hasattr(G, "toarray") else G

        if m < n:  # the smaller Gram matrix: AAᵀ = UΣ²Uᵀ, then V = AᵀUΣ⁻¹
            lam, U = np.linalg.eigh(gram(A))
        else:
            lam, V = np.linalg.eigh(gram(A.T))
        lam = lam[::-1]
        s = np.sqrt(np.clip(lam, 0.0, None))
        keep = s > self.rcond * s[0]
        if m < n:
            U = U[:, ::-1][:, keep]
            s = s[keep]
            V = np.asarray(A.T @ U) / s[None, :]
        else:
            V, s = V[:, ::-1][:, keep], s[keep]
        V, s = np.ascontiguousarray(V), np.ascontiguousarray(s)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, V=V, s=s)  # float64: a float32 basis would make P idempotent only to ~1e-7
        return torch.from_numpy(V), torch.from_numpy(s)

    def _Vs(self, x: torch.Tensor):
        key = (x.device, x.dtype)
        if key not in self._V:
            s = self.s.to(x.device, x.dtype)
            inv2 = 1.0 / (s * s + self.damping)
            self._V[key] = (self.V64.to(x.device, x.dtype), inv2)
        return self._V[key]

    # -- application ------------------------------------------------------------------------------
    def _flat(self, x):
        return x.reshape(-1, x.shape[-2] * x.shape[-1])

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`Px = A^+Ax`, the orthogonal projection onto the row space of A."""
        if self.mode == "cg":
            return self.pinv(self.op(x))
        V, _ = self._Vs(x)
        f = self._flat(x)
        return ((f @ V) @ V.T).reshape(x.shape)

    def pinv(self, y: torch.Tensor, damping=None) -> torch.Tensor:
        """:math:`A^+y` (image layout). ``damping`` overrides the Tikhonov δ for this call: a number or one
        per batch sample (a ``(B,)`` tensor for ``y`` of shape ``(B, …)``)."""
        if damping is None:
            damping = self.damping
        per = isinstance(damping, torch.Tensor) and damping.numel() > 1
        if self.mode == "cg":
            d = damping.to(y.dtype).reshape(-1, *([1] * (y.ndim - 1))) if isinstance(damping, torch.Tensor) else float(damping)
            u = cg(lambda v: self.op(self.op.adjoint(v)) + d * v, y, iters=self.cg_iters, tol=self.cg_tol)
            return self.op.adjoint(u)
        g = self.op.adjoint(y)
        V, _ = self._Vs(g)
        s = self.s.to(g.device, g.dtype)
        f = self._flat(g)
        if per:
            d = damping.to(g.device, g.dtype).reshape(-1, 1)
            if d.shape[0] != f.shape[0]:
                raise CTFlowError(f"pinv: {d.shape[0]} damping values for {f.shape[0]} sinograms")
            inv2 = 1.0 / (s * s + d)
        else:
            inv2 = 1.0 / (s * s + float(damping))
        return (((f @ V) * inv2) @ V.T).reshape(g.shape)

    def pinv_t(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`(A^+)^\\top x = A V Σ^{-2} V^\\top x` (sinogram layout)."""
        if self.mode == "cg":
            u = self.op(x)
            return cg(lambda v: self.op(self.op.adjoint(v)) + self.damping * v, u, iters=self.cg_iters, tol=self.cg_tol)
        V, inv2 = self._Vs(x)
        f = self._flat(x)
        return self.op((((f @ V) * inv2) @ V.T).reshape(x.shape))


#: at most this many decompositions stay in memory (≈ 90 MB each for a 64² image at 30 views)
PINV_CACHE_SIZE = 4
_PINV_CACHE: OrderedDict = OrderedDict()


def _operator_key(op):
    """A value key for an operator: its geometry's fingerprint and projector; identity otherwise."""
    geom = getattr(op, "geometry", None)
    if geom is not None and hasattr(geom, "fingerprint"):
        return ("geometry", geom.fingerprint(), str(getattr(op, "projector", "")), type(getattr(op, "backend", None)).__name__)
    return ("object", id(op))


def pseudo_inverse(op, rcond: float = 1e-3, damping: float = 0.0, mode: str = "auto") -> PseudoInverse:
    """A :class:`PseudoInverse`, cached per (geometry fingerprint, projector, rcond, damping, mode) in a
    least-recently-used cache of :data:`PINV_CACHE_SIZE` entries (:func:`clear_pinv_cache` empties it).
    Operators without a geometry are keyed by identity."""
    key = (_operator_key(op), float(rcond), float(damping), mode)
    hit = _PINV_CACHE.get(key)
    if hit is not None and (key[0][0] == "geometry" or hit.op is op):
        _PINV_CACHE.move_to_end(key)
        return hit
    pinv = PseudoInverse(op, rcond=rcond, damping=damping, mode=mode)
    _PINV_CACHE[key] = pinv
    while len(_PINV_CACHE) > PINV_CACHE_SIZE:
        _PINV_CACHE.popitem(last=False)
    return pinv


def clear_pinv_cache() -> None:
    """Drop every cached pseudo-inverse (memory only; the on-disk decompositions stay)."""
    _PINV_CACHE.clear()


def operator_norm_sq(op) -> float:
    """‖A‖² (cached on the operator by RayTransform.operator_norm)."""
    n = op.operator_norm() if hasattr(op, "operator_norm") else None
    if n is None:  # pragma: no cover
        raise CTFlowError("operator has no operator_norm()")
    return float(n) ** 2
