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
                split: str = "test") -> torch.Tensor:
    """``n`` evaluation images ``(n, 1, size, size)`` in [0, 1] from ``source``:
    ``"phantoms"`` (procedural abdomen + 20 % random ellipses, the shipped priors' distribution),
    a MedMNIST-layout ``.npz`` (its ``{split}_images``), or a folder of DICOM slices."""
    src = str(source)
    if src == "phantoms":
        from ..data.abdomen import AbdomenPhantomDataset

        ds = AbdomenPhantomDataset(n, size=size, seed=seed, kind="mixed", ellipse_fraction=0.2)
        return torch.stack([ds[i][0] for i in range(n)]).float()
    p = Path(src)
    if not p.exists():
        raise DataError("evaluation set not found: give 'phantoms', an OrganCMNIST/MedMNIST-layout .npz file or a "
                        "folder of DICOM slices", src)
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as f:
            key = f"{split}_images"
            if key not in f:
                raise DataError(f"no '{key}' array (keys: {sorted(f.files)})", str(p))
            arr = f[key][:n].astype(np.float32)
        if arr.max() > 1.5:
            arr = arr / 255.0
        imgs = torch.from_numpy(arr)
        if imgs.ndim == 4 and imgs.shape[-1] in (1, 3):
            imgs = imgs[..., 0]
        imgs = imgs.reshape(imgs.shape[0], 1, *imgs.shape[-2:])
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
        from ..noise import GaussianNoise, PoissonNoise

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
    from ..solvers import get_solver

    solver = get_solver(method, **options)
    pr = prior if solver.needs_prior else None
    bs = batch_size or y.shape[0]
    outs, wall, nfe = [], 0.0, 0
    for i in range(0, y.shape[0], bs):
        rec = solver(y[i : i + bs], op, prior=pr)
        outs.append(rec.image.reshape(-1, 1, *op.domain_shape))
        wall += rec.wall_time
        nfe = rec.nfe
    x = torch.cat(outs)
    p, s = scores(x, truth)
    return MethodResult(method, label or method, x, p, s, wall, nfe, solver.options.to_dict())


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
