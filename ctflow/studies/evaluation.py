"""Evaluation sets and method comparisons shared by the benchmarks and the study notebooks.

* :func:`eval_images` — held-out images: procedural phantoms (seeds disjoint from training), an
  OrganCMNIST/MedMNIST-layout ``.npz`` split, or a folder of DICOM slices (HU → the priors' L40/W400
  window in [0, 1], resized to the requested size).
* :func:`measure` — simulate sinograms for a geometry and a noise model (seeded).
* :func:`run_method` — one method on a batch, with PSNR/SSIM per image, wall time, NFE.

Images are ``(n, 1, S, S)`` float32 tensors in [0, 1].
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

HELD_OUT_SEED = 123  # AbdomenPhantomDataset seed for evaluation (training uses seed 0 and 7919 for validation)


def eval_images(n: int = 10, size: int = 64, source: str | os.PathLike = "phantoms", seed: int = HELD_OUT_SEED,
                split: str = "test", phantom_version: int = 1) -> torch.Tensor:
    """``n`` evaluation images ``(n, 1, size, size)`` in [0, 1] from ``source``:
    ``"phantoms"`` (procedural abdomen + 20 % random ellipses, the shipped priors' distribution; phantoms
    ``phantom_version`` 1 or 2), a MedMNIST-layout ``.npz`` (its ``{split}_images``), or a folder of DICOM
    slices."""
    src = str(source)
    if src == "phantoms":
        from ..data.abdomen import AbdomenPhantomDataset

        ds = AbdomenPhantomDataset(n, size=size, seed=seed, kind="mixed", ellipse_fraction=0.2,
                                   version=phantom_version)
        return torch.stack([ds[i][0] for i in range(n)]).float()
    p = Path(src)
    if not p.exists():
        raise DataError("evaluation set not found: give 'phantoms', an OrganCMNIST/MedMNIST-layout .npz file or a "
                        "folder of DICOM slices", src)
    if p.suffix == ".npz":
        imgs = torch.from_numpy(_read_eval_npz(p, split, n))
    elif p.is_dir():
        from ..data.abdomen import hu_to_window
        from ..io import read_dicom_series

        ct = read_dicom_series(p, on_error="skip")
        hu = np.asarray(ct.hu, dtype=np.float32)
        hu = hu[None] if hu.ndim == 2 else hu
        if hu.shape[0] > n:
            idx = np.linspace(0, hu.shape[0] - 1, n).round().astype(int)
            hu = hu[idx]
        imgs = torch.from_numpy(hu_to_window(hu).astype(np.float32))[:, None]
    else:
        raise DataError("evaluation source must be 'phantoms', a MedMNIST-layout .npz or a DICOM folder", src)
    if imgs.shape[-1] != size or imgs.shape[-2] != size:
        imgs = torch.nn.functional.interpolate(imgs, size=(size, size), mode="area" if imgs.shape[-1] > size else "bilinear",
                                               align_corners=None if imgs.shape[-1] > size else False)
    if imgs.shape[0] < n:
        raise DataError(f"only {imgs.shape[0]} images available, {n} requested", src)
    return imgs.clamp(0, 1).contiguous()


def _read_eval_npz(p: Path, split: str, n: int) -> np.ndarray:
    """The first ``n`` images of ``{split}_images`` as float32 ``(n, 1, H, W)`` (÷255 when the values exceed
    1.5), read through :class:`ctflow.io.arrays.NpzFile`: declared sizes checked before allocating, only
    ``n`` images read, NaN/Inf and wrong layouts refused with a DataError naming the file."""
    from ..io.arrays import NpzFile

    key = f"{split}_images"
    with NpzFile(p, "evaluation .npz file") as f:
        if key not in f:
            raise DataError(f"no '{key}' array (keys: {sorted(f.keys)})", str(p))
        shape, _ = f.shape(key)
        ok = (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3))) and all(d >= 1 for d in shape)
        if not ok:
            raise DataError(f"'{key}' must be (N, H, W) or (N, H, W, 1|3) images, got shape {shape}", str(p))
        arr = f.read(key, dtype=np.float32, max_rows=max(int(n), 1))
    if arr.size and float(arr.max()) > 1.5:
        arr = arr / np.float32(255.0)
    if arr.ndim == 4:
        arr = arr[..., 0]
    return np.ascontiguousarray(arr[:, None])


@dataclasses.dataclass(frozen=True)
class NoiseSetting:
    """``kind`` "gaussian" (``level`` = relative σ) or "poisson" (``level`` = I0; ``mu_scale`` maps
    the [0, 1] image units to attenuation per mm)."""

    kind: str = "gaussian"
    level: float = 0.01
    mu_scale: float = 0.05

    @property
    def label(self) -> str:
        return f"gaussian σ={self.level:g}" if self.kind == "gaussian" else f"poisson I0={self.level:g}"

    def apply(self, y: torch.Tensor, seed: int) -> torch.Tensor:
        from ..physics.noise import GaussianNoise, PoissonNoise

        if self.kind == "gaussian":
            return GaussianNoise(relative_sigma=self.level)(y, seed=seed) if self.level > 0 else y.clone()
        if self.kind == "poisson":
            return PoissonNoise(self.level, mu_scale=self.mu_scale)(y, seed=seed)
        raise ValueError(f"unknown noise kind {self.kind!r}")

    def sigma(self, y_clean: torch.Tensor) -> float | None:
        """The σ a likelihood should use (None: let the solver default to 1 % of max|y|)."""
        if self.kind == "gaussian":
            return max(self.level, 1e-4) * float(y_clean.abs().amax())
        # post-log Poisson: var ≈ exp(μ s)/(I0 s²); use the mean variance
        var = torch.exp(self.mu_scale * y_clean.double()) / (self.level * self.mu_scale**2)
        return float(var.mean().sqrt())


def measure(images: torch.Tensor, op, noise: NoiseSetting, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean and noisy sinograms ``(n, 1, A, D)`` of ``images`` (noise seeded per image)."""
    with torch.no_grad():
        clean = op(images)
    noisy = torch.stack([noise.apply(clean[i], seed=seed + i) for i in range(clean.shape[0])])
    return clean, noisy


