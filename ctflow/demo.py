"""The demo run by ``make demo``.

1. **Flow reconstruction** of the bundled sparse-angle sinogram ``abdomen-64-sparse30.h5`` (package data,
   :func:`ctflow.assets.bundled_sinogram`)
   (30 parallel views of a held-out procedural abdomen slice drawn and projected at 256², 1 % noise)
   with FBP (Hann), and TV, MS-Flow and C-ΠGFM through ``ctflow.reconstruct`` with only ``method=`` given
   (nearest shipped preset, noise σ estimated from the sinogram) using the bundled default prior → ``demo.png`` (images and error
   maps), ``metrics.json``, each reconstruction as HDF5 and the MS-Flow one as DICOM.
2. **FBP survey**: the modified Shepp–Logan phantom with *analytic* sinograms (no inverse crime) for
   parallel beam at 30/60/180 views and the clinical-style fan beam at 64/256 views, FBP with Ram-Lak
   and Hann → ``fbp_geometries.png`` and ``fbp_*.npy``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import metrics
from .files import atomic_path, write_text_atomic
from .geometry import load_geometry
from .physics.noise import GaussianNoise
from .operators import fbp
from .physics.phantoms import analytic_sinogram, ellipses_image, shepp_logan_ellipses

FULL = ["parallel-256-sparse30", "parallel-256-sparse60", "parallel-256-sparse180", "fan-512-clinical-sparse64", "fan-512-clinical-sparse256"]
QUICK = ["parallel-64-sparse30", "parallel-64-sparse180", "fan-64-sparse60"]


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, arr)


from .assets import bundled_sinogram  # the bundled scan is package data (importlib.resources)

#: (label, method, options) of the flow comparison. ``None``: ``ctflow.reconstruct`` with only ``method=``
#: given, i.e. the nearest shipped preset and the noise σ estimated from the sinogram (no oracle σ).
#: ``quick`` overrides a few iteration counts for the tests.
FLOW_METHODS = [
    ("FBP (Hann)", "fbp", {"filter": "hann"}),
    ("TV", "tv", None),
    ("MS-Flow", "msflow", None),
    ("C-ΠGFM", "cpigfm", None),
]
QUICK_OVERRIDES = {"tv": {"iterations": 100}, "msflow": {"iterations": 3}}


def flow_demo(out: Path, prior="default", quick: bool = False, seed: int = 0) -> dict:
    """Reconstruct the bundled sinogram with FBP, TV, MS-Flow and C-ΠGFM; write figure and files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from .io import read_image_h5, read_sinogram_h5, write_dicom_image, write_image_h5
    from .operators import RayTransform
    from .priors import load_prior
    from .solvers import reconstruct
    from .solvers.presets import use_preset

    scan = read_sinogram_h5(bundled_sinogram())
    truth = read_image_h5(bundled_sinogram(truth=True)).image
    op = RayTransform(scan.geometry)
    prior = load_prior(prior) if isinstance(prior, (str, Path)) else prior
    y = torch.from_numpy(scan.sinogram)
    rows, images = [], []
    import warnings

    for label, method, opts in FLOW_METHODS:
        quick_o = QUICK_OVERRIDES.get(method, {}) if quick else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the σ-estimate notice: the demo reports σ in metrics.json
            if opts is None:  # the one-call API: preset + estimated σ (quick runs override a few counts)
                pre = use_preset(method, scan.geometry, y, prior=prior) if quick_o else "auto"
                rec = reconstruct(y, scan.geometry, method=method, prior=prior, operator=op, preset=pre, seed=seed,
                                  **quick_o)
            else:
                rec = reconstruct(y, scan.geometry, method=method, prior=prior, operator=op, seed=seed, **opts, **quick_o)
        img = rec.numpy()
        m = rec.metrics(truth, data_range=1.0)
        row = {"method": label, "psnr_db": round(m["psnr"], 3), "ssim": round(m["ssim"], 4), "seconds": round(rec.wall_time, 2),
               "nfe": rec.nfe, "preset": rec.options.get("preset"), "options": rec.options}
        rows.append(row)
        images.append((label, img, row))
        write_image_h5(out / f"{method}.h5", img, geometry=scan.geometry, method=method, params=rec.options,
                       attrs={"units": "window L40/W400 -> [0, 1]"})
        if method == "msflow":
            write_dicom_image(out / "msflow.dcm", img * 400.0 - 160.0, scan.geometry.pixel_size, method="ctflow msflow")
        print(f"{label:18s} PSNR {row['psnr_db']:6.2f} dB  SSIM {row['ssim']:.3f}  {row['seconds']:7.2f} s  {rec.nfe:4d} NFE")
    n = len(images) + 1
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.6))
    axes[0, 0].imshow(truth, cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("truth (held-out phantom)", fontsize=8)
    axes[1, 0].imshow(scan.sinogram, cmap="gray", aspect="auto")
    axes[1, 0].set_title(f"sinogram: {scan.geometry.n_angles} views, 1 % noise", fontsize=8)
    for j, (label, img, row) in enumerate(images, start=1):
        axes[0, j].imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(f"{label}\n{row['psnr_db']:.2f} dB / SSIM {row['ssim']:.3f}", fontsize=8)
        axes[1, j].imshow(np.abs(img - truth), cmap="magma", vmin=0, vmax=0.3)
        axes[1, j].set_title(f"|error|, {row['seconds']:.1f} s, {row['nfe']} NFE", fontsize=8)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("parallel-64-sparse30: FBP vs TV vs flow-prior reconstructions (default prior)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out / "demo.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return {"sinogram": bundled_sinogram().name, "prior": getattr(prior, "meta", {}).get("card", {}).get("name", str(prior) if isinstance(prior, str) else "default"),
            "results": rows}


def run_demo(out: str | Path = "results/demo", quick: bool = False, noise: float = 0.01, seed: int = 0, prior="default") -> dict:
    """Run both parts of the demo into ``out`` (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    flow = flow_demo(out, prior=prior, quick=quick, seed=seed)
    names = QUICK if quick else FULL
    rows = []
    panels = []
    for name in names:
        g = load_geometry(name)
        ell = shepp_logan_ellipses(min(g.image_shape) * g.pixel_size / 2.0)
        truth = ellipses_image(ell, g.image_shape, g.pixel_size, supersample=4).numpy()
        clean = analytic_sinogram(ell, g, detector_supersample=2).astype(np.float32)
        y = GaussianNoise(relative_sigma=noise)(clean, seed=seed)
        for filt in ("ram-lak", "hann"):
            t0 = time.perf_counter()
            rec = fbp(y, g, filter=filt)
            dt = time.perf_counter() - t0
            row = {
                "geometry": name,
                "filter": filt,
                "n_views": g.n_angles,
                "psnr_db": round(metrics.psnr(rec, truth, data_range=1.0), 3),
                "ssim": round(metrics.ssim(rec, truth, data_range=1.0), 4),
                "rmse": round(metrics.rmse(rec, truth), 5),
                "seconds": round(dt, 3),
            }
            rows.append(row)
            _save_npy(out / f"fbp_{name}_{filt}.npy", rec.astype(np.float32))
            print(f"{name:28s} {filt:8s} PSNR {row['psnr_db']:6.2f} dB  SSIM {row['ssim']:.3f}  ({dt:.2f} s)")
            panels.append((f"{name}\n{filt}: {row['psnr_db']:.1f} dB / SSIM {row['ssim']:.2f}", rec))
        _save_npy(out / f"phantom_{name}.npy", truth.astype(np.float32))
        _save_npy(out / f"sinogram_{name}.npy", y)

    cols = 4
    nrow = int(np.ceil((len(panels) + 1) / cols))
    fig, axes = plt.subplots(nrow, cols, figsize=(3.2 * cols, 3.4 * nrow))
    axes = np.atleast_1d(axes).ravel()
    axes[0].imshow(truth, cmap="gray", vmin=0, vmax=0.5)
    axes[0].set_title("phantom (window [0, 0.5])", fontsize=8)
    for ax, (title, img) in zip(axes[1:], panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=0.5)
        ax.set_title(title, fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"FBP of simulated sparse-angle scans ({noise:.0%} Gaussian noise, analytic sinograms)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out / "fbp_geometries.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    summary = {"flow": flow, "noise_relative_sigma": noise, "seed": seed, "results": rows}
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=1))
    print(f"wrote {out / 'demo.png'}, {out / 'fbp_geometries.png'}, {out / 'metrics.json'}, HDF5/DICOM/npy reconstructions")
    return summary
