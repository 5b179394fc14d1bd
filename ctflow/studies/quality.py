"""Reconstruction quality, time and NFE of every method on a held-out evaluation set.

    python -m ctflow.studies.quality                    # 64², parallel beam, 8/16/30/60 angles, σ = 1 %
    python -m ctflow.studies.quality --quick            # 4 images, 30 angles (minutes on 2 CPU cores)
    python -m ctflow.studies.quality --poisson 1e4      # add the Poisson (I0 = 1e4, μ scale 0.05/mm) setting
    python -m ctflow.studies.quality --eval-set my.npz  # OrganCMNIST-layout .npz or a DICOM folder
    python -m ctflow.studies.quality --presets          # every method with its shipped preset (as `ctflow benchmark`)
    python -m ctflow.studies.quality --oracle-sigma     # give the flow methods the true σ (default: estimated)

Prints one table per (angles, noise) setting, the comparison lines, and writes ``quality.csv``,
``quality.md``, ``psnr_vs_angles.png`` and ``examples_<angles>.png`` to ``--out``. Every method sees the
same sinograms; flow methods use the same prior. ``ctflow benchmark`` runs this study (and the memory
study) with the settings behind the README's results section.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

# (label, method, options): the per-method defaults except where stated. MS-Flow and D-Flow keep their
# iterates in the prior's [0, 1] range (box) and stop early (D-Flow: 3 L-BFGS rounds; more fit the noise);
# MS-Flow uses ρ = 100 and α = 0.5; "mean of 16" is the average of 16 posterior samples (``n_samples=16``).
# Defaults were tuned on the tuning set (phantom seed 123, first 2-4 images);
# the scores here are on a separate evaluation set (seed EVAL_SEED).
METHODS = [
    ("FBP (hann)", "fbp", {"filter": "hann"}),
    ("SIRT", "sirt", {"iterations": 200}),
    ("TV", "tv", {}),
    ("D-Flow", "dflow", {"box": (0.0, 1.0), "iterations": 3}),
    ("MS-Flow", "msflow", {"rho": 100.0, "box": (0.0, 1.0), "blend": 0.5}),
    ("MS-Flow + TV", "msflow", {"rho": 30.0, "box": (0.0, 1.0), "tv_weight": 0.5}),
    ("ΠGFM (100 NFE)", "pigfm", {"steps": 100}),
    ("ΠGFM (20 NFE)", "pigfm", {"steps": 20}),
    ("ΠGFM (20 NFE) mean of 16", "pigfm", {"steps": 20, "n_samples": 16}),
    ("C-ΠGFM (5 NFE)", "cpigfm", {"steps": 5}),
    ("C-ΠGFM (10 NFE)", "cpigfm", {"steps": 10}),
    ("OT-ODE (100 NFE)", "otode", {"steps": 100}),
    ("PnP-Flow", "pnpflow", {}),
    ("DPS-flow", "dps", {}),
]

#: one row per method with the nearest shipped preset (``ctflow tune``) and the noise σ estimated from each
#: sinogram — what ``ctflow.reconstruct(y, geometry, method=…)`` does; ``ctflow benchmark`` runs these
#: (``--hand-picked`` runs :data:`METHODS` instead). "mean of 16" averages 16 posterior samples of the preset.
PRESET_METHODS = [
    ("FBP (hann)", "fbp", {"filter": "hann"}),
    ("SIRT", "sirt", None),
    ("TV", "tv", None),
    ("D-Flow", "dflow", None),
    ("MS-Flow", "msflow", None),
    ("ΠGFM", "pigfm", None),
    ("ΠGFM mean of 16", "pigfm", {"n_samples": 16, "preset": True}),
    ("C-ΠGFM", "cpigfm", None),
    ("OT-ODE", "otode", None),
    ("PnP-Flow", "pnpflow", None),
    ("DPS-flow", "dps", None),
]

EVAL_SEED = 2027  # phantom seed of the evaluation set (tuning used seed 123; training seeds 0 and 7919)
FLOW_PREFIXES = ("D-Flow", "MS-Flow", "ΠGFM", "C-ΠGFM", "OT-ODE", "PnP-Flow", "DPS-flow")
CSV_KEYS = ["noise", "angles", "method", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "time_per_image_s",
            "nfe", "options", "preset"]


def select_methods(spec: str | None, presets: bool = False) -> list[tuple[str, str, dict]]:
    """The METHODS (or PRESET_METHODS) entries named (by label or method name) in a comma-separated
    ``spec`` (None: all)."""
    table = PRESET_METHODS if presets else METHODS
    if not spec:
        return list(table)
    want = [m.strip() for m in spec.split(",") if m.strip()]
    picked = [m for m in table if m[0] in want or m[1] in want]
    known = {m[0] for m in table} | {m[1] for m in table}
    unknown = [w for w in want if w not in known]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown method(s) {unknown} in --methods; choose from {sorted({m[1] for m in METHODS})} "
                          f"or the labels {[m[0] for m in METHODS]}")
    return picked


def structured_examples(truth: torch.Tensor, k: int = 2) -> list[int]:
    """Indices (ascending) of the ``k`` images with the most edge content, Σ|∇x| — the example figures show
    anatomy rather than, say, one of the evaluation set's plain random-ellipse images."""
    x = truth[:, 0].double()
    energy = (x.diff(dim=-1).abs().sum((-1, -2)) + x.diff(dim=-2).abs().sum((-1, -2))).numpy()
    return sorted(int(i) for i in np.argsort(-energy, kind="stable")[: min(k, len(energy))])


