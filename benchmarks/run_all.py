"""Thin entry point for ``ctflow benchmark`` (``python benchmarks/run_all.py --help``): regenerates every
table and plot of the README's results section into a results folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctflow.benchmarks.run_all import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
