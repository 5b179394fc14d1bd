"""``ctflow methods`` and ``ctflow reconstruct`` (single scans, batches, torchrun sharding).

A batch is a folder of sinogram files (``.h5``/``.hdf5``; DICOM-CT-PD scans as sub-folders) or
several INPUT arguments. Each input is reconstructed with the same options and seed, so under
``torchrun --nproc_per_node=N`` every rank simply takes inputs ``rank, rank + N, …`` and the files it
writes are identical to a single-process run. Unreadable inputs are skipped and reported (exit
status 1 if any were skipped).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from pathlib import Path

from ..errors import CTFlowError, DataError

OUTPUT_FORMATS = ("h5", "dcm", "png", "npy")


def add_parsers(sub) -> None:
    m = sub.add_parser("methods", help="list the reconstruction methods")
    m.add_argument("-v", "--verbose", action="store_true", help="also list each method's options and defaults")
    m.set_defaults(func=cmd_methods)

    r = sub.add_parser(
        "reconstruct",
        help="reconstruct HDF5 / DICOM-CT-PD sinograms (one file, several, or a folder)",
        description="Reconstruct sinograms with any method of `ctflow methods`. Options of the method are "
        "passed as --set key=value (e.g. --set iterations=20 --set rho=10).",
    )
    r.add_argument("inputs", nargs="+", help="sinogram file(s) (.h5/.hdf5, DICOM-CT-PD folder) or a folder of them")
    r.add_argument("--geometry", default=None, help="preset name or geometry file (default: the one stored in each file)")
    r.add_argument("--method", default="fbp", help="method name (see `ctflow methods`; default fbp)")
    r.add_argument("--prior", default="default", help="prior name or folder for flow methods (default: default)")
    r.add_argument("--out", default=None, help="output file (.h5/.dcm/.png/.npy) for one input, or a folder for a batch")
    r.add_argument("--format", choices=OUTPUT_FORMATS, default="h5", help="output format in a batch folder (default h5)")
    r.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE", help="a method option")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--n-samples", type=int, default=None, help="posterior samples (stochastic methods): mean + std map")
    r.add_argument("--units", choices=["window", "mu"], default="window",
                   help="image units for DICOM output: 'window' = [0,1] ↔ L40/W400 (the priors' units), 'mu' = 1/mm")
    r.add_argument("--image-shape", type=int, default=512, help="image grid for DICOM-CT-PD input (default 512)")
    r.add_argument("--device", default="cpu", help="cpu | cuda")
    r.add_argument("--progress", action="store_true", help="show the solver's progress bars")
    r.set_defaults(func=cmd_reconstruct)


def cmd_methods(args: argparse.Namespace) -> int:
    import dataclasses

    from ..solvers import SOLVERS, list_methods

    methods = list_methods()
    width = max(len(n) for n in methods)
    for name, desc in methods.items():
        cls = SOLVERS[name]
        tag = ("prior, " if cls.needs_prior else "") + ("stochastic" if cls.stochastic else "deterministic")
        print(f"{name:{width}s}  {desc}  [{tag}]")
        if args.verbose:
            for f in dataclasses.fields(cls.Options):
                print(f"{'':{width}s}    {f.name} = {f.default!r}")
    return 0


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` → (key, Python literal or string)."""
    if "=" not in text:
        raise CTFlowError(f"--set expects KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    k = k.strip().replace("-", "_")
    try:
        val = ast.literal_eval(v)
    except (ValueError, SyntaxError):
        val = {"true": True, "false": False, "none": None}.get(v.strip().lower(), v)
    return k, val


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files/folders → the list of scans (a DICOM-CT-PD folder is one scan)."""
    from ..io.convert import _is_ctpd

    out: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            try:
                if _is_ctpd(p):
                    out.append(p)
                    continue
            except DataError:
                pass
            kids = sorted(q for q in p.iterdir() if not q.name.startswith("."))
            scans = [q for q in kids if q.suffix.lower() in (".h5", ".hdf5") or q.is_dir()]
            if not scans:
                raise DataError("the folder holds no .h5/.hdf5 sinograms or DICOM-CT-PD sub-folders", str(p))
            out.extend(scans)
        else:
            out.append(p)
    return out


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _output_path(inp: Path, args, batch: bool) -> Path:
    if not batch and args.out and Path(args.out).suffix:
        return Path(args.out)
    folder = Path(args.out) if args.out else Path("results") / "reconstruct"
    stem = inp.stem if inp.is_file() else inp.name
    return folder / f"{stem}_{args.method}.{args.format}"


def _to_hu(image, units: str):
    from ..data.abdomen import WINDOW_LEVEL, WINDOW_WIDTH
    from ..units import mu_to_hu

    if units == "mu":
        return mu_to_hu(image)
    return image * WINDOW_WIDTH + (WINDOW_LEVEL - WINDOW_WIDTH / 2.0)


def write_reconstruction(path: Path, rec, geometry, units: str = "window") -> list[Path]:
    """Write a :class:`Reconstruction` by extension (.h5 keeps options and history). For stochastic
    methods run with ``n_samples > 1`` the pixelwise std map is written beside it like any image:
    ``<stem>_std.<ext>`` (``.npy`` for DICOM outputs)."""
    import numpy as np

    from ..files import atomic_path
    from ..io import write_dicom_image, write_image_h5, write_png_preview

    def write(p: Path, img: np.ndarray, method: str, is_std: bool) -> Path:
        suffix = p.suffix.lower()
        if suffix in (".h5", ".hdf5"):
            attrs = {"history": json.dumps(rec.history), "summary": json.dumps(rec.summary()), "units": units}
            write_image_h5(p, img, geometry=geometry, method=method, params=rec.options, attrs=attrs)
        elif suffix == ".png":
            win = None if is_std else ((0.5, 1.0) if units == "window" else None)
            write_png_preview(p, img, window=win, title=method)
        elif suffix == ".npy":
            p.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(p) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, img.astype(np.float32))
        elif suffix == ".dcm":
            write_dicom_image(p, _to_hu(img, units), geometry.pixel_size, method=method)
        else:
            raise CTFlowError(f"unsupported output {p}: use .h5, .dcm, .png or .npy")
        return p

    written = [write(path, rec.numpy(), rec.method, False)]
    if rec.std is not None:
        ext = ".npy" if path.suffix.lower() == ".dcm" else path.suffix
        std_path = path.with_name(path.stem + "_std" + ext)
        written.append(write(std_path, rec.std.detach().cpu().numpy(), f"{rec.method} std", True))
    return written


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from ..geometry import load_geometry
    from ..io import read_any
    from ..operators import RayTransform
    from ..solvers import get_solver

    options = dict(parse_option(o) for o in args.options)
    options.setdefault("seed", args.seed)
    if args.n_samples is not None:
        options["n_samples"] = args.n_samples
    if args.progress:
        options["progress"] = True
    solver = get_solver(args.method, **options)  # bad method/options fail before any file is read
    prior = args.prior if solver.needs_prior else None
    geometry = load_geometry(args.geometry) if args.geometry else None

    scans = expand_inputs(args.inputs)
    batch = len(scans) > 1
    rank, world = _rank_world()
    mine = scans[rank::world]
    operators: dict = {}
    failed: list[tuple[Path, str]] = []
    from tqdm.auto import tqdm

    for inp in tqdm(mine, desc=f"reconstruct ({args.method})", disable=len(mine) < 2):
        try:
            loaded = read_any(inp, geometry=geometry, image_shape=args.image_shape)
            if loaded.kind != "sinogram":
                raise DataError("holds an image, not a sinogram", str(inp))
            geom = loaded.geometry
            if geom not in operators:
                operators[geom] = RayTransform(geom)
            op = operators[geom]
            y = torch.as_tensor(loaded.data, dtype=torch.float32, device=args.device)
            rec = solver(y, op, prior=prior)
            out = _output_path(inp, args, batch)
            files = write_reconstruction(out, rec, geom, units=args.units)
            print(f"{inp} -> {files[0]}  ({args.method}, {rec.wall_time:.2f} s, {rec.nfe} NFE)")
        except CTFlowError as e:
            if not batch:
                raise
            failed.append((inp, str(e)))
            print(f"skipped {inp}: {e}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(mine)} input(s) skipped (rank {rank}/{world})", file=sys.stderr)
        return 1
    return 0
