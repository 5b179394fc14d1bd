"""``ctflow methods`` and ``ctflow reconstruct`` (single scans, batches, torchrun sharding).

A batch is a folder of sinogram files (``.h5``/``.hdf5``; DICOM-CT-PD scans as sub-folders) or
several INPUT arguments. Each input is reconstructed with the same options and seed, so under
``torchrun --nproc_per_node=N`` every rank simply takes inputs ``rank, rank + N, …`` and the files it
writes are identical to a single-process run.

Untrusted inputs cannot stop a batch: each input is read in a worker process (forked, so it costs a
few milliseconds) that is killed after the read time limit, so even a file that makes a library loop
forever is just reported; any exception while reading, reconstructing or writing one input is caught,
reported on stderr with the input's name, and the batch goes on; ``--time-limit`` bounds the whole
per-input work. The exit status is 1 if any input failed.

Every input goes through :func:`ctflow.reconstruct`. ``--units`` says what the sinogram holds:
``window`` — line integrals of the priors' [0, 1] window units (HU L40/W400); ``mu`` — line integrals
of μ in 1/mm (flow methods then run through the window bridge, :mod:`ctflow.solvers.units_bridge`);
``auto`` (the default) — ``mu`` for DICOM-CT-PD scans and for HDF5 sinograms whose ``units``
attribute says ``mu`` (``ctflow simulate`` writes it), ``window`` otherwise. ``--method`` is required;
without ``--set`` options the nearest shipped preset is used (``--preset auto``, the default; ``none``
or a preset name/file choose otherwise), and each input's line names the preset used.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ..errors import CTFlowError, DataError, TimeLimitError

OUTPUT_FORMATS = ("h5", "dcm", "png", "npy")
UNITS_CHOICES = ("auto", "window", "mu")
#: Reading one input never takes longer than this (seconds) unless --time-limit says otherwise.
DEFAULT_READ_TIMEOUT_S = 600.0


def add_parsers(sub) -> None:
    m = sub.add_parser("methods", help="list the reconstruction methods")
    m.add_argument("-v", "--verbose", action="store_true", help="also list each method's options and defaults")
    m.set_defaults(func=cmd_methods)

    r = sub.add_parser(
        "reconstruct",
        help="reconstruct HDF5 / DICOM-CT-PD sinograms (one file, several, or a folder)",
        description="Reconstruct sinograms with any method of `ctflow methods` (--method is required). Without "
        "--set, the method runs with its nearest shipped preset (options tuned by `ctflow tune` for a method, "
        "prior, geometry and noise level; the noise σ is estimated from each sinogram); --set key=value (e.g. "
        "--set iterations=20 --set rho=10) runs the method's defaults plus those options instead. --preset none "
        "never uses a preset; --preset NAME (or a preset YAML) uses that one, with --set options on top.",
    )
    r.add_argument("inputs", nargs="+", help="sinogram file(s) (.h5/.hdf5, DICOM-CT-PD folder) or a folder of them")
    r.add_argument("--geometry", default=None, help="preset name or geometry file (default: the one stored in each file)")
    r.add_argument("--method", required=True, help="method name (see `ctflow methods`)")
    r.add_argument("--preset", default="auto", metavar="auto|none|NAME",
                   help="'auto' (default): the nearest shipped preset unless --set gives method options; 'none': "
                   "the method's defaults (plus --set); NAME or a .yaml file: that preset (plus --set)")
    r.add_argument("--prior", default="default", help="prior name or folder for flow methods (default: default)")
    r.add_argument("--out", default=None, help="output file (.h5/.dcm/.png/.npy) for one input, or a folder for a batch")
    r.add_argument("--format", choices=OUTPUT_FORMATS, default="h5", help="output format in a batch folder (default h5)")
    r.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE", help="a method option")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--n-samples", type=int, default=None, help="posterior samples (stochastic methods): mean + std map")
    r.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                   help="what the sinogram holds: 'window' = line integrals of the priors' [0,1] window units "
                   "(HU L40/W400), 'mu' = line integrals of μ (1/mm; flow methods go through the window bridge); "
                   "'auto' (default) = mu for DICOM-CT-PD and for HDF5 files whose units attribute is mu, "
                   "window otherwise. DICOM outputs are in HU either way")
    r.add_argument("--image-shape", type=int, default=512, help="image grid for DICOM-CT-PD input (default 512)")
    r.add_argument("--device", default="cpu",
                   help="cpu | cuda | cuda:N (a bare cuda under torchrun means cuda:$LOCAL_RANK, one GPU per rank)")
    r.add_argument("--progress", action="store_true", help="show the solver's progress bars")
    r.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="per-input wall-clock limit (reading + reconstructing + writing); an input over it is "
                   "reported as failed and the batch goes on (default: none; reading alone is always limited to "
                   f"{DEFAULT_READ_TIMEOUT_S:g} s)")
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
            try:
                kids = sorted(q for q in p.iterdir() if not q.name.startswith("."))
            except OSError as e:
                raise DataError(f"cannot list the folder: {e.strerror or e}", str(p)) from None
            scans = [q for q in kids if q.suffix.lower() in (".h5", ".hdf5") or q.is_dir()]
            if not scans:
                raise DataError("the folder holds no .h5/.hdf5 sinograms or DICOM-CT-PD sub-folders", str(p))
            out.extend(scans)
        else:
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------------
# isolation: reading in a worker process, time limits
# ------------------------------------------------------------------------------------------------
def scan_units(requested: str, loaded) -> str:
    """``--units`` for one input: ``"window"``/``"mu"`` as asked; ``"auto"`` → ``"mu"`` when the input says
    its sinogram is of μ (``Loaded.units`` from :func:`ctflow.io.read_any`: DICOM-CT-PD, an HDF5 ``units``
    attribute of ``mu``), else ``"window"``."""
    if requested != "auto":
        return requested
    return "mu" if getattr(loaded, "units", "unknown") == "mu" else "window"


def _read_worker(conn, path: str, geometry, image_shape) -> None:
    """Child process: read one input and send ``("ok", Loaded)`` or ``("err", CTFlowError)`` back."""
    from ..io import read_any

    try:
        result = ("ok", read_any(path, geometry=geometry, image_shape=image_shape))
    except CTFlowError as e:
        result = ("err", e)
    except BaseException as e:  # noqa: BLE001 (reported to the parent, which names the file)
        result = ("err", DataError(f"cannot read the input: {type(e).__name__}: {e}", path))
    try:
        conn.send(result)
    except Exception as e:  # noqa: BLE001 (an unpicklable error or a closed pipe)
        with contextlib.suppress(Exception):
            conn.send(("err", DataError(f"cannot return what was read ({type(e).__name__}: {e})", path)))
    finally:
        conn.close()


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def read_isolated(path: Path, geometry=None, image_shape=512, timeout: float = DEFAULT_READ_TIMEOUT_S):
    """:func:`ctflow.io.read_any` in a worker process that is killed after ``timeout`` seconds.

    Raises the reader's CTFlowError, :class:`~ctflow.errors.TimeLimitError` on a timeout, or a DataError
    when the worker dies (a crash in a library, the out-of-memory killer) — each naming ``path``.
    """
    ctx = _mp_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_read_worker, args=(send, str(path), geometry, image_shape), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout):
            raise TimeLimitError(
                f"reading took longer than {timeout:g} s and was stopped (a damaged file can make a library loop "
                "forever)", str(path))
        try:
            status, payload = recv.recv()
        except (EOFError, OSError):
            proc.join(5)
            raise DataError(f"the reader process died (exit code {proc.exitcode}) while reading the input",
                            str(path)) from None
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if status == "ok":
        return payload
    raise payload


class _Deadline(BaseException):
    """Raised by the SIGALRM handler; a BaseException so that no ``except Exception`` swallows it."""


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Raise :class:`_Deadline` in the main thread after ``seconds`` (no-op without SIGALRM or off the
    main thread). Python code (the solvers' iterations) is interrupted between bytecodes."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise _Deadline()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _sigterm_runs_cleanup():
    """Turn SIGTERM into SystemExit while reconstructing, so ``finally`` blocks (temp-file removal of the
    atomic writers) run when the batch is terminated."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _message(inp: Path, e: BaseException) -> str:
    """One line naming the input and the problem."""
    text = str(e) if isinstance(e, CTFlowError) else f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    if str(inp) not in text:
        text = f"{inp}: {text}"
    return text


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def rank_device(device: str) -> str:
    """The device of this process: a bare ``cuda`` under ``torchrun`` (``LOCAL_RANK`` set) becomes
    ``cuda:$LOCAL_RANK``, so the ranks of a node use one GPU each instead of all sharing cuda:0; ``cpu``
    and explicit ``cuda:N`` are kept."""
    if device == "cuda" and os.environ.get("LOCAL_RANK") is not None:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def _output_path(inp: Path, args, batch: bool) -> Path:
    if not batch and args.out and Path(args.out).suffix:
        return Path(args.out)
    folder = Path(args.out) if args.out else Path("results") / "reconstruct"
    stem = inp.stem if inp.is_file() else inp.name
    return folder / f"{stem}_{args.method}.{args.format}"


