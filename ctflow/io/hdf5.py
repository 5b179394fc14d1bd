"""HDF5 sinograms and reconstructions in a DXchange-like layout that round-trips ctflow geometries.

Sinogram files (``kind = "sinogram"``)::

    /exchange/data    float32 (n_angles, n_detectors), or a stack (n, n_angles, n_detectors);
                      chunked one sinogram per chunk, gzip-compressed by default
    /exchange/theta   float64 (n_angles,): the view angles in degrees
    root attributes   ctflow_geometry  geometry JSON (``Geometry.to_json()``, radians and mm)
                      ctflow_noise     noise metadata JSON (``{}`` when noise-free or unknown)
                      ctflow_version   version of ctflow that wrote the file
                      created          ISO 8601 time (UTC)
                      kind             "sinogram"
                      ...              any extra attributes passed as ``attrs=``

Reconstruction files (``kind = "reconstruction"``)::

    /reconstruction/data   float32 (H, W) or (n, H, W), chunked one image per chunk
    root attributes        method, params (JSON), ctflow_geometry (if known),
                           pixel_size_mm (if known), ctflow_version, created, kind

Unlike tomopy's DXchange, a 2D sinogram is stored without a detector-row axis. The readers also
accept plain files such as LoDoPaB-CT's (one dataset ``data`` of shape (N, n_angles, n_det)) when
the caller supplies the geometry. Every bad file raises :class:`~ctflow.errors.DataError` naming
it (the guards for untrusted files, from opening to the root attributes and the declared sizes of
datasets, are in :mod:`.hdf5_untrusted`); writers check shapes and finiteness first and write
atomically (temp file + rename).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import DataError, GeometryError, GeometryFileError, NonFiniteError, ShapeError
from ..files import atomic_path
from ..geometry import Geometry, load_geometry
from ..limits import check_array
from .hdf5_untrusted import _damage_is_data_error, _h5py, _open, _read_float32, _root_attrs

__all__ = ["ImageFile", "SinogramFile", "read_image_h5", "read_sinogram_h5", "write_image_h5", "write_sinogram_h5"]

SINOGRAM_DATASET = "exchange/data"
THETA_DATASET = "exchange/theta"
IMAGE_DATASET = "reconstruction/data"
_PLAIN_DATASETS = ("data",)  # LoDoPaB-CT style
_RESERVED_ATTRS = frozenset(
    {"ctflow_geometry", "ctflow_noise", "ctflow_version", "created", "kind", "method", "params", "pixel_size_mm"}
)
_THETA_RTOL = 1e-9  # degrees, times max(1, largest |angle| in degrees)


@dataclasses.dataclass(frozen=True)
class SinogramFile:
    """What :func:`read_sinogram_h5` returns.

    ``sinogram`` is float32 (n_angles, n_det) or (n, n_angles, n_det); ``noise`` the stored noise
    metadata (``{}`` if none); ``attrs`` every root attribute of the file (strings decoded).
    """

    sinogram: np.ndarray
    geometry: Geometry
    noise: dict
    attrs: dict
    path: Path


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """What :func:`read_image_h5` returns (``method``/``params``/``geometry``/``pixel_size`` are
    ``None``/``{}`` when the file does not record them)."""

    image: np.ndarray
    method: str | None
    params: dict
    geometry: Geometry | None
    attrs: dict
    path: Path
    pixel_size: float | None = None


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _to_json(obj: Any, what: str, path: Path) -> str:
    try:
        return json.dumps(obj, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DataError(f"cannot store {what} as JSON: {e}", str(path)) from None


def _noise_dict(noise: Any) -> dict:
    if noise is None:
        return {}
    if dataclasses.is_dataclass(noise) and not isinstance(noise, type):
        return {"model": type(noise).__name__, **dataclasses.asdict(noise)}
    if not isinstance(noise, dict):
        raise TypeError(f"noise must be a dict of metadata (or a noise model), got {type(noise).__name__}")
    return dict(noise)


def _as_float32(data: Any, what: str) -> np.ndarray:
    if hasattr(data, "detach"):  # torch tensor
        data = data.detach().cpu().numpy()
    try:
        return np.ascontiguousarray(np.asarray(data, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{what} must be a real numeric array: {e}") from None


def _check_finite_for_write(arr: np.ndarray, what: str) -> None:
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise NonFiniteError(f"{what} contains {bad} NaN/Inf value(s) out of {arr.size}; refusing to write it")


def _list_datasets(f) -> list[str]:
    h5py = _h5py()
    names: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            names.append(f"/{name} {obj.shape} {obj.dtype}")

    f.visititems(visit)
    return names


def _find_dataset(f, path: Path, dataset: str | None, defaults: tuple[str, ...], hint: str = ""):
    h5py = _h5py()
    candidates = (dataset,) if dataset is not None else defaults
    for name in candidates:
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset):
            return name, obj
    present = _list_datasets(f)
    listing = ", ".join(present) if present else "none"
    wanted = f"dataset {dataset!r}" if dataset is not None else " or ".join(f"/{n}" for n in defaults)
    raise DataError(f"no {wanted} in the file{hint}; datasets present: {listing}", str(path))


def _json_text(attrs: dict, key: str, path: Path) -> Any:
    """Parse the JSON attribute ``key`` boundedly (:func:`ctflow.schemas.parse_mapping`); None if absent."""
    from ..schemas import parse_mapping

    text = attrs.get(key)
    if text is None:
        return None
    if not isinstance(text, str):
        raise DataError(f"corrupt {key} attribute: expected JSON text, got {type(text).__name__}", str(path))
    return parse_mapping(text, f"corrupt {key} attribute", path=path, fmt="json", error=DataError,
                         allow_nonfinite=False)


def _stored_geometry(attrs: dict, path: Path) -> Geometry | None:
    from ..geometry.presets import geometry_from_mapping

    d = _json_text(attrs, "ctflow_geometry", path)
    if d is None and "ctflow_geometry" not in attrs:
        return None
    return geometry_from_mapping(d, "corrupt ctflow_geometry attribute", path, error=GeometryFileError)


def _json_attr(attrs: dict, key: str, path: Path) -> dict:
    if attrs.get(key) is None:
        return {}
    d = _json_text(attrs, key, path)
    if not isinstance(d, dict):
        raise DataError(f"corrupt {key} attribute: expected a JSON object, got {type(d).__name__}", str(path))
    return d


def _check_sinogram_shape(shape: tuple[int, ...], geometry: Geometry, where: str, path: Path | None) -> None:
    """Raise if ``shape`` is not (A, D) / (n, A, D) of ``geometry``; DataError when reading a file."""
    err = (lambda m: DataError(m, str(path))) if path is not None else ShapeError
    if len(shape) not in (2, 3):
        raise err(f"{where} must have shape (n_angles, n_detectors) or (n, n_angles, n_detectors), got {shape}")
    n_angles, n_det = shape[-2:]
    if n_angles != geometry.n_angles:
        raise err(
            f"{where} has {n_angles} angles (shape {shape}) but the geometry has {geometry.n_angles} "
            f"(sinogram shape {geometry.sinogram_shape})"
        )
    if n_det != geometry.n_detectors:
        raise err(
            f"{where} has {n_det} detector elements (shape {shape}) but the geometry has {geometry.n_detectors} "
            f"(sinogram shape {geometry.sinogram_shape})"
        )


def _check_theta(theta_ds, geometry: Geometry, path: Path) -> None:
    if not hasattr(theta_ds, "dtype") or theta_ds.dtype.kind not in "fiu":
        raise DataError(f"/{THETA_DATASET} is not a numeric dataset", str(path))
    check_array(theta_ds.shape, theta_ds.dtype.itemsize, f"/{THETA_DATASET}", path, 8)
    try:
        theta = np.asarray(theta_ds[()], dtype=np.float64).reshape(-1)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read /{THETA_DATASET}: {type(e).__name__}: {e}", str(path)) from None
    expected = np.degrees(np.asarray(geometry.angles, dtype=np.float64))
    if theta.shape != expected.shape:
        raise DataError(f"/{THETA_DATASET} has {theta.size} angles but the geometry has {expected.size}", str(path))
    tol = _THETA_RTOL * max(1.0, float(np.max(np.abs(expected))))
    diff = np.abs(theta - expected)
    diff[~np.isfinite(diff)] = np.inf
    if np.any(diff > tol):
        i = int(np.argmax(diff))
        raise DataError(
            f"/{THETA_DATASET} disagrees with the geometry's angles: angle {i} is {theta[i]!r}° in the file "
            f"but {expected[i]!r}° in the geometry (max deviation {float(np.max(diff)):.3g}°, tolerance {tol:.1g}°)",
            str(path),
        )


def _write_attrs(obj, attrs: dict | None, path: Path) -> None:
    for k, v in (attrs or {}).items():
        if not isinstance(k, str) or k in _RESERVED_ATTRS:
            raise DataError(f"attribute name {k!r} is reserved by the ctflow layout (or not a string)", str(path))
        try:
            arr = np.asarray(v) if not isinstance(v, str) else None
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"attribute {k!r} holds NaN/Inf; refusing to write it")
        try:
            obj.attrs[k] = v
        except (TypeError, ValueError) as e:
            raise DataError(
                f"attribute {k!r}: unsupported value of type {type(v).__name__} ({e}); use str, numbers or arrays",
                str(path),
            ) from None


def _create_stack(group, name: str, arr: np.ndarray, compression: str | None):
    chunks = arr.shape if arr.ndim == 2 else (1, *arr.shape[1:])
    kw: dict[str, Any] = {"chunks": chunks}
    if compression is not None:
        kw.update(compression=compression, shuffle=True)
    return group.create_dataset(name, data=arr, **kw)


# --------------------------------------------------------------------------------------------
# sinograms
# --------------------------------------------------------------------------------------------
def write_sinogram_h5(
    path: str | os.PathLike,
    sinogram: Any,
    geometry: Geometry | str | os.PathLike,
    *,
    noise: dict | None = None,
    attrs: dict | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write a sinogram (or a stack of them) with its geometry to ``path`` atomically.

    Args:
        path: target ``.h5`` file (replaced only if the whole write succeeds).
        sinogram: array or tensor, (n_angles, n_detectors) or (n, n_angles, n_detectors).
        geometry: geometry object, preset name or geometry file.
        noise: noise metadata (JSON-serialisable dict, or a ctflow noise model) stored as
            ``ctflow_noise``.
        attrs: extra root attributes (str, numbers or arrays; ctflow's own names are reserved).
        compression: HDF5 filter (``"gzip"``, ``"lzf"``) or ``None``.

    Raises:
        ShapeError: the shape does not match ``geometry.sinogram_shape``.
        NonFiniteError: the data holds NaN or Inf.
    """
    path = Path(path)
    geometry = load_geometry(geometry)
    arr = _as_float32(sinogram, "sinogram")
    _check_sinogram_shape(arr.shape, geometry, "sinogram", None)
    _check_finite_for_write(arr, "sinogram")
    noise_json = _to_json(_noise_dict(noise), "noise metadata", path)
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["kind"] = "sinogram"
        f.attrs["ctflow_geometry"] = geometry.to_json()
        f.attrs["ctflow_noise"] = noise_json
        f.attrs["ctflow_version"] = __version__
        f.attrs["created"] = _now()
        _write_attrs(f, attrs, path)
        ex = f.create_group("exchange")
        ds = _create_stack(ex, "data", arr, compression)
        ds.attrs["axes"] = "angle,detector" if arr.ndim == 2 else "sample,angle,detector"
        th = ex.create_dataset("theta", data=np.degrees(np.asarray(geometry.angles, dtype=np.float64)))
        th.attrs["units"] = "degrees"
    return path