@dataclasses.dataclass
class MethodResult:
    method: str
    label: str
    images: torch.Tensor
    psnr: np.ndarray
    ssim: np.ndarray
    wall_time: float
    nfe: int
    options: dict

    def row(self) -> dict:
        n = max(len(self.psnr), 1)
        return {
            "method": self.label,
            "psnr_mean": float(np.mean(self.psnr)),
            "psnr_std": float(np.std(self.psnr)),
            "ssim_mean": float(np.mean(self.ssim)),
            "ssim_std": float(np.std(self.ssim)),
            "time_per_image_s": self.wall_time / n,
            "nfe": self.nfe,
        }


def scores(x: torch.Tensor, truth: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """PSNR and SSIM per image (data range 1, images clipped to [0, 1] first)."""
    from ..metrics import psnr, ssim

    a = x.detach().clamp(0, 1).cpu().numpy()[:, 0]
    b = truth.detach().cpu().numpy()[:, 0]
    return (np.array([psnr(a[i], b[i], data_range=1.0) for i in range(len(a))]),
            np.array([ssim(a[i], b[i], data_range=1.0) for i in range(len(a))]))


def run_method(method: str, y: torch.Tensor, op, truth: torch.Tensor, prior=None, label: str | None = None,
               batch_size: int | None = None, **options) -> MethodResult:
    """Reconstruct every sinogram in ``y`` with ``method`` (batched) and score against ``truth``."""
    import warnings

    from ..solvers import get_solver
    from ..solvers.noise_estimate import NoiseEstimateWarning

    solver = get_solver(method, **options)
    pr = prior if solver.needs_prior else None
    bs = batch_size or y.shape[0]
    outs, wall, nfe, sigmas = [], 0.0, 0, []
    for i in range(0, y.shape[0], bs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoiseEstimateWarning)  # recorded in the options instead
            rec = solver(y[i : i + bs], op, prior=pr)
        outs.append(rec.image.reshape(-1, 1, *op.domain_shape))
        wall += rec.wall_time
        nfe = rec.nfe
        s = rec.options.get("noise_std")
        if s is not None:
            sigmas += list(s) if isinstance(s, list) else [s]
    x = torch.cat(outs)
    p, s = scores(x, truth)
    opts = solver.options.to_dict()
    if sigmas:
        opts["noise_std"] = [round(v, 6) for v in sigmas]
        opts["noise_std_source"] = rec.options.get("noise_std_source")
    return MethodResult(method, label or method, x, p, s, wall, nfe, opts)


def markdown_table(rows: list[dict], columns: list[str], headers: list[str] | None = None) -> str:
    """A markdown table of ``rows``; a column ``c`` whose rows carry ``c_mean``/``c_std`` prints as
    "mean ± std" (as :meth:`MethodResult.row` writes them), floats with 3–4 significant digits."""

    def cell(r: dict, c: str) -> str:
        if f"{c}_mean" in r:
            m, s = r[f"{c}_mean"], r.get(f"{c}_std", 0.0)
            return f"{m:.2f} ± {s:.2f}" if abs(m) >= 10 else f"{m:.3f} ± {s:.3f}"
        v = r.get(c, "")
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    heads = headers or columns
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