def _to_hu(image, units: str):
    from ..units import mu_to_hu, window_to_hu

    if units == "mu":
        return mu_to_hu(image)
    return window_to_hu(image)


def write_reconstruction(path: Path, rec, geometry, units: str = "window") -> list[Path]:
    """Write a :class:`Reconstruction` by extension (.h5 keeps options and history). ``units`` is the
    image's: ``"window"`` or ``"mu"`` (1/mm); DICOM outputs are in HU. An image reconstructed on another grid
    than ``geometry`` (a flow method on μ data: ``rec.geometry``) is written with that grid. For stochastic
    methods run with ``n_samples > 1`` the pixelwise std map is written beside it like any image:
    ``<stem>_std.<ext>`` (``.npy`` for DICOM outputs)."""
    import numpy as np

    from ..files import atomic_path
    from ..io import write_dicom_image, write_image_h5, write_png_preview

    geometry = getattr(rec, "geometry", None) or geometry

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
            with atomic_path(p) as tmp, open(tmp, "wb") as fh:
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


def preset_argument(text: str, method: str):
    """``--preset`` → what :func:`ctflow.reconstruct` takes: ``"auto"``, ``None`` (``none``) or a preset name
    or file, which is loaded here so that a missing one or one for another method fails before any input."""
    value = str(text).strip()
    if value.lower() == "auto":
        return "auto"
    if value.lower() == "none":
        return None
    from ..solvers.presets import load_preset

    pre = load_preset(value)
    if pre["method"] != method:
        from ..errors import ConfigError

        raise ConfigError(f"--preset {value}: preset {pre['name']!r} is for method {pre['method']!r}, not {method!r}")
    return value


