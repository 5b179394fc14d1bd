"""The system matrix of an ASTRA CPU projector as a torch sparse CSR tensor.

``W = astra.matrix.get(astra.projector.matrix(pid))`` is exactly the linear map ASTRA's CPU
projector applies (rows: sinogram entries in view-major order, columns: pixels in row-major order).
Forward projection is ``W @ X`` and back projection ``Wᵀ @ Y`` with ``Wᵀ`` stored as its own CSR, so
both are one multithreaded sparse-dense product over the whole batch instead of a Python loop of
single-threaded ASTRA calls. Matrices are cached on disk keyed by the geometry's fingerprint, the
projector type and the ASTRA version.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ...files import atomic_path
from ...geometry import Geometry
from .astra import ASTRA_LOCK, astra_projector_type, astra_sinogram_shape

_CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$CTFLOW_CACHE_DIR`` or ``~/.cache/ctflow``."""
    env = os.environ.get("CTFLOW_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ctflow"


def build_system_matrix(geometry: Geometry, projector: str):
    """Ask ASTRA for its CPU projector's sparse matrix (scipy CSR, float32, int32 indices)."""
    import astra

    ptype = astra_projector_type(geometry, projector)
    vol, proj = geometry.to_astra()
    with ASTRA_LOCK:
        pid = astra.create_projector(ptype, proj, vol)
        try:
            mid = astra.projector.matrix(pid)
            try:
                w = astra.matrix.get(mid)
            finally:
                astra.matrix.delete(mid)
        finally:
            astra.projector.delete(pid)
    w = w.tocsr()
    w.sum_duplicates()
    w.sort_indices()
    index_dtype = np.int32 if w.nnz < 2**31 - 1 else np.int64
    w.indices = w.indices.astype(index_dtype)
    w.indptr = w.indptr.astype(index_dtype)
    w.data = w.data.astype(np.float32)
    return w


class MatrixBackend:
    """Sparse-matrix forward/back projection (torch CSR), on any device torch supports.

    Args:
        geometry, projector: as for :class:`~ctflow.RayTransform`.
        cache_dir: folder for cached matrices (default :func:`default_cache_dir`); ``False``
            disables the disk cache.
    """

    name = "matrix"

    def __init__(self, geometry: Geometry, projector: str, cache_dir: str | os.PathLike | bool | None = None):
        self.geometry = geometry
        self.projector = projector
        self.astra_type = astra_projector_type(geometry, projector)
        self._cache_dir = None if cache_dir is False else Path(cache_dir) if cache_dir else default_cache_dir()
        self._scipy = None
        self._scipy_t = None
        self._torch: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- the matrix ----------------------------------------------------------------------
    @property
    def cache_key(self) -> str:
        import astra

        text = f"{self.geometry.fingerprint()}|{self.astra_type}|astra-{astra.__version__}|fmt{_CACHE_FORMAT}"
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    @property
    def cache_path(self) -> Path | None:
        return None if self._cache_dir is None else self._cache_dir / "matrices" / f"{self.cache_key}.npz"

    @property
    def expected_shape(self) -> tuple[int, int]:
        rows = int(np.prod(astra_sinogram_shape(self.geometry)))
        return (rows, int(np.prod(self.geometry.image_shape)))

    def scipy_matrix(self):
        """The system matrix as a scipy CSR (built once, then read from the disk cache)."""
        if self._scipy is None:
            cached = self._load_cached()
            self._scipy = cached if cached is not None else self._build_and_cache()
        return self._scipy

    def _load_cached(self):
        import scipy.sparse as sp

        path = self.cache_path
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                shape = tuple(int(s) for s in z["shape"])
                w = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
            if shape != self.expected_shape or w.indptr[-1] != w.nnz:
                raise ValueError(f"shape {shape} != {self.expected_shape}")
            return w
        except Exception as e:  # a corrupt cache entry is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable system-matrix cache {path} ({e}); rebuilding it", stacklevel=3)
            return None

    def _build_and_cache(self):
        w = build_system_matrix(self.geometry, self.projector)
        path = self.cache_path
        if path is not None:
            try:
                with atomic_path(path) as tmp:
                    np.savez(tmp, data=w.data, indices=w.indices, indptr=w.indptr, shape=np.array(w.shape))
            except OSError as e:
                warnings.warn(f"could not write the system-matrix cache {path}: {e}", stacklevel=3)
        return w

    def torch_matrices(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, Wᵀ)`` as torch CSR tensors on ``device`` with values of ``dtype``."""
        key = (str(device), dtype)
        if key not in self._torch:
            w = self.scipy_matrix()
            self._torch[key] = (_to_torch_csr(w, device, dtype), _to_torch_csr(self._scipy_transpose(), device, dtype))
        return self._torch[key]

    def _scipy_transpose(self):
        """Wᵀ as its own sorted CSR, computed once (it is the slow part of loading a cached matrix)."""
        if self._scipy_t is None:
            wt = self.scipy_matrix().T.tocsr()
            wt.sort_indices()
            self._scipy_t = wt
        return self._scipy_t

    @property
    def nnz(self) -> int:
        return int(self.scipy_matrix().nnz)

    # ---- application ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, W)`` → ``(N, n_angles, n_detectors)`` in ``x``'s dtype and device."""
        w, _ = self.torch_matrices(x.device, x.dtype)
        cols = x.reshape(x.shape[0], -1).T.contiguous()
        y = torch.sparse.mm(w, cols)
        return y.T.reshape(x.shape[0], *self.geometry.sinogram_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``(N, n_angles, n_detectors)`` → ``(N, H, W)``."""
        _, wt = self.torch_matrices(y.device, y.dtype)
        cols = y.reshape(y.shape[0], -1).T.contiguous()
        x = torch.sparse.mm(wt, cols)
        return x.T.reshape(y.shape[0], *self.geometry.image_shape)


def _to_torch_csr(w, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(
            torch.from_numpy(np.ascontiguousarray(w.indptr)),
            torch.from_numpy(np.ascontiguousarray(w.indices)),
            torch.from_numpy(np.ascontiguousarray(w.data)).to(dtype),
            size=w.shape,
            check_invariants=False,  # ASTRA's CSR is sorted and in range by construction
        ).to(device)
