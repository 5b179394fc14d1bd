"""Thin entry point: the study lives in `ctflow.benchmarks.quality` (`python benchmarks/quality.py --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctflow.benchmarks.quality import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
