"""``ctflow benchmark``: regenerate every table and plot of the README's results section.

    ctflow benchmark                                  # the README's settings (≈ 35 min on 1 CPU thread)
    ctflow benchmark --quick                          # every code path in about a minute (28² prior, 2 images)
    ctflow benchmark --eval-set my_dicom_folder/      # the same study on your own slices (or an OrganCMNIST .npz)
    ctflow benchmark --report results/benchmark       # rebuild summary, plots and README block from saved CSVs

Suites (``--suites``, default all):

* ``memory``  — peak memory of MS-Flow (Jacobian-free / one-segment VJP) and D-Flow vs ODE steps N,
  one fresh process per point (:mod:`ctflow.studies.memory`).
* ``quality`` — all methods at 30 angles, 1 % Gaussian noise, ``--n-images`` images: each with its nearest
  shipped preset and the noise σ estimated from each sinogram (``quality.PRESET_METHODS``; each row names its
  preset); ``--hand-picked`` runs ``quality.METHODS`` instead, ``--oracle-sigma`` passes the true σ.
* ``angles``  — the methods except D-Flow at 8/16/60 angles on ``--sweep-images`` images.
* ``poisson`` — the methods except D-Flow at 30 angles with Poisson counts (I0 = 1e4).
* ``realct``  — every method at 30 angles, 1 % Gaussian noise on real CT slices (:mod:`ctflow.studies.realct`):
  pydicom's ``CT_small.dcm`` and the files given with ``--real-ct`` (e.g. ``explicit_VR-UN.dcm`` of the
  ``pydicom-data`` wheel), turned anterior-up, centred on the body, resampled to the prior's size.

``--phantom-version 2`` evaluates on held-out phantoms v2 (CT-realistic texture) instead of v1.

The results folder gets ``quality.csv``, ``memory.csv``, ``memory.png``, ``psnr_vs_angles.png``,
``examples_30.png``, ``examples.npz``, ``run.json`` (configuration, machine, versions, seeds, timings),
``summary.md`` (all of it in one page) and ``readme_results.md`` (the README block). In a source checkout,
``python tools/benchmark_readme.py RESULTS --readme README.md`` replaces the text between
``<!-- ctflow-benchmark:begin -->`` and ``<!-- ctflow-benchmark:end -->`` in the README with that block and
copies the figures, CSVs and summary to ``docs/results/`` beside it: numbers in the README's results section
come only from this command (a test rebuilds the block from the copied CSVs and compares).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import memory as mem
from . import quality as qual
from .records import command_line, environment, jsonable, now, prior_record, write_text
from .report import report

SUITES = ("memory", "quality", "angles", "poisson", "realct")
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
    hand_picked: bool = False  # run quality.METHODS (hand-picked options) instead of the shipped presets
    oracle_sigma: bool = False  # pass the simulated noise's true σ instead of estimating it
    phantom_version: int = 1  # held-out phantoms v1 or v2
    real_ct: tuple[str, ...] = ()  # DICOM slices of the realct suite besides CT_small.dcm


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
    base = {"prior": "phantom-28", "n_images": 2, "sweep_images": 2, "sweep_angles": (8,), "memory_steps": (4, 8),
            "memory_size": 28, "quick": True, "overrides": QUICK_OVERRIDES}
    return BenchmarkConfig(**(base | changes))


# --------------------------------------------------------------------------------------------- running


def run(cfg: BenchmarkConfig, out: Path, log=print) -> dict:
    """Run the selected suites into ``out`` and write the report; returns the ``run.json`` record."""
    import torch

    from ..priors import load_prior
    from .evaluation import NoiseSetting, eval_images

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    unknown = [s for s in cfg.suites if s not in SUITES]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    record = {"config": jsonable(dataclasses.asdict(cfg)), "command": command_line(), "started": now(),
              "environment": environment(cfg), "timings_s": {}}
    methods = qual.select_methods(cfg.methods, presets=not cfg.hand_picked)
    sweep_methods = [m for m in methods if m[1] not in SWEEP_EXCLUDE]
    rows: list[dict] = []
    need_quality = any(s in cfg.suites for s in ("quality", "angles", "poisson", "realct"))
    if need_quality:
        prior = load_prior(cfg.prior)
        record["environment"]["prior"] = prior_record(cfg.prior, prior)
        size = prior.image_size
        truth = eval_images(max(cfg.n_images, cfg.sweep_images), size, cfg.eval_set, seed=cfg.eval_seed,
                            phantom_version=cfg.phantom_version)
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
            log=log, oracle_sigma=cfg.oracle_sigma))
        rows += [x | {"suite": "quality"} for x in r]
        idx = qual.structured_examples(truth[: cfg.n_images])
        _save_examples(out / "examples.npz", truth[idx, 0].numpy(), ex[cfg.angles], cfg.angles, idx)
    if "angles" in cfg.suites:
        r, _ = timed("angles", lambda: qual.quality_study(
            truth[: cfg.sweep_images], prior, list(cfg.sweep_angles), [gauss], sweep_methods, seed=cfg.seed,
            overrides=cfg.overrides, log=log, print_comparisons=False, oracle_sigma=cfg.oracle_sigma))
        rows += [x | {"suite": "angles"} for x in r]
    if "poisson" in cfg.suites:
        r, _ = timed("poisson", lambda: qual.quality_study(
            truth[: cfg.sweep_images], prior, [cfg.angles], [NoiseSetting("poisson", cfg.poisson)], sweep_methods,
            seed=cfg.seed, overrides=cfg.overrides, log=log, print_comparisons=False, oracle_sigma=cfg.oracle_sigma))
        rows += [x | {"suite": "poisson"} for x in r]
    if "realct" in cfg.suites:
        rows += timed("realct", lambda: _realct_suite(cfg, prior, methods, gauss, record, log))
    if rows:
        qual.write_csv(out / "quality.csv", rows, extra_keys=("suite",))
    record["finished"] = now()
    write_text(out / "run.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    report(out)
    return record


def _realct_suite(cfg: BenchmarkConfig, prior, methods, noise, record: dict, log) -> list[dict]:
    """Every method on the real CT slices (one row per method, statistics over the slices)."""
    from .realct import default_files, real_ct_images

    files = [*default_files(), *(Path(f) for f in cfg.real_ct)]
    imgs, slices = real_ct_images(files, prior.image_size)
    record["real_ct"] = [{"name": s.name, "source": s.source, "native": s.native, "mm_per_px": round(s.mm_per_px, 3),
                          "flips": list(s.flips)} for s in slices]
    r, _ = qual.quality_study(imgs, prior, [cfg.angles], [noise], methods, seed=cfg.seed, overrides=cfg.overrides,
                              log=log, oracle_sigma=cfg.oracle_sigma)
    return [x | {"suite": "realct"} for x in r]


def _save_examples(path: Path, truth: np.ndarray, images: dict[str, np.ndarray], angles: int,
                   indices: list[int]) -> None:
    from ..files import atomic_path

    arrays = {f"image_{i}": np.asarray(im, dtype=np.float32) for i, im in enumerate(images.values())}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, truth=np.asarray(truth, np.float32), labels=np.array(json.dumps(list(images))),
                            angles=np.array(angles), indices=np.array(indices), **arrays)


# --------------------------------------------------------------------------------------------- CLI


def add_arguments(ap: argparse.ArgumentParser) -> None:
    d = BenchmarkConfig()
    ap.add_argument("--out", default="results/benchmark", help="results folder (default: results/benchmark)")
    ap.add_argument("--quick", action="store_true", help="all code paths in about a minute (28² prior, 2 images, "
                    "few iterations; numbers meaningless)")
    ap.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {','.join(SUITES)}")
    ap.add_argument("--eval-set", default=None, help="'phantoms' (default), an OrganCMNIST-layout .npz, or a folder "
                    "of DICOM slices (resized to the prior's size, HU windowed to L40/W400)")
    ap.add_argument("--phantom-version", type=int, choices=(1, 2), default=None,
                    help="held-out phantoms v1 (default) or v2 (CT-realistic) for the phantom suites")
    ap.add_argument("--real-ct", nargs="+", default=None, metavar="DICOM",
                    help="real CT slices for the realct suite, besides pydicom's CT_small.dcm")
    ap.add_argument("--prior", default=None, help=f"prior name or folder (default: {d.prior}; quick: phantom-28)")
    ap.add_argument("--n-images", type=int, default=None, help=f"images in the quality suite (default {d.n_images})")
    ap.add_argument("--sweep-images", type=int, default=None,
                    help=f"images per setting in the angles/poisson suites (default {d.sweep_images})")
    ap.add_argument("--methods", default=None, help="comma-separated method names or labels (default: all)")
    ap.add_argument("--hand-picked", action="store_true",
                    help="run the hand-picked settings of ctflow/studies/quality.py (METHODS) instead of the shipped presets")
    ap.add_argument("--oracle-sigma", action="store_true",
                    help="give the flow methods the simulated noise's true σ instead of estimating it from each sinogram")
    ap.add_argument("--memory-steps", default=None, help="comma-separated ODE step counts for the memory suite")
    ap.add_argument("--device", default=None, help="device for the memory suite (cpu or cuda)")
    ap.add_argument("--threads", type=int, default=None, help=f"torch threads (default {d.threads})")
    ap.add_argument("--seed", type=int, default=None, help="noise and solver seed (default 0)")
    ap.add_argument("--report", default=None, metavar="RESULTS",
                    help="only rebuild summary, plots and README block from an existing results folder")
    # removed: splicing the README is `python tools/benchmark_readme.py` in a source checkout; kept hidden so the
    # old spelling fails before a long run with a pointer instead of argparse's "unrecognized arguments"
    ap.add_argument("--update-readme", nargs="?", const="README.md", default=None, help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    changes = {}
    for field, value in (("prior", args.prior), ("eval_set", args.eval_set), ("n_images", args.n_images),
                         ("sweep_images", args.sweep_images), ("methods", args.methods), ("device", args.device),
                         ("threads", args.threads), ("seed", args.seed),
                         ("phantom_version", getattr(args, "phantom_version", None))):
        if value is not None:
            changes[field] = value
    if args.memory_steps:
        changes["memory_steps"] = tuple(int(s) for s in args.memory_steps.split(","))
    if getattr(args, "real_ct", None):
        changes["real_ct"] = tuple(str(Path(f)) for f in args.real_ct)
    changes["suites"] = tuple(s.strip() for s in args.suites.split(",") if s.strip())
    if getattr(args, "hand_picked", False):
        changes["hand_picked"] = True
    if getattr(args, "oracle_sigma", False):
        changes["oracle_sigma"] = True
    return quick_config(**changes) if args.quick else BenchmarkConfig(**changes)


def run_from_args(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if getattr(args, "update_readme", None):
        raise ConfigError("--update-readme is no longer part of `ctflow benchmark`: run the benchmark, then, in a "
                          "source checkout, `python tools/benchmark_readme.py RESULTS --readme "
                          f"{args.update_readme}`")
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
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="ctflow benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run_from_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
