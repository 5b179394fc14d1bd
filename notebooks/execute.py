"""Execute study notebooks, papermill-style, without papermill.

    python notebooks/execute.py                                   # all six, full settings → results/notebooks/
    python notebooks/execute.py 05_fast_samplers -p N_IMAGES=4    # one notebook, parameters overridden
    python notebooks/execute.py --out my_runs/ -p EVAL_SET='"my_dicoms/"'

``-p NAME=VALUE`` values are Python literals (strings need quotes inside the shell quotes); they go into
a cell inserted after the notebook's ``parameters`` cell. Each executed copy (with outputs) is written to
``--out/<name>.ipynb`` (atomically) and its wall time printed; a failing cell stops with its traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def inject_parameters(nb, values: dict, header: str = "# injected parameters") -> None:
    """Insert a cell assigning ``values`` right after the cell tagged ``parameters``."""
    import nbformat

    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(tagged)}")
    src = [header] + [f"{k} = {v!r}" for k, v in values.items()]
    cell = nbformat.v4.new_code_cell("\n".join(src))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, cell)


def execute(path: Path, values: dict | None = None, cwd: Path | None = None, timeout: int = 24 * 3600,
            setup: str | None = None):
    """Run the notebook at ``path`` in a fresh python3 kernel; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, dict(values or {}))
    if setup:
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd or Path.cwd())}}).execute()
    return nb


def main(argv=None) -> int:
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="notebook names (default: all in notebooks/)")
    ap.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--out", default="results/notebooks", help="folder for the executed copies")
    args = ap.parse_args(argv)
    values = {}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            ap.error(f"-p expects NAME=VALUE, got {item!r}")
        try:
            values[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            ap.error(f"-p {name}: {value!r} is not a Python literal (quote strings: -p {name}='\"text\"')")
    paths = [HERE / f"{n.removesuffix('.ipynb')}.ipynb" for n in args.names] or sorted(HERE.glob("*.ipynb"))
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        ap.error(f"no such notebook(s): {missing}; available: {[p.stem for p in sorted(HERE.glob('*.ipynb'))]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        t0 = time.perf_counter()
        nb = execute(p, values | {"OUT_DIR": str((out / p.stem).resolve())} if "OUT_DIR" not in values else values)
        tmp = out / f".{p.stem}.tmp.ipynb"
        nbformat.write(nb, tmp)
        os.replace(tmp, out / f"{p.stem}.ipynb")
        print(f"{p.stem}: {time.perf_counter() - t0:.0f} s → {out / (p.stem + '.ipynb')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
