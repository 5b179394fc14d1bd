"""GPU measurements for tools/gpu_check.sh: operator speed on CUDA and training throughput.

    python tools/gpu_bench.py operators --out DIR      # matrix (CPU, CUDA) vs astra (CPU, CUDA), forward + adjoint
    python tools/gpu_bench.py train --seconds 180 --out DIR   # training throughput of the default prior's UNet

Each writes ``DIR/<name>.json`` and ``DIR/<name>.md`` (a Markdown table for the README's GPU section).
Times are medians after a warm-up, with ``torch.cuda.synchronize()`` around every timed call.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

CASES = [("parallel-256-sparse180", 16), ("fan-512-clinical-sparse64", 4)]


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median(fn, repeat: int) -> float:
    fn()
    _sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _machine() -> dict:
    import astra

    info = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "astra": astra.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["astra_cuda"] = bool(astra.use_cuda())
    return info


def bench_operators(out: Path, repeat: int, cases=CASES) -> dict:
    import warnings

    import ctflow
    from ctflow.operators import InexactAdjointWarning

    warnings.simplefilter("ignore", InexactAdjointWarning)
    rows = []
    for name, batch in cases:
        g = ctflow.load_geometry(name)
        x = torch.rand(batch, 1, *g.image_shape, generator=torch.Generator().manual_seed(0))
        entry = {"geometry": name, "batch": batch, "ms": {}, "adjoint_mismatch": {}}
        t0 = time.perf_counter()
        M = ctflow.RayTransform(g, backend="matrix")
        M.backend.torch_matrices(torch.device("cpu"), torch.float32)
        entry["matrix_build_s"] = time.perf_counter() - t0
        A = ctflow.RayTransform(g, backend="astra")
        y = M(x)
        entry["ms"]["matrix, CPU"] = 1e3 * _median(lambda M=M, x=x, y=y: (M(x), M.adjoint(y)), repeat)
        entry["ms"]["astra, CPU"] = 1e3 * _median(lambda A=A, x=x, y=y: (A(x), A.adjoint(y)), 1)
        if torch.cuda.is_available():
            xc, yc = x.cuda(), y.cuda()
            entry["ms"]["matrix, CUDA"] = 1e3 * _median(lambda M=M, xc=xc, yc=yc: (M(xc), M.adjoint(yc)), repeat)
            entry["adjoint_mismatch"]["matrix, CUDA"] = M.adjointness_test(device="cuda")
            import astra

            if astra.use_cuda():
                entry["ms"]["astra, CUDA"] = 1e3 * _median(lambda A=A, xc=xc, yc=yc: (A(xc), A.adjoint(yc)), repeat)
                entry["adjoint_mismatch"]["astra, CUDA"] = A.adjointness_test(device="cuda")
                ym = M(xc[:1])
                entry["astra_cuda_vs_matrix_rel_diff"] = float((A(xc[:1]) - ym).norm() / ym.norm())
        rows.append(entry)
        print(json.dumps(entry), flush=True)
    lines = [f"Machine: {json.dumps(_machine())}", ""]
    for e in rows:
        lines += [f"**{e['geometry']}, batch {e['batch']}: forward + adjoint** (matrix build {e['matrix_build_s']:.1f} s)", "",
                  "| backend, device | ms | × vs matrix CPU | adjoint mismatch |", "|---|---|---|---|"]
        ref = e["ms"]["matrix, CPU"]
        for k, v in e["ms"].items():
            mm = e["adjoint_mismatch"].get(k)
            lines.append(f"| {k} | {v:.1f} | {ref / v:.3g} | {'—' if mm is None else f'{mm:.1e}'} |")
        if "astra_cuda_vs_matrix_rel_diff" in e:
            lines.append(f"\nASTRA CUDA forward vs matrix: relative difference {e['astra_cuda_vs_matrix_rel_diff']:.2e}")
        lines.append("")
    result = {"machine": _machine(), "cases": rows}
    (out / "operators.json").write_text(json.dumps(result, indent=1))
    (out / "operators.md").write_text("\n".join(lines) + "\n")
    return result


def bench_train(out: Path, seconds: float, batch: int, workers: int) -> dict:
    """(1) the training loop as `ctflow train-prior` runs it (phantoms drawn by DataLoader workers) for
    ``seconds``; (2) the network alone on a fixed batch (forward + backward + AdamW) for 20 s."""
    import tempfile

    from ctflow.priors.unet import UNet, UNetConfig
    from ctflow.training.train import TrainConfig, fm_loss, train

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = UNetConfig(image_size=64, base_channels=16, channel_mults=(1, 2, 4, 8))  # the default prior's UNet
    cfg = TrainConfig(data="phantoms", size=64, batch_size=batch, steps=10**7, warmup=100, checkpoint_every=10**7,
                      val_every=10**7, sample_every=10**7, n_val=16)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        state = train(cfg, model, Path(tmp) / "run", device=dev, progress=False, workers=workers, time_budget=seconds)
        wall = time.perf_counter() - t0
    steps = int(state["step"])
    # the loop runs until the first step past the budget; set-up (validation phantoms, workers) is outside it
    loop = {"steps": steps, "seconds": seconds, "wall_incl_setup_s": wall, "steps_per_s": steps / seconds,
            "images_per_s": steps * batch / seconds,
            "final_loss": state["losses"][-1][1] if state["losses"] else None}
    torch.manual_seed(0)
    net = UNet(model).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    x1 = torch.rand(batch, 1, 64, 64, device=dev)
    x0 = torch.randn_like(x1)
    t = torch.rand(batch, device=dev)
    n, t1 = 0, time.perf_counter()
    while time.perf_counter() - t1 < 20.0:
        opt.zero_grad(set_to_none=True)
        fm_loss(net, x1, x0, t).backward()
        opt.step()
        n += 1
        if n % 10 == 0:
            _sync()
    _sync()
    net_only = {"steps": n, "seconds": time.perf_counter() - t1}
    net_only["images_per_s"] = n * batch / net_only["seconds"]
    peak = torch.cuda.max_memory_allocated() if dev == "cuda" else None
    result = {"machine": _machine(), "device": dev, "batch": batch, "workers": workers, "loop": loop,
              "network_only": net_only, "cuda_peak_allocated_bytes": peak}
    md = [f"Training throughput, 64² UNet of the default prior (2.49 M parameters), batch {batch}, {dev}:", "",
          "| what | steps/s | images/s |", "|---|---|---|",
          (f"| `ctflow train-prior` loop ({workers} data workers, {loop['seconds']:.0f} s, {steps} steps) | "
           f"{loop['steps_per_s']:.1f} | {loop['images_per_s']:.0f} |"),
          (f"| network only (fixed batch, forward + backward + AdamW) | {n / net_only['seconds']:.1f} | "
           f"{net_only['images_per_s']:.0f} |")]
    if peak is not None:
        md.append(f"\nCUDA peak allocated: {peak / 2**20:.0f} MiB")
    (out / "train.json").write_text(json.dumps(result, indent=1))
    (out / "train.md").write_text("\n".join(md) + "\n")
    print(json.dumps(result), flush=True)
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["operators", "train"])
    ap.add_argument("--out", default="results/gpu_check")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=180.0, help="training loop time (train)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--cases", default=None, help="operators: NAME:BATCH,… (default: " + ",".join(f"{n}:{b}" for n, b in CASES) + ")")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.what == "operators":
        cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",")] if args.cases else CASES
        bench_operators(out, args.repeat, cases)
    else:
        bench_train(out, args.seconds, args.batch, args.workers)


if __name__ == "__main__":
    main()
