"""Print the checkout's revision for a benchmark record: the short commit, ``+changes`` when tracked files
differ from it, nothing outside a git checkout. ``ctflow benchmark`` records it from ``$CTFLOW_GIT_COMMIT``
(the installed package does not probe git); ``make benchmark`` does this:

    CTFLOW_GIT_COMMIT=$(python tools/git_commit.py) ctflow benchmark --out results/benchmark
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_commit(root: Path = ROOT) -> str | None:
    """``abc1234`` or ``abc1234+changes``; None where git or the checkout is missing."""
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (r.stdout.strip() + ("+changes" if dirty else "")) if r.returncode == 0 else None


def main() -> int:
    print(git_commit() or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