def quality_study(truth: torch.Tensor, prior, angles: list[int], settings, methods, seed: int = 0,
                  overrides: dict[str, dict] | None = None, log: Callable[[str], None] = print,
                  print_comparisons: bool = True, example_indices: list[int] | None = None,
                  oracle_sigma: bool = False) -> tuple[list[dict], dict]:
    """Run ``methods`` on ``truth`` measured with parallel-beam ``angles`` under each noise setting.

    Options ``None`` (or containing ``"preset": True``) mean the nearest shipped preset for the method,
    prior, geometry and estimated σ (the row's ``preset`` names it). The noise σ is estimated from each
    sinogram unless ``oracle_sigma`` (then the simulated noise's true σ is passed as ``noise_std``).

    Returns the table rows (one per method × angles × noise) and ``examples[angles][label]``, the
    reconstructions ``(k, H, W)`` of the images ``example_indices`` (default: :func:`structured_examples`)
    under the first noise setting. ``overrides[method]`` replaces options (quick runs)."""
    from .. import RayTransform, load_geometry
    from ..solvers import SOLVERS
    from .evaluation import measure, run_method

    size = truth.shape[-1]
    idx = structured_examples(truth) if example_indices is None else list(example_indices)
    rows, examples = [], {}
    for noise in settings:
        for n_ang in angles:
            geom = load_geometry(f"parallel-{size}-sparse{n_ang}")
            op = RayTransform(geom)
            clean, y = measure(truth, op, noise, seed=seed)
            sigma = noise.sigma(clean)
            sub = []
            log(f"\n== {geom.name}: {n_ang} angles, {noise.label}, {truth.shape[0]} images ==")
            log(f"{'method':18s} {'PSNR (dB)':>14s} {'SSIM':>14s} {'s/image':>9s} {'NFE':>5s}")
            for label, method, opts in methods:
                preset_name = None
                base = dict(opts or {})
                if opts is None or base.pop("preset", False):
                    import warnings

                    from ..solvers.presets import use_preset

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        pre = use_preset(method, geom, y, prior=prior if SOLVERS[method].needs_prior else None)
                    if pre is not None:
                        preset_name = pre["name"]
                        base = pre.solver_options() | base
                o = base | dict((overrides or {}).get(method, {}))
                if oracle_sigma and "noise_std" in {f.name for f in dataclasses.fields(SOLVERS[method].Options)}:
                    o.setdefault("noise_std", sigma)  # the true σ of the simulated noise
                o["seed"] = seed
                res = run_method(method, y, op, truth, prior=prior, label=label, **o)
                r = res.row() | {"angles": n_ang, "noise": noise.label, "options": json.dumps(res.options),
                                 "preset": preset_name}
                sub.append(r)
                log(f"{label:18s} {r['psnr_mean']:7.2f} ± {r['psnr_std']:4.2f} {r['ssim_mean']:7.3f} ± "
                    f"{r['ssim_std']:.3f} {r['time_per_image_s']:9.3f} {r['nfe']:5d}")
                if noise is settings[0]:
                    examples.setdefault(n_ang, {})[label] = res.images[idx, 0].clamp(0, 1).numpy()
            if print_comparisons and (n_ang == 30 or len(angles) == 1):
                log("comparisons:")
                for line in comparisons(sub):
                    log("  " + line)
            rows += sub
    return rows, examples


