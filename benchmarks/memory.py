"""Thin entry point: the study lives in `ctflow.benchmarks.memory` (`python benchmarks/memory.py --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctflow.benchmarks.memory import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