def preset_used(rec, preset, options: dict) -> str:
    """The name of the preset ``rec`` was made with, or why there was none."""
    name = (rec.options or {}).get("preset")
    if name:
        return str(name)
    if preset is None:
        return "none (--preset none)"
    from ..solvers.options import GENERIC_OPTIONS

    if any(k not in GENERIC_OPTIONS for k in options):
        return "none (--set options given)"
    return "none (no shipped preset for this method)"


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from ..geometry import load_geometry
    from ..operators import RayTransform
    from ..solvers import get_solver, reconstruct

    options = dict(parse_option(o) for o in args.options)
    options.setdefault("seed", args.seed)
    if args.n_samples is not None:
        options["n_samples"] = args.n_samples
    if args.progress:
        options["progress"] = True
    get_solver(args.method, **options)  # bad method/options fail before any file is read
    preset = preset_argument(args.preset, args.method)
    geometry = load_geometry(args.geometry) if args.geometry else None

    scans = expand_inputs(args.inputs)
    batch = len(scans) > 1
    rank, world = _rank_world()
    device = rank_device(args.device)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # ASTRA and torch default to this rank's GPU
    mine = scans[rank::world]
    operators: dict = {}
    failed: list[tuple[Path, str]] = []
    limit = args.time_limit
    if limit is not None and not limit > 0:
        raise CTFlowError(f"--time-limit must be a positive number of seconds, got {limit}")
    from tqdm.auto import tqdm

    with _sigterm_runs_cleanup():
        for inp in tqdm(mine, desc=f"reconstruct ({args.method})", disable=len(mine) < 2):
            t0 = time.monotonic()
            try:
                loaded = read_isolated(inp, geometry, args.image_shape,
                                       timeout=limit if limit is not None else DEFAULT_READ_TIMEOUT_S)
                if loaded.kind != "sinogram":
                    raise DataError("holds an image, not a sinogram", str(inp))
                units = scan_units(args.units, loaded)
                remaining = None if limit is None else max(limit - (time.monotonic() - t0), 1e-3)
                try:
                    with _deadline(remaining):
                        geom = loaded.geometry
                        if geom not in operators:
                            operators[geom] = RayTransform(geom)
                        y = torch.as_tensor(loaded.data, dtype=torch.float32, device=device)
                        rec = reconstruct(y, geom, method=args.method, prior=args.prior,
                                          operator=operators[geom], preset=preset, units=units, **options)
                        out = _output_path(inp, args, batch)
                        files = write_reconstruction(out, rec, geom, units=units)
                except _Deadline:
                    raise TimeLimitError(f"reconstructing took longer than the time limit of {limit:g} s "
                                         "(--time-limit)", str(inp)) from None
                print(f"{inp} -> {files[0]}  ({args.method}, preset {preset_used(rec, preset, options)}, "
                      f"units {units}, {rec.wall_time:.2f} s, {rec.nfe} NFE)")
            except Exception as e:
                msg = _message(inp, e)
                if not batch:
                    if isinstance(e, CTFlowError):
                        raise
                    raise DataError(msg.removeprefix(f"{inp}: "), str(inp)) from e
                failed.append((inp, msg))
                print(f"skipped {inp}: {msg}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(mine)} input(s) failed and were skipped (rank {rank}/{world}): "
              + ", ".join(str(p) for p, _ in failed), file=sys.stderr)
        return 1
    return 0
