"""What every solver returns: :class:`Reconstruction`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..errors import ShapeError


@dataclasses.dataclass
class Reconstruction:
    """A reconstruction and how it was made.

    ``image`` has the layout of the input sinogram's leading dims (``(H, W)``, ``(B, H, W)`` or
    ``(B, 1, H, W)``); ``std`` (same layout) and ``samples`` (``(n_samples, *image.shape)``) are set
    for stochastic methods run with ``n_samples > 1``. ``history`` maps a term name (``data_misfit`` =
    ½‖Ax − y‖² summed over the batch, objective terms, …) to its per-iteration values (of the first
    posterior sample with ``n_samples > 1``); ``nfe`` counts
    forward evaluations of the prior network (a call on a batch of sinograms counts once; a call on the
    stacked posterior samples counts once per sample, as if they ran one by one); ``peak_memory`` is the
    call's own peak in bytes above what was in use when it started (:class:`ctflow.peak_memory.PeakMemory`:
    CUDA allocated memory, or the resident set on CPU; ``peak_memory_kind`` says which). ``options``
    holds every option used, including the sinogram noise σ (``noise_std``, one per sinogram for a
    batch) and whether it was given or estimated (``noise_std_source``); ``preset`` names the preset
    ``ctflow.reconstruct`` took the options from.
    """

    image: torch.Tensor
    method: str
    options: dict
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    nfe: int = 0
    wall_time: float = 0.0
    peak_memory: int = 0
    peak_memory_kind: str = "cpu_rss_peak"
    std: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    #: the shipped / user preset whose options were used (``ctflow.reconstruct``), as a summary dict
    preset: dict | None = None

    def numpy(self) -> np.ndarray:
        return self.image.detach().cpu().numpy()

    def metrics(self, truth, data_range: float | None = None) -> dict[str, float]:
        """PSNR (dB), SSIM and RMSE against ``truth`` (same layout as ``image``)."""
        from .. import metrics as m

        x = self.numpy()
        ref = truth.detach().cpu().numpy() if isinstance(truth, torch.Tensor) else np.asarray(truth)
        if ref.shape != x.shape:
            raise ShapeError(f"truth has shape {ref.shape} but the reconstruction is {x.shape}")
        return {
            "psnr": float(np.mean(m.psnr(x, ref, data_range=data_range))),
            "ssim": float(np.mean(m.ssim(x, ref, data_range=data_range))),
            "rmse": float(np.mean(m.rmse(x, ref))),
        }

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return {
            "method": self.method,
            "options": self.options,
            "nfe": self.nfe,
            "wall_time_s": self.wall_time,
            "peak_memory_bytes": self.peak_memory,
            "peak_memory_kind": self.peak_memory_kind,
            "final": {k: v[-1] for k, v in self.history.items() if v},
            "image_shape": list(self.image.shape),
            "has_std": self.std is not None,
            "preset": self.preset,
        }

    def __repr__(self) -> str:
        return (
            f"Reconstruction(method={self.method!r}, image={tuple(self.image.shape)}, nfe={self.nfe}, "
            f"wall_time={self.wall_time:.2f}s, iterations={max((len(v) for v in self.history.values()), default=0)})"
        )
