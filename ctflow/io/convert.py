"""Format conversion between DICOM (images and DICOM-CT-PD projections), HDF5 and PNG previews.

:func:`read_any` recognises what a path holds (a DICOM image or series, DICOM-CT-PD projections, a
ctflow HDF5 sinogram or reconstruction, a plain HDF5 ``data`` array with a geometry supplied, a
``.npy`` image) and :func:`write_any` writes it by the output's extension: ``.h5``/``.hdf5``,
``.png`` (a windowed preview) or a folder / ``.dcm`` (DICOM images; DICOM-CT-PD for fan-beam
sinograms). Images carry their units: ``"HU"`` (DICOM) or ``"mu"`` (1/mm); conversion between
the two uses :func:`ctflow.units.hu_to_mu`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import CTFlowError, DataError
from ..files import atomic_path
from ..geometry import FanBeamGeometry, Geometry
from ..units import mu_to_hu

IMAGE_UNITS = ("HU", "mu", "unknown")


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What :func:`read_any` found: ``kind`` is ``"image"`` or ``"sinogram"``. ``units``: an image's
    (``"HU"``, ``"mu"``, …); for a sinogram what its line integrals are of — ``"mu"`` for DICOM-CT-PD, an
    HDF5 sinogram's ``units`` attribute (``"mu"``/``"window"``), else ``"unknown"``."""

    kind: str
    data: np.ndarray
    geometry: Geometry | None = None
    pixel_size: float | None = None
    units: str = "unknown"
    meta: dict = dataclasses.field(default_factory=dict)


def _is_ctpd(path: Path) -> bool:
    """Whether ``path`` (a file, or a folder's first visible file) is DICOM-CT-PD projection data.

    Only the header is parsed (pixel data skipped); an unreadable file is "not projection data" and the
    image reader then reports its precise problem.
    """
    import pydicom

    from .dicom_ctpd_tags import CTPD_CREATOR

    try:
        if path.is_file():
            first = path
        else:
            first = next((f for f in sorted(path.iterdir()) if f.is_file() and not f.name.startswith(".")), None)
    except OSError as e:
        raise DataError(f"cannot list the folder: {e.strerror or e}", str(path)) from None
    if first is None:
        raise DataError("the folder is empty", str(path))
    from ..files import CappedReader

    try:
        with CappedReader(first) as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
        return CTPD_CREATOR in ds.private_creators(0x7029)
    except Exception:  # noqa: BLE001 (not DICOM at all: the image reader then reports the precise problem)
        return False


def read_any(
    path: str | os.PathLike,
    geometry: Geometry | str | None = None,
    image_shape: int | tuple[int, int] = 512,
    on_error: str = "raise",
) -> Loaded:
    """Read an image or a sinogram from DICOM, DICOM-CT-PD, HDF5 or ``.npy``.

    Every failure is a :class:`~ctflow.errors.CTFlowError` naming the input (a DataError for the file
    itself, a GeometryError/GeometryFileError for a bad ``geometry`` argument).
    """
    p = Path(path)
    try:
        return _read_any(p, geometry, image_shape, on_error)
    except CTFlowError:
        raise
    except Exception as e:  # noqa: BLE001 (the readers guard their libraries; this is the last line)
        raise DataError(f"cannot read the input: {type(e).__name__}: {e}", str(p)) from None


def _sinogram_units(attrs: dict) -> str:
    """An HDF5 sinogram's ``units`` root attribute (``ctflow simulate`` writes ``mu`` or ``window``),
    lower-case; ``"unknown"`` when absent or empty."""
    v = attrs.get("units")
    return v.strip().lower() if isinstance(v, str) and v.strip() else "unknown"


def _read_any(p: Path, geometry, image_shape, on_error: str) -> Loaded:
    if not p.exists():
        raise DataError("file or folder does not exist", str(p))
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        from .hdf5 import file_kind, read_image_h5, read_sinogram_h5

        kind = file_kind(p)
        if kind == "reconstruction":
            im = read_image_h5(p)
            units = str(im.attrs.get("units", "mu"))
            return Loaded("image", im.image, im.geometry, im.pixel_size, units, {"method": im.method, "params": im.params})
        sf = read_sinogram_h5(p, geometry=geometry)
        return Loaded("sinogram", sf.sinogram, sf.geometry, units=_sinogram_units(sf.attrs),
                      meta={"noise": sf.noise})
    if suffix == ".npy":
        from .arrays import read_npy

        arr = read_npy(p, what="image array", dtype=np.float32)
        if arr.ndim not in (2, 3) or 0 in arr.shape:
            raise DataError(f"an image array must have shape (H, W) or (n, H, W), got {arr.shape}", str(p))
        return Loaded("image", arr, units="unknown")
    if p.is_dir() or suffix in (".dcm", ""):
        from .dicom_ctpd import read_dicom_ctpd
        from .dicom_image import read_dicom_image, read_dicom_series

        if _is_ctpd(p):
            pd = read_dicom_ctpd(p, on_error=on_error, image_shape=image_shape)  # line integrals of μ by definition
            return Loaded("sinogram", pd.sinogram, pd.geometry, units="mu", meta=dict(pd.metadata))
        ct = read_dicom_series(p, on_error=on_error) if p.is_dir() else read_dicom_image(p)
        if ct.pixel_spacing[0] != ct.pixel_spacing[1]:
            raise DataError(f"non-square pixels {ct.pixel_spacing} are not supported", str(p))
        return Loaded("image", ct.hu, None, float(ct.pixel_spacing[0]), "HU", dict(ct.metadata))
    raise DataError(f"unsupported input type {suffix!r}: use a DICOM file/folder, .h5/.hdf5 or .npy", str(p))