def comparisons(rows: list[dict]) -> list[str]:
    """Plain comparison lines at one setting (no judgement): the best flow method against TV and FBP,
    MS-Flow against D-Flow, and C-ΠGFM against ΠGFM and OT-ODE (PSNR difference in dB and speed ratio)."""
    by = {r["method"]: r for r in rows}
    out = []
    fbp, tv = by.get("FBP (hann)"), by.get("TV")
    flows = [r for r in rows if r["method"].split(" ")[0] in FLOW_PREFIXES]
    if flows and (fbp or tv):
        best = max(flows, key=lambda r: r["psnr_mean"])
        vs = [f"{_gap(best, ref)} vs {ref['method']} ({ref['psnr_mean']:.2f} dB)" for ref in (tv, fbp) if ref]
        out.append(f"best flow method: {best['method']} {best['psnr_mean']:.2f} dB, " + ", ".join(vs))
    ms, df = by.get("MS-Flow"), by.get("D-Flow")
    if ms and df:
        out.append(f"MS-Flow vs D-Flow: {ms['psnr_mean']:.2f} vs {df['psnr_mean']:.2f} dB ({_gap(ms, df)}), "
                   f"{_speed(ms, df)}")
    refs = [r for r in (by.get("ΠGFM (100 NFE)") or by.get("ΠGFM"), by.get("OT-ODE (100 NFE)") or by.get("OT-ODE")) if r]
    for cr in (r for r in rows if r["method"].startswith("C-ΠGFM") and (r["nfe"] <= 10 or r["method"] == "C-ΠGFM")):
        for ref in refs:
            out.append(f"{cr['method']} vs {ref['method']}: {cr['psnr_mean']:.2f} vs {ref['psnr_mean']:.2f} dB "
                       f"({_gap(cr, ref)}), {_speed(cr, ref)}")
    return out


def _gap(row: dict, ref: dict) -> str:
    return f"{row['psnr_mean'] - ref['psnr_mean']:+.2f} dB"


def _speed(row: dict, ref: dict) -> str:
    """How much faster ``row`` ran than ``ref`` per image (or slower)."""
    ratio = ref["time_per_image_s"] / max(row["time_per_image_s"], 1e-9)
    return f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / max(ratio, 1e-9):.1f}× slower"


def write_csv(path: Path, rows: list[dict], extra_keys: tuple[str, ...] = ()) -> None:
    from ..files import atomic_path

    keys = list(extra_keys) + CSV_KEYS
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in keys})


