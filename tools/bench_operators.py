"""Operator speed: forward + adjoint for a batch of 16 images, measured side by side in one run.

Compares ctflow's default backend (auto → sparse matrix), ctflow's astra backend, raw ASTRA calls in
a Python loop (create_sino / create_backprojection, the usual user code), and ODL's
``odl.contrib.torch.OperatorModule`` over ``RayTransform(impl="astra_cpu")``. Times are medians of
``--repeat`` runs after one warm-up; ratios are ODL time / method time (higher is faster).

    python tools/bench_operators.py [--repeat 5] [--json results/operators.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

CASES = [(64, 60), (256, 180)]
BATCH = 16


def _median_time(fn, repeat: int) -> float:
    fn()  # warm-up (and lazy set-up)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_case(n: int, n_angles: int, repeat: int, cache_dir: str) -> dict:
    import astra
    import odl
    from odl.applications import tomo
    from odl.contrib.torch import OperatorModule

    import ctflow

    geom = ctflow.load_geometry(f"parallel-{n}-sparse{n_angles}")
    x = torch.rand(BATCH, 1, n, n, generator=torch.Generator().manual_seed(0))
    rows: dict[str, float] = {}

    # ctflow default backend (matrix); the one-time build and the cached load are reported apart
    t0 = time.perf_counter()
    A = ctflow.RayTransform(geom, cache_dir=cache_dir)
    A.backend.torch_matrices(torch.device("cpu"), torch.float32) if A.backend_name == "matrix" else None
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    A2 = ctflow.RayTransform(geom, cache_dir=cache_dir)
    A2.backend.torch_matrices(torch.device("cpu"), torch.float32) if A2.backend_name == "matrix" else None
    load = time.perf_counter() - t0
    y = A(x)
    rows[f"ctflow default ({A.backend_name})"] = _median_time(lambda: (A(x), A.adjoint(y)), repeat)

    B = ctflow.RayTransform(geom, backend="astra")
    rows["ctflow astra"] = _median_time(lambda: (B(x), B.adjoint(y)), repeat)

    vol, pg = geom.to_astra()
    pid = astra.create_projector("linear", pg, vol)
    xs = [xi[0].numpy() for xi in x]
    ys = [yi[0].numpy() for yi in y]

    def raw():
        for xi, yi in zip(xs, ys):
            sid, _ = astra.create_sino(xi, pid)
            astra.data2d.delete(sid)
            bid, _ = astra.create_backprojection(yi, pid)
            astra.data2d.delete(bid)

    rows["raw ASTRA loop"] = _median_time(raw, repeat)
    astra.projector.delete(pid)

    half = n / 2
    space = odl.uniform_discr([-half, -half], [half, half], (n, n), dtype="float32")
    ogeom = tomo.Parallel2dGeometry(
        odl.uniform_partition(0, np.pi, n_angles),
        odl.uniform_partition(-geom.n_detectors / 2, geom.n_detectors / 2, geom.n_detectors),
    )
    R = tomo.RayTransform(space, ogeom, impl="astra_cpu")
    fwd, adj = OperatorModule(R), OperatorModule(R.adjoint)
    rows["ODL OperatorModule"] = _median_time(lambda: (fwd(x), adj(y)), repeat)
    return {"n": n, "angles": n_angles, "batch": BATCH, "seconds": rows, "matrix_build_s": build, "matrix_cached_load_s": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    import astra

    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, astra {astra.__version__}")
    results = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for n, k in CASES:
            r = bench_case(n, k, args.repeat, cache_dir)
            results.append(r)
            odl_t = r["seconds"]["ODL OperatorModule"]
            print(f"\n## {n}x{n}, {k} angles, batch {BATCH}: forward + adjoint "
                  f"(matrix one-time build {r['matrix_build_s']:.2f} s, cached load {r['matrix_cached_load_s']:.2f} s)")
            print(f"| {'method':28s} | {'ms':>9s} | {'× vs ODL':>9s} |")
            print(f"|{'-' * 30}|{'-' * 11}|{'-' * 11}|")
            for name, t in r["seconds"].items():
                print(f"| {name:28s} | {1e3 * t:9.2f} | {odl_t / t:9.1f} |")
    if args.json:
        from pathlib import Path

        from ctflow.files import write_text_atomic

        write_text_atomic(Path(args.json), json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
