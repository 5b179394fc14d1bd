"""``ctflow benchmark``: regenerate every table and plot of the README's results section.

    ctflow benchmark                                  # the README's settings (≈ 35 min on 1 CPU thread)
    ctflow benchmark --quick                          # every code path in about a minute (28² prior, 2 images)
    ctflow benchmark --eval-set my_dicom_folder/      # the same study on your own slices (or an OrganCMNIST .npz)
    ctflow benchmark --update-readme README.md        # … and rewrite the README's results block from this run
    ctflow benchmark --report results/benchmark       # rebuild summary, plots and README block from saved CSVs

Suites (``--suites``, default all):

* ``memory``  — peak memory of MS-Flow (Jacobian-free / one-segment VJP) and D-Flow vs ODE steps N,
  one fresh process per point (:mod:`ctflow.benchmarks.memory`).
* ``quality`` — all methods at 30 angles, 1 % Gaussian noise, ``--n-images`` images.
* ``angles``  — the methods except D-Flow at 8/16/60 angles on ``--sweep-images`` images.
* ``poisson`` — the methods except D-Flow at 30 angles with Poisson counts (I0 = 1e4).

The results folder gets ``quality.csv``, ``memory.csv``, ``memory.png``, ``psnr_vs_angles.png``,
``examples_30.png``, ``examples.npz``, ``run.json`` (configuration, machine, versions, seeds, timings),
``summary.md`` (all of it in one page) and ``readme_results.md`` (the README block). ``--update-readme``
replaces the text between ``<!-- ctflow-benchmark:begin -->`` and ``<!-- ctflow-benchmark:end -->`` in
the README and copies the figures, CSVs and summary to ``docs/results/`` beside it: numbers in the
README's results section come only from this command (a test rebuilds the block from the copied CSVs
and compares).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import memory as mem
from . import quality as qual

SUITES = ("memory", "quality", "angles", "poisson")
BEGIN, END = "<!-- ctflow-benchmark:begin -->", "<!-- ctflow-benchmark:end -->"
DOCS_SUBDIR = Path("docs") / "results"
SWEEP_EXCLUDE = ("dflow",)  # ~50 s per image on one CPU thread; it is in the 30-angle table


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that defines a run (recorded in ``run.json``)."""

    prior: str = "default"
    eval_set: str = "phantoms"
    n_images: int = 10
    sweep_images: int = 4
    angles: int = 30
    sweep_angles: tuple[int, ...] = (8, 16, 60)
    noise: float = 0.01
    poisson: float = 1e4
    memory_steps: tuple[int, ...] = (10, 25, 50, 100, 200)
    memory_size: int = 64
    memory_segments: int = 4
    threads: int = 1
    seed: int = 0
    eval_seed: int = qual.EVAL_SEED
    device: str = "cpu"
    quick: bool = False
    suites: tuple[str, ...] = SUITES
    methods: str | None = None
    overrides: dict = dataclasses.field(default_factory=dict)


# Quick runs: the same code paths with few iterations (for the test suite and a first look; the numbers
# mean nothing). Method labels stay as in the full run.
QUICK_OVERRIDES = {
    "sirt": {"iterations": 20},
    "tv": {"iterations": 40},
    "dflow": {"iterations": 1, "lbfgs_max_iter": 3, "steps": 3},
    "msflow": {"iterations": 2, "steps": 8, "dc_iters": 5},
    "pigfm": {"steps": 8},
    "otode": {"steps": 8, "cg_iters": 5},
    "pnpflow": {"steps": 8, "n_denoise": 2},
    "dps": {"steps": 8},
}


def quick_config(**changes) -> BenchmarkConfig:
    base = dict(prior="phantom-28", n_images=2, sweep_images=2, sweep_angles=(8,), memory_steps=(4, 8),
                memory_size=28, quick=True, overrides=QUICK_OVERRIDES)
    return BenchmarkConfig(**(base | changes))


# --------------------------------------------------------------------------------------------- running


