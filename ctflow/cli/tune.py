"""``ctflow tune``: hyper-parameter search per method with optuna (:mod:`ctflow.studies.tune`).

    ctflow tune --method msflow,tv --geometry parallel-64-sparse30 --noise gaussian:0.01 --trials 16 --out results/tune
    ctflow tune --all --install                         # every method on the shipped subset → the shipped presets
    ctflow tune --all --grid full --install             # 8/16/30/60 views × σ 0.5/1/2 % and Poisson I0 = 1e4
    ctflow tune --method tv --tuning-set my_dicoms/ --out my_presets/   # your own slices (or a MedMNIST .npz)

Rerunning the same command continues the studies stored in ``OUT/tune.db``.
"""

from __future__ import annotations

import argparse


def _cmd_tune(args: argparse.Namespace) -> int:
    import torch

    from ..errors import ConfigError
    from ..solvers import list_methods
    from ..studies.tune import FULL_GRID, SHIPPED_GRID, TuneTask, run_tasks

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.all:
        methods = list(list_methods())
    elif args.method:
        methods = [m.strip() for m in args.method.split(",") if m.strip()]
    else:
        raise ConfigError("ctflow tune: give --method NAME[,NAME…] or --all")
    grid = FULL_GRID if args.grid == "full" else SHIPPED_GRID
    geoms = [g.strip() for g in args.geometry.split(",")] if args.geometry else grid["geometries"]
    noises = [n.strip() for n in args.noise.split(",")] if args.noise else grid["noises"]
    if args.trials < 1 or args.n_images < 1:
        raise ConfigError("ctflow tune: --trials and --n-images must be ≥ 1")
    tasks = [TuneTask(method=m, geometry=g, noise=n, prior=args.prior, trials=args.trials, seed=args.seed,
                      tuning_set=args.tuning_set, n_images=args.n_images)
             for g in geoms for n in noises for m in methods]
    presets = run_tasks(tasks, args.out, install=args.install, progress=not args.no_progress)
    print(f"\n{'preset':70s} {'PSNR':>7s} {'SSIM':>6s}")
    for p in presets:
        print(f"{p['name']:70s} {p['score']['psnr']:7.2f} {p['score']['ssim']:6.3f}")
    print(f"wrote {len(presets)} preset(s) to {args.out}" + (" and the shipped presets folder" if args.install else ""))
    return 0


def add_parsers(sub) -> None:
    t = sub.add_parser("tune", help="tune method options with optuna and write presets (YAML)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--method", help="comma-separated method names")
    t.add_argument("--all", action="store_true", help="every registered method")
    t.add_argument("--geometry", help="comma-separated geometry presets/files (default: the --grid's)")
    t.add_argument("--noise", help="comma-separated gaussian:REL or poisson:I0 (default: the --grid's)")
    t.add_argument("--grid", choices=("shipped", "full"), default="shipped",
                   help="defaults for --geometry/--noise: the shipped subset (30 views, 1 %%) or the full grid")
    t.add_argument("--prior", default="default", help="prior name or folder (flow methods)")
    t.add_argument("--tuning-set", default="phantoms",
                   help="'phantoms' (seed 4242, disjoint from training/evaluation), a MedMNIST-layout .npz or a DICOM folder")
    t.add_argument("--n-images", type=int, default=4)
    t.add_argument("--trials", type=int, default=16, help="trial budget per study (the same for every method)")
    t.add_argument("--seed", type=int, default=0, help="TPE sampler seed and solver seed")
    t.add_argument("--out", default="results/tune", help="folder for tune.db (resumable) and the preset YAMLs")
    t.add_argument("--install", action="store_true", help="also write the presets into ctflow/solvers/presets/")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_tune)
