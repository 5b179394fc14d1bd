"""``ctflow benchmark``: regenerate the results tables and plots (:mod:`ctflow.studies.runner`)."""

from __future__ import annotations

import argparse


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from ..studies.runner import run_from_args

    return run_from_args(args)


def add_parsers(sub) -> None:
    b = sub.add_parser("benchmark", help="regenerate the README's results tables and plots (memory, quality) "
                       "into a results folder", description="Regenerate every table and plot of the README's results "
                       "section. See `python -m ctflow.studies.runner --help` for the suites.")
    from ..studies.runner import add_arguments

    add_arguments(b)
    b.set_defaults(func=_cmd_benchmark)