def run(cfg: BenchmarkConfig, out: Path, log=print) -> dict:
    """Run the selected suites into ``out`` and write the report; returns the ``run.json`` record."""
    import torch

    from ..evaluation import NoiseSetting, eval_images
    from ..priors import load_prior

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    unknown = [s for s in cfg.suites if s not in SUITES]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    record = {"config": _jsonable(dataclasses.asdict(cfg)), "command": _command_line(), "started": _now(),
              "environment": environment(cfg), "timings_s": {}}
    methods = qual.select_methods(cfg.methods)
    sweep_methods = [m for m in methods if m[1] not in SWEEP_EXCLUDE]
    rows: list[dict] = []
    need_quality = any(s in cfg.suites for s in ("quality", "angles", "poisson"))
    if need_quality:
        prior = load_prior(cfg.prior)
        record["environment"]["prior"] = _prior_record(cfg.prior, prior)
        size = prior.image_size
        truth = eval_images(max(cfg.n_images, cfg.sweep_images), size, cfg.eval_set, seed=cfg.eval_seed)
        gauss = NoiseSetting("gaussian", cfg.noise)

    def timed(name, fn):
        t0 = time.perf_counter()
        log(f"\n##### suite {name} #####")
        res = fn()
        record["timings_s"][name] = round(time.perf_counter() - t0, 1)
        return res

    if "memory" in cfg.suites:
        mrows = timed("memory", lambda: mem.memory_study(
            cfg.memory_steps, segments=cfg.memory_segments, angles=cfg.angles, device=cfg.device,
            threads=cfg.threads, size=cfg.memory_size, log=log))
        mem.write_csv(out / "memory.csv", mrows)
    if "quality" in cfg.suites:
        r, ex = timed("quality", lambda: qual.quality_study(
            truth[: cfg.n_images], prior, [cfg.angles], [gauss], methods, seed=cfg.seed, overrides=cfg.overrides,
            log=log))
        rows += [x | {"suite": "quality"} for x in r]
        idx = qual.structured_examples(truth[: cfg.n_images])
        _save_examples(out / "examples.npz", truth[idx, 0].numpy(), ex[cfg.angles], cfg.angles, idx)
    if "angles" in cfg.suites:
        r, _ = timed("angles", lambda: qual.quality_study(
            truth[: cfg.sweep_images], prior, list(cfg.sweep_angles), [gauss], sweep_methods, seed=cfg.seed,
            overrides=cfg.overrides, log=log, print_targets=False))
        rows += [x | {"suite": "angles"} for x in r]
    if "poisson" in cfg.suites:
        r, _ = timed("poisson", lambda: qual.quality_study(
            truth[: cfg.sweep_images], prior, [cfg.angles], [NoiseSetting("poisson", cfg.poisson)], sweep_methods,
            seed=cfg.seed, overrides=cfg.overrides, log=log, print_targets=False))
        rows += [x | {"suite": "poisson"} for x in r]
    if rows:
        qual.write_csv(out / "quality.csv", rows, extra_keys=("suite",))
    record["finished"] = _now()
    _write_text(out / "run.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    report(out)
    return record


# --------------------------------------------------------------------------------------------- report


def report(out: Path) -> None:
    """(Re)build ``summary.md``, ``readme_results.md`` and the plots of ``out`` from its CSVs and run.json."""
    out = Path(out)
    from ..errors import DataError

    if not (out / "run.json").exists():
        raise DataError("not a benchmark results folder (no run.json); run `ctflow benchmark --out DIR` first",
                        str(out))
    record = json.loads((out / "run.json").read_text())
    cfg = record["config"]
    qrows = qual.read_csv(out / "quality.csv") if (out / "quality.csv").exists() else []
    mrows = mem.read_csv(out / "memory.csv") if (out / "memory.csv").exists() else []
    if mrows:
        mem.plot(mrows, out / "memory.png", mrows[0]["kind"],
                 title=f"Peak memory vs. temporal resolution, {cfg['memory_size']}×{cfg['memory_size']}")
    gauss = [r for r in qrows if r["suite"] in ("quality", "angles")]
    if len({r["angles"] for r in gauss}) > 1:
        qual.plot_psnr_vs_angles(out / "psnr_vs_angles.png", gauss,
                                 f"{_eval_label(cfg)}, {gauss[0]['noise']} (angle sweep: {cfg['sweep_images']} images)")
    if (out / "examples.npz").exists():
        with np.load(out / "examples.npz", allow_pickle=False) as f:
            labels = json.loads(str(f["labels"]))
            imgs = {lab: f[f"image_{i}"] for i, lab in enumerate(labels)}
            idx = [int(i) for i in f["indices"]]
            qual.plot_examples(out / f"examples_{int(f['angles'])}.png", f["truth"], imgs,
                               title=f"{int(f['angles'])} angles: the evaluation images with the most structure",
                               names=[f"image {i}" for i in idx])
    _write_text(out / "readme_results.md", "\n".join(readme_block(record, qrows, mrows, out)) + "\n")
    _write_text(out / "summary.md", "\n".join(summary(record, qrows, mrows)) + "\n")


def _eval_label(cfg: dict) -> str:
    return "held-out phantoms" if cfg["eval_set"] == "phantoms" else Path(cfg["eval_set"]).name


def _setup_line(record: dict) -> str:
    cfg, env = record["config"], record["environment"]
    prior = env.get("prior", {})
    return (f"{_eval_label(cfg)} (evaluation seed {cfg['eval_seed']}), prior `{cfg['prior']}` "
            f"({prior.get('image_size', '?')}²), parallel beam, noise seed {cfg['seed']}, solver seed {cfg['seed']}; "
            f"{env['cpu']}, {cfg['threads']} torch thread(s); ctflow {env['versions']['ctflow']} "
            f"({env.get('git_commit') or 'no git'}), torch {env['versions']['torch']}, "
            f"astra {env['versions']['astra-toolbox']}")


def readme_block(record: dict, qrows: list[dict], mrows: list[dict], out: Path) -> list[str]:
    """The README's results block (figures linked from ``docs/results/``)."""
    cfg = record["config"]
    t = record["timings_s"]
    lines = [f"*Generated by `{record['command']}` on {record['started'][:10]} in "
             f"{_dur(sum(t.values()))} — {_setup_line(record)}. Full record: "
             f"[docs/results/summary.md](docs/results/summary.md).*", ""]
    if cfg["quick"]:
        lines += ["**Quick run: iteration counts were cut to exercise the code; these numbers mean nothing.**", ""]
    if mrows:
        lines += [f"**Memory vs temporal resolution** (`memory` suite, {_dur(t.get('memory', 0))}): peak "
                  f"{'RSS growth' if mrows[0]['kind'].startswith('cpu') else 'CUDA allocation'} above a baseline that "
                  f"has loaded everything and run one forward pass; {cfg['memory_size']}² images, {cfg['angles']} angles, "
                  f"a randomly initialised UNet of the shipped prior's architecture, Euler, K = {cfg['memory_segments']} "
                  f"segments, one outer iteration, one fresh process per point.", ""]
        lines += mem.markdown_table(mrows) + [""] + [f"- {s}" for s in mem.summary_lines(mrows)] + [""]
        lines += ["![peak memory vs ODE steps](docs/results/memory.png)", ""]
    main = [r for r in qrows if r["suite"] == "quality"]
    if main:
        n_ang, noise = main[0]["angles"], main[0]["noise"]
        lines += [f"**Reconstruction quality** (`quality` suite, {_dur(t.get('quality', 0))}): {n_ang} angles, "
                  f"{noise}, {cfg['n_images']} images, PSNR/SSIM on [0, 1], mean ± std over images. Method settings: "
                  f"`ctflow/benchmarks/quality.py` (`METHODS`).", "",
                  "| method | PSNR (dB) | SSIM | s/image | NFE |", "|---|---|---|---|---|"]
        for r, psnr, ssim, is_best in _score_cells(main):
            name = f"**{r['method']}**" if is_best else r["method"]
            lines.append(f"| {name} | {psnr} | {ssim} | {qual.fmt_time(r['time_per_image_s'])} | {r['nfe']} |")
        lines += ["", "Bold: the best PSNR and the best SSIM."]
        lines += ["", "NFE: network evaluations per batched solve, the same per image — except D-Flow, which runs "
                  "L-BFGS image by image, so its NFE is summed over the images.", "",
                  "Target checks (printed by the run):", ""] + [f"- {s}" for s in qual.targets(main)] + [""]
        if (out / f"examples_{n_ang}.png").exists():
            lines += [f"![examples at {n_ang} angles](docs/results/examples_{n_ang}.png)", ""]
    sweep = [r for r in qrows if r["suite"] == "angles"]
    if sweep:
        all_ang = sorted({r["angles"] for r in sweep} | {r["angles"] for r in main})
        labels = list(dict.fromkeys(r["method"] for r in sweep))
        lines += [f"**Across angle counts** (`angles` suite, {_dur(t.get('angles', 0))}): PSNR (dB), "
                  f"{cfg['sweep_images']} images per setting ({cfg['angles']} angles: the quality suite's "
                  f"{cfg['n_images']} images); D-Flow left out for time.", "",
                  "| PSNR (dB) | " + " | ".join(f"{a} angles" for a in all_ang) + " |", "|---" * (len(all_ang) + 1) + "|"]
        table = {(r["method"], r["angles"]): r["psnr_mean"] for r in main + sweep}  # sweep rows win at shared angles
        col_best = {a: max(v for (lab, ang), v in table.items() if ang == a and lab in labels) for a in all_ang}
        for lab in labels:
            cells = []
            for a in all_ang:
                v = table.get((lab, a))
                cells.append("—" if v is None else f"**{v:.2f}**" if v == col_best[a] else f"{v:.2f}")
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        lines += ["", "Bold: the best in each column."]
        lines.append("")
        if (out / "psnr_vs_angles.png").exists():
            lines += ["![PSNR vs angles](docs/results/psnr_vs_angles.png)", ""]
    pois = [r for r in qrows if r["suite"] == "poisson"]
    if pois:
        lines += [f"**Poisson noise** (`poisson` suite, {_dur(t.get('poisson', 0))}): {pois[0]['noise']} "
                  f"photons, μ = 0.05/mm per image unit, post-log; flow methods get the mean post-log σ as "
                  f"`noise_std`; {cfg['sweep_images']} images, {pois[0]['angles']} angles.", "",
                  "| method | PSNR (dB) | SSIM |", "|---|---|---|"]
        lines += [f"| {r['method']} | {psnr} | {ssim} |" for r, psnr, ssim, _ in _score_cells(pois)]
        lines.append("")
    return lines


def _score_cells(rows: list[dict]):
    """Yield ``(row, PSNR cell, SSIM cell, has the best PSNR)`` with "mean ± std" cells, the best PSNR and the
    best SSIM of ``rows`` in bold."""
    best_psnr, best_ssim = max(r["psnr_mean"] for r in rows), max(r["ssim_mean"] for r in rows)
    for r in rows:
        p = "**" if r["psnr_mean"] == best_psnr else ""
        q = "**" if r["ssim_mean"] == best_ssim else ""
        yield (r, f"{p}{r['psnr_mean']:.2f} ± {r['psnr_std']:.2f}{p}", f"{q}{r['ssim_mean']:.3f} ± {r['ssim_std']:.3f}{q}",
               bool(p))


def summary(record: dict, qrows: list[dict], mrows: list[dict]) -> list[str]:
    cfg, env = record["config"], record["environment"]
    lines = ["# ctflow benchmark", "",
             f"- command: `{record['command']}`",
             f"- started {record['started']}, finished {record.get('finished', '?')}; suite times (s): "
             + ", ".join(f"{k} {v}" for k, v in record["timings_s"].items()),
             f"- machine: {env['platform']}; CPU {env['cpu']} ({env['cpu_count']} cores); "
             f"memory {env['memory_gib']} GiB; GPU {env['gpu'] or 'none'}; {cfg['threads']} torch thread(s); "
             f"load average at start {env.get('load_average_at_start')}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
             + f"; git commit {env.get('git_commit') or 'unknown'}",
             f"- seeds: evaluation images {cfg['eval_seed']} (phantoms; tuning used 123, training 0/7919), "
             f"noise {cfg['seed']} (+ image index), solvers {cfg['seed']}",
             f"- evaluation set: {cfg['eval_set']}; prior: {cfg['prior']} {json.dumps(env.get('prior', {}))}",
             f"- quick: {cfg['quick']}" + (f" (option overrides: {json.dumps(cfg['overrides'])})" if cfg["quick"] else ""),
             ""]
    if mrows:
        lines += ["## Memory", ""] + mem.markdown_table(mrows) + [""] + [f"- {s}" for s in mem.summary_lines(mrows)]
        lines += ["", "| solver | N | peak [MiB] | wall [s] | NFE | kind |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['solver']} | {r['steps']} | {r['peak_mib']:.1f} | {r['wall_s']:.1f} | {r['nfe']} | "
                  f"{r['kind']} |" for r in mrows]
        lines.append("")
    for suite in ("quality", "angles", "poisson"):
        sub = [r for r in qrows if r["suite"] == suite]
        if sub:
            lines += [f"## Suite `{suite}`", ""] + qual.markdown_tables(sub, heading="###")
    return lines


# --------------------------------------------------------------------------------------------- README


def update_readme(out: Path, readme: Path) -> Path:
    """Splice ``out/readme_results.md`` into ``readme`` between the markers and copy the figures, CSVs
    and summary to ``docs/results/`` beside it. Returns the docs folder."""
    from ..files import atomic_path
    from ..errors import DataError

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
        if f.suffix in (".png", ".csv") or f.name in ("summary.md", "readme_results.md", "run.json", "examples.npz"):
            with atomic_path(docs / f.name) as tmp:
                shutil.copyfile(f, tmp)
    with atomic_path(readme) as tmp:
        Path(tmp).write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")
    return docs


# --------------------------------------------------------------------------------------------- helpers


def environment(cfg: BenchmarkConfig) -> dict:
    import astra
    import torch

    from .._version import __version__

    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    versions = {"ctflow": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "astra-toolbox": getattr(astra, "__version__", "?")}
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "memory_gib": mem_gib,
            "load_average_at_start": load,
            "gpu": gpu, "versions": versions, "git_commit": _git_commit()}


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (r.stdout.strip() + ("+changes" if dirty else "")) if r.returncode == 0 else None