def read_csv(path: Path) -> list[dict]:
    """Rows written by :func:`write_csv`, with numbers parsed back."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "time_per_image_s"):
            r[k] = float(r[k])
        r["nfe"], r["angles"] = int(r["nfe"]), int(r["angles"])
    return rows


def plot_psnr_vs_angles(path: Path, rows: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    labels = list(dict.fromkeys(r["method"] for r in rows))
    colours = plt.cm.tab20(np.linspace(0, 1, 20))
    for k, label in enumerate(labels):
        rr = sorted((r for r in rows if r["method"] == label), key=lambda r: r["angles"])
        shift = 1.0 + 0.006 * (k - (len(labels) - 1) / 2)  # small horizontal offsets keep the error bars apart
        ax.errorbar([r["angles"] * shift for r in rr], [r["psnr_mean"] for r in rr], yerr=[r["psnr_std"] for r in rr],
                    marker="osD^v<>ph*X"[k % 11], ms=4, capsize=2, lw=1.2, color=colours[(2 * k) % 20 + (2 * k) // 20 % 2],
                    label=label)
    ax.set_xscale("log")
    ax.minorticks_off()
    ticks = sorted({r["angles"] for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("number of projection angles")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path)


def plot_examples(path: Path, truth: np.ndarray, images: dict[str, np.ndarray], title: str | None = None,
                  names: list[str] | None = None) -> None:
    """Truth and one reconstruction per method side by side on the [0, 1] grey scale; ``truth`` ``(k, H, W)``
    and each image ``(k, H, W)`` give k rows (2-D arrays give one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.asarray(truth).reshape(-1, *np.shape(truth)[-2:])
    rows, n = truth.shape[0], len(images) + 1
    fig, axes = plt.subplots(rows, n, figsize=(1.9 * n, 2.0 * rows + (0.3 if title else 0.2)), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(truth[r], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title("truth" + (f" ({names[r]})" if names else ""), fontsize=8)
        for a, (label, im) in zip(axes[r, 1:], images.items()):
            a.imshow(np.asarray(im).reshape(-1, *truth.shape[-2:])[r], cmap="gray", vmin=0, vmax=1)
            a.set_title(label, fontsize=7)
    for a in axes.ravel():
        a.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..files import atomic_path

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    from .._version import __version__
    from ..priors import load_prior
    from .evaluation import NoiseSetting, eval_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="default", help="prior name or folder (default: the shipped default)")
    ap.add_argument("--size", type=int, default=None, help="image size (default: the prior's)")
    ap.add_argument("--angles", default="8,16,30,60")
    ap.add_argument("--n-images", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.01, help="relative Gaussian σ")
    ap.add_argument("--poisson", type=float, default=None, help="also run a Poisson setting with this I0")
    ap.add_argument("--poisson-only", action="store_true", help="run only the Poisson setting")
    ap.add_argument("--methods", default=None, help="comma-separated labels or method names (default: all)")
    ap.add_argument("--presets", action="store_true", help="run every method with its nearest shipped preset (PRESET_METHODS)")
    ap.add_argument("--oracle-sigma", action="store_true", help="pass the true noise σ instead of estimating it")
    ap.add_argument("--eval-set", default="phantoms", help="'phantoms', an OrganCMNIST-layout .npz, or a DICOM folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="4 images, 30 angles")
    ap.add_argument("--out", default="results/quality")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.n_images, args.angles = 4, "30"

    prior = load_prior(args.prior)
    size = args.size or prior.image_size
    angles = [int(a) for a in args.angles.split(",")]
    methods = select_methods(args.methods, presets=args.presets)
    settings = [] if args.poisson_only else [NoiseSetting("gaussian", args.noise)]
    if args.poisson:
        settings.append(NoiseSetting("poisson", args.poisson))
    if not settings:
        ap.error("--poisson-only needs --poisson I0")
    truth = eval_images(args.n_images, size, args.eval_set, seed=EVAL_SEED)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    rows, examples = quality_study(truth, prior, angles, settings, methods, seed=args.seed,
                                   log=lambda s: print(s, flush=True), oracle_sigma=args.oracle_sigma)
    write_csv(out / "quality.csv", rows)
    lines = [
        "# Reconstruction quality (python -m ctflow.studies.quality)", "",
        f"- command: `python -m ctflow.studies.quality {' '.join(sys.argv[1:] if argv is None else argv)}`",
        (f"- machine: {platform.platform()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
         f"ctflow {__version__}"),
        (f"- prior: {args.prior} ({prior.image_size}²); evaluation set: {args.eval_set}, {args.n_images} images; "
         f"seed {args.seed}; total {time.perf_counter() - t_start:.0f} s"), "",
    ] + markdown_tables(rows)
    from ..files import atomic_path

    with atomic_path(out / "quality.md") as tmp:
        Path(tmp).write_text("\n".join(lines))
    plot_psnr_vs_angles(out / "psnr_vs_angles.png", [r for r in rows if r["noise"] == settings[0].label],
                        f"{args.eval_set}, {settings[0].label}")
    idx = structured_examples(truth)
    for ang, imgs in examples.items():
        plot_examples(out / f"examples_{ang}.png", truth[idx, 0].numpy(), imgs, names=[f"image {i}" for i in idx])
    print(f"\nwrote {out}/quality.csv, quality.md, psnr_vs_angles.png, examples_*.png")
    return 0


def markdown_tables(rows: list[dict], heading: str = "##") -> list[str]:
    """One markdown table per (noise, angles) setting, with the comparison lines at 30 angles."""
    lines = []
    for (noise, ang) in dict.fromkeys((r["noise"], r["angles"]) for r in rows):
        sub = [r for r in rows if r["noise"] == noise and r["angles"] == ang]
        lines += [f"{heading} {ang} angles, {noise}", "", "| method | PSNR (dB) | SSIM | s/image | NFE |",
                  "|---|---|---|---|---|"]
        for r in sub:
            lines.append(f"| {r['method']} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.3f} ± "
                         f"{r['ssim_std']:.3f} | {fmt_time(r['time_per_image_s'])} | {r['nfe']} |")
        if ang == 30:
            lines += ["", "Comparisons:", ""] + [f"- {t}" for t in comparisons(sub)]
        lines.append("")
    return lines


def fmt_time(s: float) -> str:
    return f"{s:.2g}" if s < 0.01 else f"{s:.3f}" if s < 1 else f"{s:.2f}" if s < 10 else f"{s:.1f}"


if __name__ == "__main__":
    sys.exit(main())
