"""Every registered method on the bundled demo scan through the one-call API, as a new user would run it.

    python tools/bundled_scan_methods.py            # only method= given: nearest preset, σ estimated
    python tools/bundled_scan_methods.py --true-sigma   # also with the scan's true noise σ (noise_std=...)

Prints one row per method: PSNR/SSIM against the scan's ground truth, the difference to FBP (Hann), the
preset used and the σ the method was given or estimated. The numbers behind the "solvers by default"
targets (MS-Flow ≥ FBP + 2 dB; the other flow methods ≥ FBP + 1 dB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings

import torch

from ctflow.demo import bundled_sinogram
from ctflow.io import read_image_h5, read_sinogram_h5
from ctflow.operators import RayTransform
from ctflow.priors import load_prior
from ctflow.solvers import SOLVERS, reconstruct


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--true-sigma", action="store_true", help="also run with the scan's true noise σ")
    ap.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    scan = read_sinogram_h5(bundled_sinogram())
    truth = torch.from_numpy(read_image_h5(bundled_sinogram(truth=True)).image).float()
    # the scan's noise record: σ = relative_sigma · max|clean sinogram|; max|noisy| stands in for the clean
    # maximum (a few σ above it, so this σ reads ≈ 3 % high)
    rel = (scan.noise or {}).get("relative_sigma")
    true_sigma = float(rel) * float(abs(scan.sinogram).max()) if rel else None
    op = RayTransform(scan.geometry)
    prior = load_prior("default")
    y = torch.from_numpy(scan.sinogram)
    names = args.methods.split(",") if args.methods else sorted(SOLVERS)

    def score(rec):  # as `ctflow demo` scores (Reconstruction.metrics, data range 1, no clipping)
        m = rec.metrics(truth, data_range=1.0)
        return m["psnr"], m["ssim"]

    fbp_psnr, _ = score(reconstruct(y, scan.geometry, method="fbp", operator=op, filter="hann"))
    print(f"bundled scan ({scan.geometry.name}, true σ ≈ {true_sigma:.4g}): FBP (Hann) {fbp_psnr:.2f} dB")
    print(f"{'method':10s} {'PSNR':>7s} {'vs FBP':>7s} {'SSIM':>6s}  σ used (source)  preset")
    for name in names:
        runs = [("estimated", {})]
        if args.true_sigma and true_sigma and "noise_std" in {f.name for f in dataclasses.fields(SOLVERS[name].Options)}:
            runs.append(("true", {"noise_std": float(true_sigma)}))
        for label, extra in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = reconstruct(y, scan.geometry, method=name, operator=op, seed=0,
                                  prior=prior if SOLVERS[name].needs_prior else None, **extra)
            p, s = score(rec)
            sig = rec.options.get("noise_std")
            src = rec.options.get("noise_std_source")  # None: the method's preset does not use σ
            sig = f"{sig:.4g} ({src})" if isinstance(sig, float) and src else "—"
            print(f"{name:10s} {p:7.2f} {p - fbp_psnr:+7.2f} {s:6.3f}  {sig:16s} {rec.options.get('preset') or '—'}"
                  + ("" if label == "estimated" else "  [true σ]"), flush=True)
    print(json.dumps({"fbp_hann_psnr": round(fbp_psnr, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