def read_sinogram_h5(
    path: str | os.PathLike,
    geometry: Geometry | str | os.PathLike | None = None,
    dataset: str | None = None,
) -> SinogramFile:
    """Read a sinogram file written by :func:`write_sinogram_h5`, or a plain HDF5 file.

    Args:
        path: the ``.h5``/``.hdf5`` file.
        geometry: geometry object, preset name or geometry file. Required for files that do not
            store one (e.g. LoDoPaB-CT ``observation_*.hdf5``); when given it is used instead of
            the stored one (a differing stored geometry gives a warning).
        dataset: dataset path inside the file; default ``/exchange/data``, else ``/data``.

    Raises:
        DataError: missing/unreadable file, no such dataset, shape or ``/exchange/theta`` not
            matching the geometry, NaN/Inf in the data, corrupt metadata. The message names the file.
    """
    path = Path(path)
    if geometry is not None:
        geometry = load_geometry(geometry)
    with _open(path) as f, _damage_is_data_error(path):
        attrs = _root_attrs(path)
        hint = ""
        if attrs.get("kind") == "reconstruction":
            hint = " (it holds a reconstruction: use read_image_h5)"
        name, ds = _find_dataset(f, path, dataset, (SINOGRAM_DATASET, *_PLAIN_DATASETS), hint)
        if geometry is not None:
            try:
                stored = _stored_geometry(attrs, path)
            except DataError:
                stored = None
            if stored is not None and stored != geometry:
                warnings.warn(
                    f"{path}: the geometry stored in the file differs from the one supplied; using the supplied one",
                    UserWarning,
                    stacklevel=2,
                )
        else:
            geometry = _stored_geometry(attrs, path)
            if geometry is None:
                raise DataError(
                    "the file stores no ctflow geometry (no 'ctflow_geometry' attribute); pass geometry= "
                    "(a geometry, preset name or geometry file)",
                    str(path),
                )
        _check_sinogram_shape(tuple(ds.shape), geometry, f"dataset /{name}", path)
        theta = f.get(THETA_DATASET)
        if theta is not None:
            _check_theta(theta, geometry, path)
        noise = _json_attr(attrs, "ctflow_noise", path)
        data = _read_float32(ds, path)
    return SinogramFile(sinogram=data, geometry=geometry, noise=noise, attrs=attrs, path=path)


