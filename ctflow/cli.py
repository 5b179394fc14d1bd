"""Command line: ``ctflow geometries | demo | info``."""

from __future__ import annotations

import argparse
import sys

from .errors import CTFlowError


def _cmd_geometries(args: argparse.Namespace) -> int:
    from .geometry import list_geometries, load_geometry

    if args.show:
        print(load_geometry(args.show).to_yaml(), end="")
        return 0
    items = list_geometries()
    width = max(len(n) for n, _ in items)
    for name, desc in items:
        if args.verbose:
            g = load_geometry(name)
            print(f"{name:{width}s}  sinogram {g.n_angles}x{g.n_detectors}  {desc}")
        else:
            print(f"{name:{width}s}  {desc}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, noise=args.noise, seed=args.seed)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import astra
    import torch

    from . import __version__

    print(f"ctflow {__version__}")
    print(f"torch {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    print(f"astra-toolbox {astra.__version__} (CUDA usable: {astra.use_cuda()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctflow", description="Sparse-angle CT reconstruction with flow-matching priors.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("geometries", help="list the shipped geometry presets")
    g.add_argument("--show", metavar="NAME", help="print one preset (or a geometry file) as YAML")
    g.add_argument("-v", "--verbose", action="store_true", help="also print sinogram shapes")
    g.set_defaults(func=_cmd_geometries)
    d = sub.add_parser("demo", help="simulate sparse-angle scans of a phantom and reconstruct them with FBP")
    d.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    d.add_argument("--quick", action="store_true", help="small 64x64 geometries only (seconds)")
    d.add_argument("--noise", type=float, default=0.01, help="relative Gaussian noise level (default 0.01)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)
    i = sub.add_parser("info", help="versions and devices")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CTFlowError as e:
        print(f"ctflow: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
