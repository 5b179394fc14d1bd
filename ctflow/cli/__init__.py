"""Command line: ``ctflow geometries | demo | simulate | convert | info`` (:mod:`.scans`),
``data | train-prior | export-prior | sample`` (:mod:`.training`), ``methods | reconstruct``
(:mod:`.reconstruct`), ``benchmark`` (:mod:`.benchmark`) and ``tune`` (:mod:`.tune`); also ``python -m ctflow``."""

from __future__ import annotations

import argparse
import sys

from ..errors import CTFlowError
from . import benchmark, reconstruct, scans, training, tune


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctflow", description="Sparse-angle CT reconstruction with flow-matching priors.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (scans, training, reconstruct, benchmark, tune):
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CTFlowError as e:
        print(f"ctflow: error: {e}", file=sys.stderr)
        return 2
