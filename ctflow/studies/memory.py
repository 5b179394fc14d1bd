r"""Peak memory of MS-Flow against D-Flow as the number of ODE steps N grows (MS-Flow paper, Fig. 1).

D-Flow backpropagates through all N steps of the flow, so it stores the activations of every network
call: memory O(N). MS-Flow with ``jacobian_free=True`` keeps only its K + 1 states (and K cached segment
ends) and evaluates the flow without a graph: memory independent of N. ``msflow-vjp`` (exact one-segment
VJP) stores one segment's graph, O(N/K).

Each (solver, N) runs in a fresh subprocess: it loads everything (operator, prior, data), runs one
forward pass of the prior and one operator application, and records that as its baseline; the number
reported is the solver's peak above it, measured by :class:`ctflow.peak_memory.PeakMemory` (the mechanism
behind ``Reconstruction.peak_memory``) around the call: on CPU the growth of the peak resident set
(``VmHWM`` after resetting it at the baseline, so the parent process's size cannot leak in; kind
``cpu_rss_peak``; where the mark cannot be reset, the growth of ``ru_maxrss`` in this fresh process, kind
``cpu_rss_high_water``), on GPU ``torch.cuda.max_memory_allocated`` minus the allocated baseline (kind
``cuda_max_allocated``). CSVs written before this used the kind names ``cpu_vmhwm`` and ``cpu_ru_maxrss``
for the two CPU measurements. One outer iteration is enough for memory (D-Flow: one L-BFGS
``.step`` with ``lbfgs_max_iter=1``; MS-Flow: one sweep + DC step); Euler steps as in the paper's
figure; ``init="noise"`` so no back-integration is timed. Prior: a random-weight 64² UNet
(base 16, mults (1,2,4,8)) unless ``--prior`` names a prior folder or shipped prior.

    python -m ctflow.studies.memory [--steps 10 25 50 100 200] [--quick] [--device cuda] [--prior NAME]
                                    [--solvers dflow msflow msflow-vjp] [--out results/memory]

``ctflow benchmark`` runs this study with the README's settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_STEPS = [10, 25, 50, 100, 200]
QUICK_STEPS = [10, 25, 50]


def worker(cfg: dict) -> dict:
    """One measurement (run inside a fresh process)."""
    import torch

    torch.set_num_threads(int(cfg["threads"]))
    import ctflow
    from ctflow.peak_memory import PeakMemory
    from ctflow.priors.unet import UNet, UNetConfig
    from ctflow.priors.velocity import VelocityModel
    from ctflow.solvers import get_solver

    device = torch.device(cfg["device"])
    if cfg["prior"]:
        from ctflow.priors import load_prior

        prior = load_prior(cfg["prior"])
        size = prior.image_size
    else:
        size = int(cfg.get("size", 64))
        torch.manual_seed(0)
        mults = (1, 2, 4, 8) if size % 8 == 0 else (1, 2, 2)  # 28² (quick runs) halves only twice
        net = UNet(UNetConfig(image_size=size, base_channels=16, channel_mults=mults))
        prior = VelocityModel(net)
    prior = prior.to(device).eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    geom = ctflow.load_geometry(f"parallel-{size}-sparse{cfg['angles']}")
    op = ctflow.RayTransform(geom)
    x_true = ctflow.phantoms.shepp_logan(geom).reshape(1, 1, size, size).to(device)
    y = op(x_true)
    y = y + 0.01 * float(y.abs().max()) * torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(device)

    name = cfg["solver"]
    n = int(cfg["steps"])
    if name == "dflow":
        solver = get_solver("dflow", steps=n, ode_method="euler", iterations=1, lbfgs_max_iter=1, init="noise")
    else:
        solver = get_solver("msflow", steps=n, segments=int(cfg["segments"]), ode_method="euler", iterations=1,
                            init="noise", jacobian_free=name != "msflow-vjp")

    # baseline: everything loaded, one prior forward pass and one operator round trip done, the
    # optimiser machinery imported (torch.optim's first use imports torch._dynamo, ~100 MB)
    with torch.no_grad():
        prior(torch.randn(1, 1, size, size, device=device), 0.5)
        op.adjoint(op(x_true))
    torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])
    # the solver measures its own call with the same PeakMemory (nested: its reset folds into this block)
    with PeakMemory(device) as pm:
        t0 = time.perf_counter()
        rec = solver(y, op, prior=prior)
        wall = time.perf_counter() - t0
    peak = pm.peak - pm.baseline  # = pm.bytes; without a resettable mark: the lifetime mark's growth
    return {"solver": name, "steps": n, "peak_bytes": int(peak), "peak_mib": peak / 2**20, "wall_s": wall,
            "nfe": rec.nfe, "kind": pm.kind, "device": str(device), "baseline_bytes": int(pm.baseline)}


def measure(cfg: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]))
    cmd = [sys.executable, "-m", "ctflow.studies.memory", "--worker", json.dumps(cfg)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        if "out of memory" in tail.lower():
            return {**{k: cfg[k] for k in ("solver", "steps")}, "peak_bytes": -1, "peak_mib": float("nan"),
                    "wall_s": float("nan"), "nfe": -1, "kind": "OOM", "device": cfg["device"], "baseline_bytes": -1}
        raise RuntimeError(f"measurement {cfg['solver']} N={cfg['steps']} failed:\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


LABELS = {"dflow": "D-Flow", "msflow": "MS-Flow (Jacobian-free)", "msflow-vjp": "MS-Flow (one-segment VJP)"}


def memory_study(steps, solvers=("msflow", "dflow", "msflow-vjp"), segments: int = 4, angles: int = 30,
                 prior: str | None = None, device: str = "cpu", threads: int = 1, size: int = 64,
                 log=print) -> list[dict]:
    """One fresh-process measurement per (N, solver); returns the rows (peak bytes/MiB above baseline)."""
    rows = []
    log(f"# {device}, {threads} thread(s), MS-Flow K={segments}")
    log("| solver | N | peak above baseline [MiB] | wall [s] | NFE |")
    log("|---|---|---|---|---|")
    for n in steps:
        for name in solvers:
            cfg = {"solver": name, "steps": int(n), "segments": segments, "angles": angles, "prior": prior,
                   "device": device, "threads": threads, "size": size}
            r = measure(cfg)
            rows.append(r)
            log(f"| {name} | {n} | {r['peak_mib']:.1f} | {r['wall_s']:.1f} | {r['nfe']} |")
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    from ..files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["steps"], r["peak_bytes"], r["nfe"], r["baseline_bytes"] = (int(r[k]) for k in ("steps", "peak_bytes", "nfe", "baseline_bytes"))
        r["peak_mib"], r["wall_s"] = float(r["peak_mib"]), float(r["wall_s"])
    return rows


def summary_lines(rows: list[dict]) -> list[str]:
    """Plain ratio lines of the memory suite: MS-Flow at the most vs the fewest ODE steps, and D-Flow vs
    MS-Flow at the most steps."""
    steps = sorted({r["steps"] for r in rows})
    if not steps:
        return []

    def row(name, n):
        return next((r for r in rows if r["solver"] == name and r["steps"] == n), None)

    lo, hi = steps[0], steps[-1]
    ms_lo, ms_hi, df_hi = row("msflow", lo), row("msflow", hi), row("dflow", hi)
    out = []
    if ms_lo and ms_hi and ms_lo["peak_bytes"] > 0 and ms_hi["peak_bytes"] > 0:
        total = (ms_hi["peak_bytes"] + ms_hi["baseline_bytes"]) / (ms_lo["peak_bytes"] + ms_lo["baseline_bytes"])
        out.append(f"MS-Flow({hi}) / MS-Flow({lo}) = {ms_hi['peak_bytes'] / ms_lo['peak_bytes']:.2f} (both are a few "
                   f"MiB above the baseline; the total peaks incl. baseline differ by a factor {total:.3f})")
    if df_hi and ms_hi and ms_hi["peak_bytes"] > 0:
        ratio = "OOM" if df_hi["peak_bytes"] < 0 else f"{df_hi['peak_bytes'] / ms_hi['peak_bytes']:.0f}"
        out.append(f"D-Flow({hi}) / MS-Flow({hi}) = {ratio}")
    return out


def markdown_table(rows: list[dict]) -> list[str]:
    steps = sorted({r["steps"] for r in rows})
    lines = ["| N ODE steps | " + " | ".join(str(n) for n in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for name in dict.fromkeys(r["solver"] for r in rows):
        cells = []
        for n in steps:
            r = next((r for r in rows if r["solver"] == name and r["steps"] == n), None)
            cells.append("—" if r is None else "OOM" if r["peak_bytes"] < 0 else f"{r['peak_mib']:.1f} MiB")
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return lines


def plot(rows: list[dict], path: Path, kind: str, title: str = "Peak memory vs. temporal resolution, 64×64") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_path

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, style in (("dflow", "o-"), ("msflow", "s-"), ("msflow-vjp", "^--")):
        pts = [(r["steps"], r["peak_mib"]) for r in rows if r["solver"] == name and r["peak_bytes"] >= 0]
        if pts:
            ax.plot(*zip(*pts), style, label=LABELS[name])
    ax.set_xlabel("ODE steps N (Euler)")
    ax.set_ylabel(f"peak memory above baseline [MiB]\n({kind})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=None, help=f"N values (default {DEFAULT_STEPS})")
    ap.add_argument("--quick", action="store_true", help=f"N ∈ {QUICK_STEPS} (unless --steps is given)")
    ap.add_argument("--solvers", nargs="+", default=["msflow", "dflow", "msflow-vjp"],
                    choices=["msflow", "dflow", "msflow-vjp"])
    ap.add_argument("--segments", type=int, default=4, help="MS-Flow segments K")
    ap.add_argument("--angles", type=int, default=30,
                    help="parallel-beam angles (preset parallel-<size>-sparse<angles>)")
    ap.add_argument("--prior", default=None, help="prior folder or shipped name (default: random 64² UNet)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/memory")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    steps = args.steps or (QUICK_STEPS if args.quick else DEFAULT_STEPS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = memory_study(steps, args.solvers, args.segments, args.angles, args.prior, args.device, args.threads,
                        log=lambda s: print(s, flush=True))
    write_csv(out / "memory.csv", rows)
    plot(rows, out / "memory.png", rows[0]["kind"])
    for line in summary_lines(rows):
        print(line)
    print(f"wrote {out / 'memory.csv'} and {out / 'memory.png'}")


if __name__ == "__main__":
    main()
