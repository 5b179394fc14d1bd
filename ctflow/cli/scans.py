"""``ctflow geometries | demo | simulate | convert | info``: presets, the demo, simulated scans and format conversion."""

from __future__ import annotations

import argparse

from ..errors import CTFlowError


def _cmd_geometries(args: argparse.Namespace) -> int:
    from ..geometry import list_geometries, load_geometry

    if args.show:
        print(load_geometry(args.show).to_yaml(), end="")
        return 0
    items = list_geometries()
    width = max(len(n) for n, _ in items)
    for name, desc in items:
        if args.verbose:
            g = load_geometry(name)
            print(f"{name:{width}s}  sinogram {g.n_angles}x{g.n_detectors}  {desc}")
        else:
            print(f"{name:{width}s}  {desc}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.out, quick=args.quick, noise=args.noise, seed=args.seed, prior=args.prior)
    return 0


def simulated_units(phantom: str) -> str:
    """What a simulated sinogram's line integrals are of, for its ``units`` attribute: ``"mu"`` (1/mm) for
    DICOM images (read as HU, converted to μ), ``"window"`` (the priors' [0, 1] units) for the built-in
    phantoms and pictures, an HDF5 image's own ``units`` when it is one of those; ``"unknown"`` otherwise
    (``.npy`` arrays)."""
    from pathlib import Path

    from ..simulate import PHANTOMS

    if phantom in PHANTOMS:
        return "window"
    p = Path(phantom)
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in (".dcm", ""):
        return "mu"
    if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        return "window"
    if suffix in (".h5", ".hdf5"):
        from ..io import read_image_h5

        units = str(read_image_h5(p).attrs.get("units", "")).lower()
        return units if units in ("mu", "window") else "unknown"
    return "unknown"


def _cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..io import write_dicom_ctpd, write_image_h5, write_png_preview, write_sinogram_h5
    from ..simulate import simulate_scan

    scan = simulate_scan(
        args.geometry, args.phantom, n_views=args.views, gaussian=args.gaussian,
        poisson_I0=args.poisson, mu_scale=args.mu_scale, seed=args.seed,
    )
    units = simulated_units(args.phantom)
    out = Path(args.out)
    fmt = args.format or ("h5" if out.suffix.lower() in (".h5", ".hdf5") else "dicom-ctpd")
    if fmt == "h5":
        write_sinogram_h5(out, scan.sinogram, scan.geometry, noise=scan.noise,
                          attrs={"source": scan.source, "units": units})
        written = f"{out}"
    else:
        from ..geometry import FanBeamGeometry

        if not isinstance(scan.geometry, FanBeamGeometry):
            raise CTFlowError("DICOM-CT-PD stores fan-beam projections; write parallel-beam scans to a .h5 file")
        files = write_dicom_ctpd(out, scan.sinogram, scan.geometry, noise=scan.noise)
        written = f"{len(files)} projection files in {out}/"
        if units != "mu":
            import sys

            print(f"note: DICOM-CT-PD holds line integrals of μ, but this scan is in {units} units: reconstruct "
                  "it with `ctflow reconstruct --units window`", file=sys.stderr)
    if args.truth:
        write_image_h5(args.truth, scan.truth, geometry=scan.geometry, method="phantom",
                       params={"source": scan.source}, pixel_size=scan.geometry.pixel_size)
    if args.preview:
        write_png_preview(args.preview, scan.sinogram, title=f"{scan.geometry.name or 'sinogram'}: {scan.source}")
    g = scan.geometry
    print(f"simulated {scan.source}: {g.n_angles} views x {g.n_detectors} detectors, noise {scan.noise}, "
          f"units {units} -> {written}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..io import read_any, write_any

    loaded = read_any(args.input, geometry=args.geometry, image_shape=args.image_shape,
                      on_error="skip" if args.skip_bad else "raise")
    window = tuple(args.window) if args.window else None
    files = write_any(loaded, args.output, window=window, method=args.method)
    print(f"{args.input} ({loaded.kind} {tuple(loaded.data.shape)}) -> {len(files)} file(s): {files[0]}" + (" ..." if len(files) > 1 else ""))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import astra
    import torch

    from .._version import __version__

    print(f"ctflow {__version__}")
    print(f"torch {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    print(f"astra-toolbox {astra.__version__} (CUDA usable: {astra.use_cuda()})")
    return 0


def add_parsers(sub) -> None:
    g = sub.add_parser("geometries", help="list the shipped geometry presets")
    g.add_argument("--show", metavar="NAME", help="print one preset (or a geometry file) as YAML")
    g.add_argument("-v", "--verbose", action="store_true", help="also print sinogram shapes")
    g.set_defaults(func=_cmd_geometries)
    d = sub.add_parser("demo", help="simulate sparse-angle scans of a phantom and reconstruct them with FBP")
    d.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    d.add_argument("--quick", action="store_true", help="small 64x64 geometries only (seconds)")
    d.add_argument("--noise", type=float, default=0.01, help="relative Gaussian noise level (default 0.01)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--prior", default="default", help="prior for the flow reconstructions (default: the shipped default)")
    d.set_defaults(func=_cmd_demo)
    s = sub.add_parser("simulate", help="simulate a (noisy) scan of a phantom or image → HDF5 or DICOM-CT-PD")
    s.add_argument("--geometry", required=True, help="preset name or geometry .yaml/.json")
    s.add_argument("--phantom", default="shepp-logan", help="shepp-logan | ellipses | abdomen | an image file (.dcm/.npy/.png/.h5)")
    s.add_argument("--views", type=int, default=None, help="replace the geometry's views by N uniform views")
    noise = s.add_mutually_exclusive_group()
    noise.add_argument("--gaussian", type=float, default=None, metavar="REL", help="relative Gaussian noise (e.g. 0.01)")
    noise.add_argument("--poisson", type=float, default=None, metavar="I0", help="Poisson counting noise with I0 photons")
    s.add_argument("--mu-scale", type=float, default=1.0, help="for --poisson: line integrals are multiplied by this first")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .h5 file, or a folder for DICOM-CT-PD")
    s.add_argument("--format", choices=["h5", "dicom-ctpd"], default=None, help="default: from --out")
    s.add_argument("--truth", default=None, help="also write the phantom image to this .h5 file")
    s.add_argument("--preview", default=None, help="also write a PNG of the sinogram")
    s.set_defaults(func=_cmd_simulate)
    c = sub.add_parser("convert", help="convert between DICOM, DICOM-CT-PD, HDF5 and PNG previews")
    c.add_argument("input", help="DICOM file/folder, .h5/.hdf5 or .npy")
    c.add_argument("output", help=".h5, .png, .dcm or a folder (DICOM series / DICOM-CT-PD)")
    c.add_argument("--geometry", default=None, help="geometry for plain HDF5 sinograms (e.g. LoDoPaB)")
    c.add_argument("--image-shape", type=int, default=512, help="image grid for DICOM-CT-PD input (default 512)")
    c.add_argument("--window", type=float, nargs=2, metavar=("LEVEL", "WIDTH"), help="PNG window (default L40/W400 for HU)")
    c.add_argument("--method", default="converted", help="method name stored with images")
    c.add_argument("--skip-bad", action="store_true", help="skip unreadable files in a folder (they are reported)")
    c.set_defaults(func=_cmd_convert)
    i = sub.add_parser("info", help="versions and devices")
    i.set_defaults(func=_cmd_info)
