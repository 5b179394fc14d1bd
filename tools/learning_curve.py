"""Learning curve of a training run: reconstruction quality of its EMA snapshots against images seen.

For every EMA snapshot ``RUN/ema/step-NNNNNNN.safetensors`` (kept during training by
``tools/snapshot_ema.sh``) and, as the starting point, the prior the run was initialised from, score
ΠGFM (20 NFE), MS-Flow and C-ΠGFM (10 NFE) on a small tuning set (phantoms v2 + random ellipses, seeds
disjoint from training, tuning and evaluation), 30 parallel views, 1 % Gaussian noise, beside TV on the
same data, and the same three methods on real CT slices (pydicom's ``CT_small.dcm`` and any ``--real-ct``
files, prepared as in the benchmark's realct suite: :mod:`ctflow.studies.realct`). Scores go to a CSV that
is extended, not recomputed, when new snapshots appear (column ``set``: ``tuning`` or ``realct``); the
figure plots PSNR against the images the network has seen (the init prior's images included), one panel
per set.

    nice python tools/learning_curve.py training/phantom-64-v2 --init-prior ctflow/assets/priors/phantom-64 \
        --out docs/prior_learning_curve [--real-ct explicit_VR-UN.dcm]

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
from ctflow.studies.realct import default_files, real_ct_images

TUNING_SEED = 4242  # AbdomenPhantomDataset seed: training uses 0 / 7919, tuning 123, evaluation 2027
LABELS = ("ΠGFM (20 NFE)", "MS-Flow", "C-ΠGFM (10 NFE)")
FIELDS = ["set", "step", "images_seen", "method", "psnr_mean", "psnr_std", "ssim_mean", "seconds"]
SETS = ("tuning", "realct")


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
        rows = list(csv.DictReader(f))
    for r in rows:  # CSVs written before the real-CT panel hold the tuning set only
        r["set"] = r.get("set") or "tuning"
    return rows


def write_rows(csv_path: Path, rows: list[dict]) -> None:
    """The CSV, one row per (set, step, method) — the last one wins — sorted by set and step."""
    unique = {(SETS.index(r["set"]), int(r["step"]), r["method"]): r for r in rows}
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(unique[k] for k in sorted(unique))


def plot(rows: list[dict], png: Path, refs: dict[str, tuple[float, float]], titles: dict[str, str]) -> None:
    """PSNR against images seen, one panel per set, with TV's and FBP's lines (``refs[set] = (tv, fbp)``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [s for s in SETS if s in refs]
    fig, axes = plt.subplots(1, len(sets), figsize=(6.0 * len(sets), 4.0), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for label in LABELS:
            pts = sorted((int(r["images_seen"]), float(r["psnr_mean"])) for r in rows
                         if r["method"] == label and r["set"] == name)
            if pts:
                x, y = (np.array(v) for v in zip(*pts))
                ax.plot(x / 1e3, y, marker="o", ms=4, label=label)
        tv, fbp = refs[name]
        ax.axhline(tv, color="k", ls="--", lw=1, label=f"TV ({tv:.2f} dB)")
        ax.axhline(fbp, color="gray", ls=":", lw=1, label=f"FBP Hann ({fbp:.2f} dB)")
        ax.set_xlabel("images seen (thousands)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(titles[name], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("phantom-64 v2: reconstruction quality vs training (30 views, σ = 1 %)", fontsize=10)
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
    ap.add_argument("--real-ct", nargs="*", default=[], metavar="DICOM",
                    help="real CT slices besides pydicom's CT_small.dcm for the realct panel")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg, batch = run_config(args.run)
    base = init_images_seen(args.init_prior) if args.init_prior else 0
    op = RayTransform(with_views(load_geometry(f"parallel-{cfg.image_size}-sparse30"), args.views))
    noise = NoiseSetting("gaussian", args.noise)
    real, slices = real_ct_images([*default_files(), *args.real_ct], cfg.image_size)
    data = {"tuning": tuning_set(args.n_images, cfg.image_size), "realct": real}
    titles = {"tuning": f"tuning set: {args.n_images} phantoms v2 (seed {TUNING_SEED})",
              "realct": "real CT: " + ", ".join(s.source for s in slices)}
    settings = {label: (m, o) for label, m, o in METHODS}
    problems, refs = {}, {}
    for name, truth in data.items():
        _, y = measure(truth, op, noise, seed=TUNING_SEED)
        problems[name] = (truth, y)
        tv = run_method("tv", y, op, truth, **settings["TV"][1])
        refs[name] = (float(tv.psnr.mean()), float(run_method("fbp", y, op, truth, filter="hann").psnr.mean()))
    csv_path, png = args.out.with_suffix(".csv"), args.out.with_suffix(".png")
    rows = [r for r in read_rows(csv_path) if r["method"] in LABELS]
    done = {(r["set"], int(r["step"]), r["method"]) for r in rows}
    todo: list[tuple[int, object]] = [(0, args.init_prior)] if args.init_prior is not None else []
    todo += [(s, p) for i, (s, p) in enumerate(snapshots(args.run)) if i % args.every == 0]
    for step, src in todo:
        missing = [(name, label) for name in data for label in LABELS if (name, step, label) not in done]
        if not missing:
            continue
        if isinstance(src, Path) and src.is_dir():
            net, meta = load_prior_folder(src)
            net.requires_grad_(False)
            prior = NetworkPrior(net, meta)
        else:
            prior = prior_from_snapshot(cfg, src, {"card": {"step": step}})
        for name, label in missing:
            truth, y = problems[name]
            method, opts = settings[label]
            t0 = time.perf_counter()
            r = run_method(method, y, op, truth, prior=prior, label=label, **opts)
            rows.append({"set": name, "step": step, "images_seen": base + step * batch, "method": label,
                         "psnr_mean": f"{r.psnr.mean():.3f}", "psnr_std": f"{r.psnr.std():.3f}",
                         "ssim_mean": f"{r.ssim.mean():.4f}", "seconds": f"{time.perf_counter() - t0:.1f}"})
            print(f"step {step:6d}  {name:7s} {label:18s} {r.psnr.mean():6.2f} dB", flush=True)
        write_rows(csv_path, rows)  # after every snapshot, so an interrupted run keeps what it scored
    for name, (tv, fbp) in refs.items():  # the reference lines, as rows of step -1
        rows += [{"set": name, "step": -1, "images_seen": 0, "method": m, "psnr_mean": f"{v:.3f}", "psnr_std": "",
                  "ssim_mean": "", "seconds": ""} for m, v in (("TV", tv), ("FBP (hann)", fbp))]
    write_rows(csv_path, rows)
    plot(rows, png, refs, titles)
    print("; ".join(f"{n}: TV {tv:.2f} dB, FBP {fbp:.2f} dB" for n, (tv, fbp) in refs.items()) + f" -> {csv_path}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