# --------------------------------------------------------------------------------------------
# reconstructions
# --------------------------------------------------------------------------------------------
def write_image_h5(
    path: str | os.PathLike,
    image: Any,
    *,
    geometry: Geometry | str | os.PathLike | None = None,
    method: str,
    params: dict | None = None,
    pixel_size: float | None = None,
    attrs: dict | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write a reconstruction (H, W) or a stack (n, H, W) to ``path`` atomically.

    Args:
        method: how it was made (``"fbp"``, ``"flow-dps"``, ...).
        params: the method's settings (JSON-serialisable dict).
        geometry: the scan geometry; its ``image_shape`` must match the image.
        pixel_size: pixel side in mm (default: the geometry's; must agree with it if both given).
        attrs: extra root attributes (str, numbers or arrays).
        compression: HDF5 filter or ``None``.
    """
    path = Path(path)
    if not isinstance(method, str) or not method:
        raise ValueError("write_image_h5: method must be a non-empty string (e.g. 'fbp')")
    arr = _as_float32(image, "image")
    if arr.ndim not in (2, 3):
        raise ShapeError(f"image must have shape (H, W) or (n, H, W), got {arr.shape}")
    if geometry is not None:
        geometry = load_geometry(geometry)
        if tuple(arr.shape[-2:]) != tuple(geometry.image_shape):
            raise ShapeError(f"image has shape {arr.shape} but the geometry's image_shape is {geometry.image_shape}")
        if pixel_size is None:
            pixel_size = geometry.pixel_size
        elif not math.isclose(float(pixel_size), geometry.pixel_size, rel_tol=1e-12):
            raise GeometryError(
                f"pixel_size={pixel_size} disagrees with the geometry's pixel_size={geometry.pixel_size}"
            )
    if pixel_size is not None:
        pixel_size = float(pixel_size)
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise GeometryError(f"pixel_size must be a positive number of mm, got {pixel_size}")
    _check_finite_for_write(arr, "image")
    params_json = _to_json(dict(params or {}), "params", path)
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["kind"] = "reconstruction"
        f.attrs["method"] = method
        f.attrs["params"] = params_json
        if geometry is not None:
            f.attrs["ctflow_geometry"] = geometry.to_json()
        if pixel_size is not None:
            f.attrs["pixel_size_mm"] = pixel_size
        f.attrs["ctflow_version"] = __version__
        f.attrs["created"] = _now()
        _write_attrs(f, attrs, path)
        ds = _create_stack(f.create_group("reconstruction"), "data", arr, compression)
        ds.attrs["axes"] = "row,column" if arr.ndim == 2 else "sample,row,column"
    return path


def read_image_h5(path: str | os.PathLike, dataset: str | None = None) -> ImageFile:
    """Read a reconstruction written by :func:`write_image_h5` (or ``dataset`` of a plain file,
    e.g. ``"data"`` of a LoDoPaB-CT ground-truth file).

    Raises:
        DataError: missing/unreadable file, no such dataset, NaN/Inf, corrupt metadata, or an image
            shape that disagrees with the stored geometry. The message names the file.
    """
    path = Path(path)
    with _open(path) as f, _damage_is_data_error(path):
        attrs = _root_attrs(path)
        hint = " (it holds a sinogram: use read_sinogram_h5)" if attrs.get("kind") == "sinogram" else ""
        name, ds = _find_dataset(f, path, dataset, (IMAGE_DATASET,), hint)
        if ds.ndim not in (2, 3):
            raise DataError(f"dataset /{name} must have shape (H, W) or (n, H, W), got {ds.shape}", str(path))
        geometry = _stored_geometry(attrs, path)
        if geometry is not None and tuple(ds.shape[-2:]) != tuple(geometry.image_shape):
            raise DataError(
                f"dataset /{name} has shape {ds.shape} but the stored geometry's image_shape is {geometry.image_shape}",
                str(path),
            )
        params = _json_attr(attrs, "params", path)
        pixel_size = _pixel_size_attr(attrs, geometry, path)
        image = _read_float32(ds, path)
    method = attrs.get("method")
    return ImageFile(
        image=image,
        method=None if method is None else str(method),
        params=params,
        geometry=geometry,
        attrs=attrs,
        path=path,
        pixel_size=pixel_size,
    )


def _pixel_size_attr(attrs: dict, geometry: Geometry | None, path: Path) -> float | None:
    value = attrs.get("pixel_size_mm")
    if value is None:
        return None
    try:
        v = float(np.asarray(value, dtype=np.float64).reshape(-1)[0]) if np.size(value) == 1 else float("nan")
    except (TypeError, ValueError, OverflowError, IndexError):
        v = float("nan")
    if not (math.isfinite(v) and v > 0):
        raise DataError(f"corrupt pixel_size_mm attribute {str(value)[:60]!r}: not a positive finite number of mm",
                        str(path))
    return v


def file_kind(path: str | os.PathLike) -> str:
    """The ``kind`` root attribute of a ctflow HDF5 file (``""`` when absent), read through the same
    guards as the readers."""
    path = Path(path)
    kind = _root_attrs(path).get("kind", "")
    return kind if isinstance(kind, str) else ""
