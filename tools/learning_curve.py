"""Learning curve of a training run: reconstruction quality of its EMA snapshots against images seen.

For every EMA snapshot ``RUN/ema/step-NNNNNNN.safetensors`` (kept during training by
``tools/snapshot_ema.sh``) and, as the starting point, the prior the run was initialised from, score
ΠGFM (20 NFE), MS-Flow and C-ΠGFM (10 NFE) on a small tuning set (phantoms v2 + random ellipses, seeds
disjoint from training, tuning and evaluation), 30 parallel views, 1 % Gaussian noise, beside TV on the
same data. Scores go to a CSV that is extended, not recomputed, when new snapshots appear; the figure
plots PSNR against the images the network has seen (the init prior's images included).

    nice python tools/learning_curve.py training/phantom-64-v2 --init-prior ctflow/assets/priors/phantom-64 \
        --out docs/prior_learning_curve

Settings of the flow methods are those of the benchmark (``ctflow.studies.quality.METHODS``), so the curve
says how the benchmark numbers move with training.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from ctflow import RayTransform, load_geometry
from ctflow.data.abdomen import AbdomenPhantomDataset
from ctflow.priors.store import load_prior_folder, load_state_dict_checked
from ctflow.priors.unet import UNet, UNetConfig
from ctflow.priors.velocity import NetworkPrior
from ctflow.simulate import with_views
from ctflow.studies.evaluation import NoiseSetting, measure, run_method
from ctflow.studies.quality import METHODS

TUNING_SEED = 4242  # AbdomenPhantomDataset seed: training uses 0 / 7919, tuning 123, evaluation 2027
LABELS = ("ΠGFM (20 NFE)", "MS-Flow", "C-ΠGFM (10 NFE)")
FIELDS = ["step", "images_seen", "method", "psnr_mean", "psnr_std", "ssim_mean", "seconds"]


def tuning_set(n: int, size: int = 64, version: int = 2) -> torch.Tensor:
    ds = AbdomenPhantomDataset(n, size=size, seed=TUNING_SEED, kind="mixed", ellipse_fraction=0.2, version=version)
    return torch.stack([ds[i][0] for i in range(n)]).float()


def snapshots(run: Path) -> list[tuple[int, Path]]:
    out = []
    for p in sorted((run / "ema").glob("step-*.safetensors")):
        m = re.match(r"step-(\d+)\.safetensors$", p.name)
        if m:
            out.append((int(m.group(1)), p))
    return out


def run_config(run: Path) -> tuple[UNetConfig, int]:
    """The run's model config and batch size (from its latest checkpoint)."""
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    state = json.loads((run / "checkpoints" / latest["path"] / "state.json").read_text())
    train = state["train"]
    return UNetConfig.from_dict(state["model"]), int(train["batch_size"])


def prior_from_snapshot(cfg: UNetConfig, path: Path, meta: dict) -> NetworkPrior:
    from safetensors.torch import load_file

    net = UNet(cfg)
    load_state_dict_checked(net, load_file(str(path)), str(path))
    net.eval().requires_grad_(False)
    return NetworkPrior(net, meta)


def init_images_seen(prior_dir: Path) -> int:
    card = json.loads((prior_dir / "prior.json").read_text()).get("card", {})
    t = card.get("training", {})
    return int(card.get("images_seen", int(card.get("steps", 0)) * int(t.get("batch_size", 0))))


def read_rows(csv_path: Path) -> list[dict]:
    if not csv_path.exists():
        return []
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(csv_path: Path, rows: list[dict]) -> None:
    """The CSV, one row per (step, method) — the last one wins — sorted by step."""
    unique = {(int(r["step"]), r["method"]): r for r in rows}
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(unique[k] for k in sorted(unique))


