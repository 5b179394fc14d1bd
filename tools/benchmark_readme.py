"""Put a ``ctflow benchmark`` results folder into the README (a source-checkout tool, not installed).

    ctflow benchmark --out results/benchmark                                  # ≈ 35 min on 1 thread
    python tools/benchmark_readme.py results/benchmark --readme README.md     # README block + docs/results/

Rebuilds the folder's report (``summary.md``, ``readme_results.md``, plots) from its CSVs and ``run.json``
exactly as ``ctflow benchmark --report`` does, replaces the text between ``<!-- ctflow-benchmark:begin -->``
and ``<!-- ctflow-benchmark:end -->`` in the README with ``readme_results.md``, and copies the figures, CSVs,
summary and record to ``docs/results/`` beside the README (what was there is removed first). The numbers in
the README's results section come only from this (a test rebuilds the block from ``docs/results/`` and
compares it with the README).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

BEGIN, END = "<!-- ctflow-benchmark:begin -->", "<!-- ctflow-benchmark:end -->"
DOCS_SUBDIR = Path("docs") / "results"
COPIED = ("summary.md", "readme_results.md", "run.json", "examples.npz")  # besides every .png and .csv


def update_readme(out: Path, readme: Path) -> Path:
    """Splice ``out/readme_results.md`` into ``readme`` between the markers and copy the figures, CSVs
    and summary to ``docs/results/`` beside it. Returns the docs folder."""
    from ctflow.errors import DataError
    from ctflow.files import atomic_path

    out, readme = Path(out), Path(readme)
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise DataError(f"the README needs exactly one '{BEGIN}' line followed by one '{END}' line "
                        "around its results block", str(readme))
    block = (out / "readme_results.md").read_text().rstrip("\n")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs = readme.parent / DOCS_SUBDIR
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.iterdir():
        if old.is_file():
            old.unlink()
    for f in sorted(out.iterdir()):
        if f.suffix in (".png", ".csv") or f.name in COPIED:
            with atomic_path(docs / f.name) as tmp:
                shutil.copyfile(f, tmp)
    with atomic_path(readme) as tmp:
        Path(tmp).write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")
    return docs


def main(argv=None) -> int:
    from ctflow.errors import CTFlowError
    from ctflow.studies.report import report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="a `ctflow benchmark --out` folder")
    ap.add_argument("--readme", type=Path, default=Path("README.md"), help="the README to update (default: README.md)")
    ap.add_argument("--no-rebuild", action="store_true",
                    help="splice the folder's readme_results.md as it is instead of rebuilding the report first")
    args = ap.parse_args(argv)
    try:
        if not args.no_rebuild:
            report(args.results)
        docs = update_readme(args.results, args.readme)
    except CTFlowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"updated {args.readme} and {docs}/")
    commit = json.loads((args.results / "run.json").read_text())["environment"].get("git_commit")
    if not commit:
        print("note: run.json records no git commit (set CTFLOW_GIT_COMMIT=$(python tools/git_commit.py) for the "
              "run, as `make benchmark` does)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