def to_hu(loaded: Loaded) -> np.ndarray:
    """The image in HU (μ images are converted; unknown units are refused)."""
    if loaded.units == "HU":
        return loaded.data
    if loaded.units == "mu":
        return mu_to_hu(loaded.data)
    raise DataError("the image's units are unknown; DICOM needs HU (store `units` = 'HU' or 'mu' in the HDF5 attrs)")


def write_png_preview(path: str | os.PathLike, arr: np.ndarray, window: tuple[float, float] | None = None, title: str | None = None) -> Path:
    """A grayscale PNG of a 2D array (the middle slice of a stack), clipped to ``window = (L, W)``
    or to the 1st–99th percentile range, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 3:
        a = a[a.shape[0] // 2]
    if window is not None:
        lo, hi = window[0] - window[1] / 2.0, window[0] + window[1] / 2.0
    else:
        lo, hi = np.percentile(a, [1, 99])
        hi = hi if hi > lo else lo + 1.0
    fig, ax = plt.subplots(figsize=(5, 5 * a.shape[0] / max(a.shape[1], 1) + 0.4))
    ax.imshow(a, cmap="gray", vmin=lo, vmax=hi, aspect="auto")
    ax.set_title(title or f"window [{lo:.4g}, {hi:.4g}]", fontsize=9)
    ax.axis("off")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def write_any(loaded: Loaded, out: str | os.PathLike, *, window: tuple[float, float] | None = None, method: str = "converted") -> list[Path]:
    """Write ``loaded`` to ``out`` by its extension (see the module docstring); returns the files."""
    o = Path(out)
    suffix = o.suffix.lower()
    if suffix == ".png":
        if loaded.kind == "image" and loaded.units == "HU" and window is None:
            window = (40.0, 400.0)
        return [write_png_preview(o, loaded.data, window, title=f"{loaded.kind} ({loaded.units})" if loaded.kind == "image" else "sinogram")]
    if suffix in (".h5", ".hdf5"):
        from .hdf5 import write_image_h5, write_sinogram_h5

        if loaded.kind == "sinogram":
            return [write_sinogram_h5(o, loaded.data, loaded.geometry, noise=loaded.meta.get("noise") or None)]
        return [
            write_image_h5(o, loaded.data, geometry=loaded.geometry, method=loaded.meta.get("method") or method,
                           params=loaded.meta.get("params") or {}, pixel_size=loaded.pixel_size, attrs={"units": loaded.units})
        ]
    if suffix in ("", ".dcm"):
        from .dicom_ctpd import write_dicom_ctpd
        from .dicom_image_writer import write_dicom_image, write_dicom_series

        if loaded.kind == "sinogram":
            if suffix == ".dcm":
                raise DataError("DICOM-CT-PD writes one file per view: give a folder name, not a .dcm file", str(o))
            if not isinstance(loaded.geometry, FanBeamGeometry):
                raise DataError("DICOM-CT-PD holds fan-beam projections; write parallel-beam sinograms to .h5", str(o))
            noise = loaded.meta.get("noise")
            return write_dicom_ctpd(o, loaded.data, loaded.geometry, noise=noise or None)
        hu = to_hu(loaded)
        if loaded.pixel_size is None:
            raise DataError("the image has no pixel size; DICOM needs PixelSpacing", str(o))
        if suffix == ".dcm":
            if hu.ndim != 2:
                raise DataError(f"a single .dcm file holds one slice; got shape {hu.shape} (give a folder)", str(o))
            return [write_dicom_image(o, hu, loaded.pixel_size, method=loaded.meta.get("method") or method)]
        stack = hu if hu.ndim == 3 else hu[None]
        return write_dicom_series(o, stack, loaded.pixel_size, method=loaded.meta.get("method") or method)
    raise DataError(f"unsupported output type {suffix!r}: use .h5, .png, .dcm or a folder name", str(o))