def plot(rows: list[dict], png: Path, tv: float, fbp: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label in LABELS:
        pts = sorted((int(r["images_seen"]), float(r["psnr_mean"]), float(r["psnr_std"])) for r in rows if r["method"] == label)
        if pts:
            x, y, _ = (np.array(v) for v in zip(*pts))
            ax.plot(x / 1e3, y, marker="o", ms=4, label=label)
    ax.axhline(tv, color="k", ls="--", lw=1, label=f"TV ({tv:.2f} dB)")
    ax.axhline(fbp, color="gray", ls=":", lw=1, label=f"FBP Hann ({fbp:.2f} dB)")
    ax.set_xlabel("images seen (thousands)")
    ax.set_ylabel("PSNR (dB), tuning set")
    ax.set_title("phantom-64 v2: reconstruction quality vs training (30 views, σ = 1 %)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="training run folder (checkpoints/, ema/)")
    ap.add_argument("--init-prior", type=Path, default=None, help="prior folder the run started from (its score is step 0)")
    ap.add_argument("--out", type=Path, default=Path("docs/prior_learning_curve"), help="output stem: .csv and .png")
    ap.add_argument("--n-images", type=int, default=4)
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--every", type=int, default=1, help="score every k-th snapshot only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg, batch = run_config(args.run)
    base = init_images_seen(args.init_prior) if args.init_prior else 0
    geom = with_views(load_geometry(f"parallel-{cfg.image_size}-sparse30"), args.views)
    op = RayTransform(geom)
    truth = tuning_set(args.n_images, cfg.image_size)
    _, y = measure(truth, op, NoiseSetting("gaussian", args.noise), seed=TUNING_SEED)
    settings = {label: (m, o) for label, m, o in METHODS}
    tv = run_method("tv", y, op, truth, **settings["TV"][1])
    fbp = run_method("fbp", y, op, truth, filter="hann")
    csv_path, png = args.out.with_suffix(".csv"), args.out.with_suffix(".png")
    rows = read_rows(csv_path)
    done = {(int(r["step"]), r["method"]) for r in rows}
    todo: list[tuple[int, object]] = []
    if args.init_prior is not None:
        todo.append((0, args.init_prior))
    todo += [(s, p) for i, (s, p) in enumerate(snapshots(args.run)) if i % args.every == 0]
    for step, src in todo:
        if all((step, label) in done for label in LABELS):
            continue
        if isinstance(src, Path) and src.is_dir():
            net, meta = load_prior_folder(src)
            net.requires_grad_(False)
            prior = NetworkPrior(net, meta)
        else:
            prior = prior_from_snapshot(cfg, src, {"card": {"step": step}})
        for label in LABELS:
            if (step, label) in done:
                continue
            method, opts = settings[label]
            t0 = time.perf_counter()
            r = run_method(method, y, op, truth, prior=prior, label=label, **opts)
            rows.append({"step": step, "images_seen": base + step * batch, "method": label,
                         "psnr_mean": f"{r.psnr.mean():.3f}", "psnr_std": f"{r.psnr.std():.3f}",
                         "ssim_mean": f"{r.ssim.mean():.4f}", "seconds": f"{time.perf_counter() - t0:.1f}"})
            print(f"step {step:6d}  {label:18s} {r.psnr.mean():6.2f} dB", flush=True)
        write_rows(csv_path, rows)  # after every snapshot, so an interrupted run keeps what it scored
    rows.append({"step": -1, "images_seen": 0, "method": "TV", "psnr_mean": f"{tv.psnr.mean():.3f}",
                 "psnr_std": f"{tv.psnr.std():.3f}", "ssim_mean": f"{tv.ssim.mean():.4f}", "seconds": ""})
    write_rows(csv_path, rows)
    plot([r for r in rows if r["method"] in LABELS], png, float(tv.psnr.mean()), float(fbp.psnr.mean()))
    print(f"TV {tv.psnr.mean():.2f} dB, FBP {fbp.psnr.mean():.2f} dB -> {csv_path}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