def _prior_record(name: str, prior) -> dict:
    from ..priors import prior_folder

    weights = prior_folder(name) / "prior.safetensors"
    return {"image_size": prior.image_size, "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}


def _save_examples(path: Path, truth: np.ndarray, images: dict[str, np.ndarray], angles: int,
                   indices: list[int]) -> None:
    from ..files import atomic_path

    arrays = {f"image_{i}": np.asarray(im, dtype=np.float32) for i, im in enumerate(images.values())}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, truth=np.asarray(truth, np.float32), labels=np.array(json.dumps(list(images))),
                            angles=np.array(angles), indices=np.array(indices), **arrays)


def _write_text(path: Path, text: str) -> None:
    from ..files import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _jsonable(d):
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _dur(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _command_line() -> str:
    argv = sys.argv[1:]
    prog = "ctflow" if Path(sys.argv[0]).name in ("ctflow", "__main__.py") else f"python {Path(sys.argv[0]).as_posix()}"
    return " ".join([prog] + argv)


# --------------------------------------------------------------------------------------------- CLI


def add_arguments(ap: argparse.ArgumentParser) -> None:
    d = BenchmarkConfig()
    ap.add_argument("--out", default="results/benchmark", help="results folder (default: results/benchmark)")
    ap.add_argument("--quick", action="store_true", help="all code paths in about a minute (28² prior, 2 images, "
                    "few iterations; numbers meaningless)")
    ap.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {','.join(SUITES)}")
    ap.add_argument("--eval-set", default=None, help="'phantoms' (default), an OrganCMNIST-layout .npz, or a folder "
                    "of DICOM slices (resized to the prior's size, HU windowed to L40/W400)")
    ap.add_argument("--prior", default=None, help=f"prior name or folder (default: {d.prior}; quick: phantom-28)")
    ap.add_argument("--n-images", type=int, default=None, help=f"images in the quality suite (default {d.n_images})")
    ap.add_argument("--sweep-images", type=int, default=None,
                    help=f"images per setting in the angles/poisson suites (default {d.sweep_images})")
    ap.add_argument("--methods", default=None, help="comma-separated method names or labels (default: all)")
    ap.add_argument("--memory-steps", default=None, help="comma-separated ODE step counts for the memory suite")
    ap.add_argument("--device", default=None, help="device for the memory suite (cpu or cuda)")
    ap.add_argument("--threads", type=int, default=None, help=f"torch threads (default {d.threads})")
    ap.add_argument("--seed", type=int, default=None, help="noise and solver seed (default 0)")
    ap.add_argument("--update-readme", nargs="?", const="README.md", default=None, metavar="README",
                    help="rewrite the README's results block from this run and copy figures to docs/results/")
    ap.add_argument("--report", default=None, metavar="RESULTS",
                    help="only rebuild summary, plots and README block from an existing results folder")


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    changes = {}
    for field, value in (("prior", args.prior), ("eval_set", args.eval_set), ("n_images", args.n_images),
                         ("sweep_images", args.sweep_images), ("methods", args.methods), ("device", args.device),
                         ("threads", args.threads), ("seed", args.seed)):
        if value is not None:
            changes[field] = value
    if args.memory_steps:
        changes["memory_steps"] = tuple(int(s) for s in args.memory_steps.split(","))
    changes["suites"] = tuple(s.strip() for s in args.suites.split(",") if s.strip())
    return quick_config(**changes) if args.quick else BenchmarkConfig(**changes)


def run_from_args(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.report:
        out = Path(args.report)
        report(out)
    else:
        cfg = config_from_args(args)
        for k in ("n_images", "sweep_images", "threads"):
            if getattr(cfg, k) < 1:
                raise ConfigError(f"--{k.replace('_', '-')} must be ≥ 1 (got {getattr(cfg, k)})")
        out = Path(args.out)
        run(cfg, out, log=lambda s: print(s, flush=True))
    print(f"\nwrote {out}/summary.md, readme_results.md, *.csv, *.png")
    if args.update_readme:
        docs = update_readme(out, Path(args.update_readme))
        print(f"updated {args.update_readme} and {docs}/")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="ctflow benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run_from_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
