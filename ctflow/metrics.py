"""Image-quality metrics: PSNR and SSIM (scikit-image's implementations) and RMSE.

All take ``(x, reference)`` as torch tensors or numpy arrays of shape ``(H, W)`` or ``(..., H, W)``.
A single image gives a float; a batch gives a float64 numpy array of the leading shape.
``data_range`` defaults to the reference's max − min, per image; pass it explicitly (e.g. 1.0 for
images in [0, 1]) when comparing across images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ShapeError

__all__ = ["psnr", "rmse", "ssim"]


def _pairs(x: Any, ref: Any):
    xa = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    ra = ref.detach().cpu().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    if xa.shape != ra.shape or xa.ndim < 2:
        raise ShapeError(f"metrics need two images of the same shape (..., H, W); got {xa.shape} and {ra.shape}")
    lead = xa.shape[:-2]
    return xa.reshape(-1, *xa.shape[-2:]).astype(np.float64), ra.reshape(-1, *ra.shape[-2:]).astype(np.float64), lead


def _reduce(values: list[float], lead: tuple):
    arr = np.asarray(values, dtype=np.float64).reshape(lead)
    return float(arr) if lead == () else arr


def _range(r: np.ndarray, data_range: float | None) -> float:
    dr = float(r.max() - r.min()) if data_range is None else float(data_range)
    if dr <= 0:
        raise ValueError("data_range is zero (constant reference image); pass data_range= explicitly")
    return dr


def psnr(x: Any, reference: Any, data_range: float | None = None):
    """Peak signal-to-noise ratio in dB: 10 log10(data_range² / MSE)."""
    from skimage.metrics import peak_signal_noise_ratio

    xs, rs, lead = _pairs(x, reference)
    return _reduce([peak_signal_noise_ratio(r, a, data_range=_range(r, data_range)) for a, r in zip(xs, rs)], lead)


def ssim(x: Any, reference: Any, data_range: float | None = None, **kwargs):
    """Structural similarity (Wang et al. 2004; scikit-image defaults: 7×7 uniform window)."""
    from skimage.metrics import structural_similarity

    xs, rs, lead = _pairs(x, reference)
    return _reduce([structural_similarity(r, a, data_range=_range(r, data_range), **kwargs) for a, r in zip(xs, rs)], lead)


def rmse(x: Any, reference: Any):
    """Root-mean-square error (in the images' units)."""
    xs, rs, lead = _pairs(x, reference)
    return _reduce([float(np.sqrt(np.mean((a - r) ** 2))) for a, r in zip(xs, rs)], lead)
