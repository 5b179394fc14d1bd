"""ASTRA projector calls on torch tensors (zero-copy through DLPack, CPU and CUDA).

ASTRA objects are not thread-safe, so every call that touches ASTRA's registry or runs a projector
holds one process-wide lock. Projector ids live as long as the backend and are freed by a
finaliser (and by :meth:`AstraBackend.close`).
"""

from __future__ import annotations

import threading
import weakref

import torch

from ...errors import BackendError
from ...geometry import FanBeamGeometry, Geometry

ASTRA_LOCK = threading.RLock()

#: User-facing projector names → ASTRA CPU projector types, per geometry kind.
PROJECTORS: dict[str, dict[str, str]] = {
    "parallel": {"line": "line", "linear": "linear", "strip": "strip"},
    "fan": {"line": "line_fanflat", "strip": "strip_fanflat"},
}
DEFAULT_PROJECTOR = {"parallel": "linear", "fan": "line"}


def astra_projector_type(geometry: Geometry, projector: str) -> str:
    """The ASTRA CPU projector type for ``projector`` on ``geometry``, with clear errors."""
    table = PROJECTORS[geometry.kind]
    if projector not in table:
        raise BackendError(
            f"projector {projector!r} is not available for {geometry.kind}-beam geometries; "
            f"choose one of {sorted(table)}"
        )
    if (
        isinstance(geometry, FanBeamGeometry)
        and projector == "strip"
        and not geometry.astra_supports_plain_fanflat
    ):
        raise BackendError(
            "ASTRA's strip_fanflat projector supports only flat detectors without offset; "
            "use projector='line' for curved or offset detectors"
        )
    return table[projector]


def astra_sinogram_shape(geometry: Geometry) -> tuple[int, int]:
    """Shape of ASTRA's own sinogram for this geometry (curved fan: one element per 'view')."""
    if isinstance(geometry, FanBeamGeometry) and geometry.detector_shape == "curved":
        return (geometry.n_angles * geometry.n_detectors, 1)
    return geometry.sinogram_shape


def _delete_projectors(ids: dict) -> None:
    import astra

    with ASTRA_LOCK:
        for pid in ids.values():
            astra.projector.delete(pid)
        ids.clear()


class AstraBackend:
    """Forward/back projection by ASTRA, one image at a time, on the tensor's device.

    CPU tensors use the CPU projector (``line``/``linear``/``strip`` or the ``*_fanflat`` pair),
    whose back projection is the exact transpose of its forward projection. CUDA tensors use
    ASTRA's ``cuda`` projector, whose ray-driven FP and pixel-driven BP are *not* exact adjoints
    (ASTRA's documented behaviour; expect ~1e-2 relative mismatch).
    """

    name = "astra"

    def __init__(self, geometry: Geometry, projector: str):
        self.geometry = geometry
        self.projector = projector
        self.astra_type = astra_projector_type(geometry, projector)
        self._vol_geom, self._proj_geom = geometry.to_astra()
        self._astra_shape = astra_sinogram_shape(geometry)
        self._ids: dict[str, int] = {}
        self._finalizer = weakref.finalize(self, _delete_projectors, self._ids)

    def close(self) -> None:
        """Free the ASTRA projector objects now (they are also freed on garbage collection)."""
        self._finalizer()

    def _projector_id(self, device: torch.device) -> int:
        import astra

        key = str(device) if device.type == "cuda" else "cpu"
        with ASTRA_LOCK:
            if key not in self._ids:
                if device.type == "cuda":
                    if not astra.use_cuda():
                        raise BackendError("this ASTRA build cannot use CUDA here; use CPU tensors or backend='matrix'")
                    self._ids[key] = astra.create_projector(
                        "cuda", self._proj_geom, self._vol_geom, options={"GPUindex": device.index or 0}
                    )
                elif device.type == "cpu":
                    self._ids[key] = astra.create_projector(self.astra_type, self._proj_geom, self._vol_geom)
                else:
                    raise BackendError(f"the astra backend runs on CPU or CUDA tensors, not on {device.type!r}")
        return self._ids[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, H, W)`` float32 contiguous → ``(N, n_angles, n_detectors)``."""
        import astra

        pid = self._projector_id(x.device)
        out = torch.empty((x.shape[0], *self._astra_shape), dtype=torch.float32, device=x.device)
        with ASTRA_LOCK:
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            for i in range(x.shape[0]):
                astra.projector.direct_FP(pid, x[i], out=out[i])
        return out.reshape(x.shape[0], *self.geometry.sinogram_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``y``: ``(N, n_angles, n_detectors)`` float32 contiguous → ``(N, H, W)``."""
        import astra

        pid = self._projector_id(y.device)
        y = y.reshape(y.shape[0], *self._astra_shape)
        out = torch.empty((y.shape[0], *self.geometry.image_shape), dtype=torch.float32, device=y.device)
        with ASTRA_LOCK:
            if y.device.type == "cuda":
                torch.cuda.synchronize(y.device)
            for i in range(y.shape[0]):
                astra.projector.direct_BP(pid, y[i], out=out[i])
        return out
