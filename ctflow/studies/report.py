"""The report of a ``ctflow benchmark`` results folder, rebuilt from its CSVs and ``run.json`` alone:
``summary.md`` (everything on one page), ``readme_results.md`` (the README's results block, figures linked
from ``docs/results/``) and the plots. Splicing the block into a README is ``python tools/benchmark_readme.py``
(not installed)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from . import memory as mem
from . import quality as qual
from .records import write_text

# Where the README block says the method settings live. Still the pre-move path, so that the block rebuilt from
# docs/results/ stays byte-identical to README.md; change it together with the README's block.
METHODS_SOURCE = "ctflow/studies/quality.py"


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
    write_text(out / "readme_results.md", "\n".join(readme_block(record, qrows, mrows, out)) + "\n")
    write_text(out / "summary.md", "\n".join(summary(record, qrows, mrows)) + "\n")


def portable_command(command: str) -> str:
    """``command`` as anyone can type it in a checkout: without ``--out FOLDER`` (where the results went on
    the machine that ran it) and with absolute or home paths cut to their file names."""
    try:
        parts = shlex.split(command)
    except ValueError:
        parts = command.split()
    out, skip = [], False
    for a in parts:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out="):
            continue
        key, eq, val = a.partition("=") if a.startswith("--") else ("", "", a)
        if val.startswith(("/", "~", "../")):
            val = Path(val.rstrip("/")).name or val
        out.append(f"{key}{eq}{val}")
    return shlex.join(out)


def memory_comparisons(rows: list[dict]) -> list[str]:
    """Plain ratio lines of the memory suite: MS-Flow at the most vs the fewest ODE steps, and D-Flow vs
    MS-Flow at the most steps."""
    steps = sorted({r["steps"] for r in rows})
    if not steps:
        return []

    def row(name, n):
        return next((r for r in rows if r["solver"] == name and r["steps"] == n), None)

    lo, hi = steps[0], steps[-1]
    ms_lo, ms_hi, df_hi = row("msflow", lo), row("msflow", hi), row("dflow", hi)
    out = []
    if ms_lo and ms_hi and ms_lo["peak_bytes"] > 0 and ms_hi["peak_bytes"] > 0:
        total = (ms_hi["peak_bytes"] + ms_hi["baseline_bytes"]) / (ms_lo["peak_bytes"] + ms_lo["baseline_bytes"])
        out.append(f"MS-Flow({hi}) / MS-Flow({lo}) = {ms_hi['peak_bytes'] / ms_lo['peak_bytes']:.2f} (both are a few "
                   f"MiB above the baseline; the total peaks incl. baseline differ by a factor {total:.3f})")
    if df_hi and ms_hi and ms_hi["peak_bytes"] > 0:
        ratio = "OOM" if df_hi["peak_bytes"] < 0 else f"{df_hi['peak_bytes'] / ms_hi['peak_bytes']:.0f}"
        out.append(f"D-Flow({hi}) / MS-Flow({hi}) = {ratio}")
    return out


def _eval_label(cfg: dict) -> str:
    return "held-out phantoms" if cfg["eval_set"] == "phantoms" else Path(cfg["eval_set"]).name


def _name(path_or_name: str) -> str:
    """A prior name as given, a prior folder by its name (no machine-specific path)."""
    return Path(path_or_name).name if "/" in str(path_or_name) else str(path_or_name)


def _setup_line(record: dict) -> str:
    cfg, env = record["config"], record["environment"]
    prior = env.get("prior", {})
    return (f"{_eval_label(cfg)} (evaluation seed {cfg['eval_seed']}), prior `{_name(cfg['prior'])}` "
            f"({prior.get('image_size', '?')}²), parallel beam, noise seed {cfg['seed']}, solver seed {cfg['seed']}; "
            f"{env['cpu']}, {cfg['threads']} torch thread(s); ctflow {env['versions']['ctflow']} "
            f"({env.get('git_commit') or 'no git'}), torch {env['versions']['torch']}, "
            f"astra {env['versions']['astra-toolbox']}")


def readme_block(record: dict, qrows: list[dict], mrows: list[dict], out: Path) -> list[str]:
    """The README's results block (figures linked from ``docs/results/``)."""
    cfg = record["config"]
    t = record["timings_s"]
    lines = [(f"*Generated by `{portable_command(record['command'])}` on {record['started'][:10]} in "
              f"{_dur(sum(t.values()))} — {_setup_line(record)}. Full record: "
              f"[docs/results/summary.md](docs/results/summary.md).*"), ""]
    if cfg["quick"]:
        lines += ["**Quick run: iteration counts were cut to exercise the code; these numbers mean nothing.**", ""]
    if mrows:
        lines += [(f"**Memory vs temporal resolution** (`memory` suite, {_dur(t.get('memory', 0))}): peak "
                   f"{'RSS growth' if mrows[0]['kind'].startswith('cpu') else 'CUDA allocation'} above a baseline that "
                   f"has loaded everything and run one forward pass; {cfg['memory_size']}² images, {cfg['angles']} angles, "
                   f"a randomly initialised UNet of the shipped prior's architecture, Euler, K = {cfg['memory_segments']} "
                   f"segments, one outer iteration, one fresh process per point."), ""]
        lines += mem.markdown_table(mrows) + [""] + [f"- {s}" for s in memory_comparisons(mrows)] + [""]
        lines += ["![peak memory vs ODE steps](docs/results/memory.png)", ""]
    main = [r for r in qrows if r["suite"] == "quality"]
    if main:
        n_ang, noise = main[0]["angles"], main[0]["noise"]
        lines += [(f"**Reconstruction quality** (`quality` suite, {_dur(t.get('quality', 0))}): {n_ang} angles, "
                   f"{noise}, {cfg['n_images']} images, PSNR/SSIM on [0, 1], mean ± std over images. "
                   f"{_settings_note(cfg, main)}"), ""]
        presets = any(r.get("preset") for r in main)
        lines += (["| method | PSNR (dB) | SSIM | s/image | NFE | preset |", "|---|---|---|---|---|---|"] if presets
                  else ["| method | PSNR (dB) | SSIM | s/image | NFE |", "|---|---|---|---|---|"])
        for r, psnr, ssim, is_best in _score_cells(main):
            name = f"**{r['method']}**" if is_best else r["method"]
            lines.append(f"| {name} | {psnr} | {ssim} | {qual.fmt_time(r['time_per_image_s'])} | {r['nfe']} |"
                         + (f" {r.get('preset') or '—'} |" if presets else ""))
        lines += ["", "Bold: the best PSNR and the best SSIM."]
        lines += ["", ("NFE: network evaluations per batched solve, the same per image — except D-Flow, which runs "
                       "L-BFGS image by image, so its NFE is summed over the images."), "",
                  "Comparisons (printed by the run):", ""] + [f"- {s}" for s in qual.comparisons(main)] + [""]
        if (out / f"examples_{n_ang}.png").exists():
            lines += [f"![examples at {n_ang} angles](docs/results/examples_{n_ang}.png)", ""]
    sweep = [r for r in qrows if r["suite"] == "angles"]
    if sweep:
        all_ang = sorted({r["angles"] for r in sweep} | {r["angles"] for r in main})
        labels = list(dict.fromkeys(r["method"] for r in sweep))
        lines += [(f"**Across angle counts** (`angles` suite, {_dur(t.get('angles', 0))}): PSNR (dB), "
                   f"{cfg['sweep_images']} images per setting ({cfg['angles']} angles: the quality suite's "
                   f"{cfg['n_images']} images); D-Flow left out for time."), "",
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
    real = [r for r in qrows if r["suite"] == "realct"]
    if real:
        names = ", ".join(f"`{s['source']}`" for s in record.get("real_ct", []))
        lines += [(f"**Real CT slices** (`realct` suite, {_dur(t.get('realct', 0))}): {names}, turned anterior-up, "
                   f"centred on the body, resampled to {record['environment'].get('prior', {}).get('image_size', '?')}² and windowed (L40/W400); "
                   f"{real[0]['angles']} angles, {real[0]['noise']}, the settings of the quality suite."), "",
                  "| method | PSNR (dB) | SSIM | preset |", "|---|---|---|---|"]
        lines += [f"| {r['method']} | {psnr} | {ssim} | {r.get('preset') or '—'} |"
                  for r, psnr, ssim, _ in _score_cells(real)]
        lines += ["", "Comparisons:", ""] + [f"- {s}" for s in qual.comparisons(real)] + [""]
    pois = [r for r in qrows if r["suite"] == "poisson"]
    if pois:
        lines += [(f"**Poisson noise** (`poisson` suite, {_dur(t.get('poisson', 0))}): {pois[0]['noise']} "
                   f"photons, μ = 0.05/mm per image unit, post-log; flow methods get the mean post-log σ as "
                   f"`noise_std`; {cfg['sweep_images']} images, {pois[0]['angles']} angles."), "",
                  "| method | PSNR (dB) | SSIM |", "|---|---|---|"]
        lines += [f"| {r['method']} | {psnr} | {ssim} |" for r, psnr, ssim, _ in _score_cells(pois)]
        lines.append("")
    return lines


def _settings_note(cfg: dict, rows: list[dict]) -> str:
    """Where the rows' method options came from, and which noise σ the flow methods were given."""
    sigma = ("the true σ of the simulated noise" if cfg.get("oracle_sigma")
             else "σ estimated from each sinogram")
    if any(r.get("preset") for r in rows):
        return f"Method settings: each method's nearest shipped preset (column *preset*); {sigma}."
    return f"Method settings: `{METHODS_SOURCE}` (`METHODS`)."


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
             f"- command: `{portable_command(record['command'])}`",
             f"- started {record['started']}, finished {record.get('finished', '?')}; suite times (s): "
             + ", ".join(f"{k} {v}" for k, v in record["timings_s"].items()),
             (f"- machine: {env['platform']}; CPU {env['cpu']} ({env['cpu_count']} cores); "
              f"memory {env['memory_gib']} GiB; GPU {env['gpu'] or 'none'}; {cfg['threads']} torch thread(s); "
              f"load average at start {env.get('load_average_at_start')}"),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
             + f"; git commit {env.get('git_commit') or 'unknown'}",
             (f"- seeds: evaluation images {cfg['eval_seed']} (phantoms; tuning used 123, training 0/7919), "
              f"noise {cfg['seed']} (+ image index), solvers {cfg['seed']}"),
             (f"- evaluation set: {Path(cfg['eval_set']).name}; prior: {_name(cfg['prior'])} "
              f"{json.dumps(env.get('prior', {}))}"),
             f"- quick: {cfg['quick']}" + (f" (option overrides: {json.dumps(cfg['overrides'])})" if cfg["quick"] else ""),
             ""]
    if mrows:
        lines += ["## Memory", ""] + mem.markdown_table(mrows) + [""] + [f"- {s}" for s in memory_comparisons(mrows)]
        lines += ["", "| solver | N | peak [MiB] | wall [s] | NFE | kind |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['solver']} | {r['steps']} | {r['peak_mib']:.1f} | {r['wall_s']:.1f} | {r['nfe']} | "
                  f"{r['kind']} |" for r in mrows]
        lines.append("")
    for suite in ("quality", "angles", "poisson", "realct"):
        sub = [r for r in qrows if r["suite"] == suite]
        if sub:
            lines += [f"## Suite `{suite}`", ""] + qual.markdown_tables(sub, heading="###")
    return lines


def _dur(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
