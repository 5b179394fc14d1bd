r"""Fan-beam projection data as DICOM-CT-PD: one file per view, the geometry in private tags.

:func:`write_dicom_ctpd` / :func:`read_dicom_ctpd` store a fan-beam sinogram as one DICOM file per
view with the geometry in the private tags of the DICOM-CT-PD format (Chen et al., Med. Phys.
42(12), 2015), so that a ctflow scan round-trips exactly: the geometry read back compares equal
(``==``) to the one written. The tag table, the angle convention (φ₀ = θ − π/2) and the codec live
in :mod:`.dicom_ctpd_tags`; this module handles the pixel data (per-view uint16 with its own
rescale), the files, and the consistency of the views.

Every reader raises :class:`~ctflow.errors.DataError` naming the offending file, and every writer
goes through :func:`ctflow.files.atomic_path`, so a failed write never leaves a partial file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, GeometryError, ShapeError
from ..files import FolderInUseError, atomic_folder
from ..geometry import FanBeamGeometry
from .dicom_common import (
    _base_dataset,
    _check_finite,
    _check_on_error,
    _dcmread,
    _decode_pixels,
    _ds,
    _ds_str,
    _guard,
    _has_pixels,
    _instance_number,
    _list_inputs,
    _reason,
    _rescaled,
    _to_numpy,
    _warn_skipped,
)
from .dicom_ctpd_tags import (
    _T_COLS,
    _T_ROWS,
    UnsupportedScanError,
    _read_manifest_tags,
    _read_view_tags,
    _tag_label,
    _write_manifest_tags,
    _write_view_tags,
)

__all__ = ["ProjectionData", "UnsupportedScanError", "read_dicom_ctpd", "write_dicom_ctpd"]

_UINT16_MAX = 65535


class ProjectionData(tuple):
    """``(sinogram, geometry)`` from :func:`read_dicom_ctpd`, with extra attributes.

    Unpacks like a pair; also has ``sinogram`` (float32 ``(n_views, n_detectors)``),
    ``geometry`` (:class:`~ctflow.FanBeamGeometry`), ``paths`` (files in view order),
    ``skipped`` (``(path, reason)`` pairs), ``z_positions`` (mm, per view) and ``metadata``
    (patient/study/series identifiers, ``noise`` if it was stored, ``projections_per_rotation``).
    """

    def __new__(cls, sinogram, geometry, *, paths, skipped, z_positions, metadata):
        obj = super().__new__(cls, (sinogram, geometry))
        obj.paths = paths
        obj.skipped = skipped
        obj.z_positions = z_positions
        obj.metadata = metadata
        return obj

    @property
    def sinogram(self) -> np.ndarray:
        return self[0]

    @property
    def geometry(self) -> FanBeamGeometry:
        return self[1]

    def __getnewargs_ex__(self):  # pickling
        return (tuple(self), {"paths": self.paths, "skipped": self.skipped, "z_positions": self.z_positions,
                              "metadata": self.metadata})


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _projections_per_rotation(angles: np.ndarray) -> int:
    if angles.size < 2:
        return 1
    step = float(np.median(np.abs(np.diff(angles))))
    if step <= 0:
        return int(angles.size)
    return max(1, min(_UINT16_MAX, round(2 * math.pi / step)))


def _quantize_uint16(view: np.ndarray) -> tuple[np.ndarray, float, float]:
    r"""uint16 stored values ``q`` with ``x ≈ a·q + b`` (a, b exactly representable as DS).

    ``b = min x`` and ``a = (max x − b)/65535``, so ``|a·q + b − x| ≤ a/2`` (plus the DS rounding of
    a and b, ~1e-14 relative).
    """
    lo, hi = float(view.min()), float(view.max())
    b = _ds(lo)
    a = (hi - b) / _UINT16_MAX
    a = _ds(a) if a > 0 else 1.0
    if not a > 0:
        a = 1.0
    q = np.clip(np.rint((view - b) / a), 0, _UINT16_MAX).astype(np.uint16)
    return q, a, b


def write_dicom_ctpd(
    folder: str | os.PathLike,
    sinogram: Any,
    geometry: FanBeamGeometry,
    *,
    rows: int = 1,
    patient_id: str = "CTFLOW",
    patient_name: str = "ctflow^simulation",
    noise: dict | Any | None = None,
    axial_spacing: float = 1.0,
    z_position: float = 0.0,
    study_uid: str | None = None,
    series_uid: str | None = None,
    description: str | None = None,
    prefix: str = "view_",
) -> list[Path]:
    r"""Write a fan-beam sinogram as one DICOM-CT-PD-style file per view.

    Each file is a CT Image Storage object whose pixel data hold the view's line integrals
    (``rows × n_detectors``; a 2D scan is replicated over ``rows`` identical detector rows) and
    whose private blocks (creator ``"DICOM-CT-PD"``) hold the geometry:

    =================  ==========================================================================
    (7029,1010/1011)   detector rows / columns (US)
    (7029,1002/1006)   transverse element spacing (arc length if curved) / axial spacing, mm (FD)
    (7029,100B)        detector shape: ``CYLINDRICAL`` (curved) or ``FLAT`` (CS)
    (7031,1001)        focal-centre angle φ₀ = θ − π/2, rad (FD)
    (7031,1002)        focal-centre z, mm (FD)
    (7031,1003)        ρ₀ = source_to_isocenter, mm (FD)
    (7031,1031)        focal-centre-to-detector distance = source_to_detector, mm (FD)
    (7031,1033)        central element (column, row), **1-based** as in the TCIA data and public readers:
                       :math:`((n+1)/2 - \text{offset}/\text{spacing},\ (\text{rows}+1)/2)` (FD×2)
    (7033,1013)        projections per rotation, ≈ 2π / median angular step (US)
    (7033,100E)        flying focal spot mode ``FFSNONE``; (7037,1009) type of projection data ``AXIAL``
    =================  ==========================================================================

    A second private block (group 7035, creator ``"CTFLOW"``) keeps the exact θ and
    detector_offset (so :func:`read_dicom_ctpd` returns an identical geometry) and ``noise`` as
    JSON.

    **Pixel encoding.** Each view is stored as uint16 with its own RescaleSlope ``a`` and
    RescaleIntercept ``b`` (RescaleType ``US``): ``b = min``, ``a = (max − min)/65535``, so the
    round-trip error of a view is at most ``a/2`` (half a quantisation step, ≈ 7.6e-6 of the
    view's range) plus float32 rounding.

    Parameters
    ----------
    folder : path
        Output folder (created); files are ``<prefix>00001.dcm`` … in view order.
    sinogram : numpy.ndarray or torch.Tensor
        ``(n_views, n_detectors)`` line integrals matching ``geometry.sinogram_shape``.
    geometry : FanBeamGeometry
        The scan geometry (flat or curved detector).
    rows : int
        Detector rows to write (the view is replicated).
    noise : dict or noise-model dataclass, optional
        Noise description stored as JSON (e.g. ``{"model": "poisson", "I0": 1e5}``).
    axial_spacing, z_position : float
        Axial element spacing and focal-centre z in mm (a 2D scan has a single z).

    Returns
    -------
    list of pathlib.Path
    """
    from pydicom.uid import generate_uid

    if not isinstance(geometry, FanBeamGeometry):
        raise GeometryError(
            f"write_dicom_ctpd needs a FanBeamGeometry (DICOM-CT-PD describes fan/cone beam scans), "
            f"got {type(geometry).__name__}"
        )
    sino = _to_numpy(sinogram, "write_dicom_ctpd: the sinogram")
    if sino.shape != geometry.sinogram_shape:
        raise ShapeError(
            f"write_dicom_ctpd: the sinogram has shape {tuple(sino.shape)} but the geometry expects "
            f"(n_views, n_detectors) = {geometry.sinogram_shape}"
        )
    _check_finite(sino, "write_dicom_ctpd: the sinogram")
    rows = int(rows)
    if rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows}")
    axial_spacing, z_position = float(axial_spacing), float(z_position)
    if not (math.isfinite(axial_spacing) and axial_spacing > 0 and math.isfinite(z_position)):
        raise ValueError("axial_spacing must be positive and z_position finite (mm)")
    noise_json = None
    if noise is not None:
        if dataclasses.is_dataclass(noise) and not isinstance(noise, type):
            noise = {"model": type(noise).__name__, **dataclasses.asdict(noise)}
        try:
            noise_json = json.dumps(noise, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"noise must be JSON-serialisable (a dict of numbers/strings): {e}") from None

    angles = np.asarray(geometry.angles, dtype=np.float64)
    n_views, n_det = geometry.sinogram_shape
    ppr = _projections_per_rotation(angles)
    study_uid, series_uid, for_uid = study_uid or generate_uid(), series_uid or generate_uid(), generate_uid()
    if description is None:
        description = f"ctflow projections {geometry.detector_shape} fan, {n_views} views"
    now = _dt.datetime.now()
    width = max(5, len(str(n_views)))
    folder = Path(folder)
    quantized = [_quantize_uint16(np.broadcast_to(sino[i][None, :], (rows, n_det))) for i in range(n_views)]
    digests = [_pixel_digest(np.ascontiguousarray(q).astype("<u2").tobytes(), float(_ds_str(a)), float(_ds_str(b)))
               for q, a, b in quantized]
    scan_digest = hashlib.sha256("".join(digests).encode("ascii")).hexdigest()
    names = [f"{prefix}{i + 1:0{width}d}.dcm" for i in range(n_views)]
    pattern = re.compile(rf"^{re.escape(prefix)}\d+\.dcm$")
    try:
        with atomic_folder(folder, replaceable=lambda name: bool(pattern.match(name))) as tmp:
            for i in range(n_views):
                q, a, b = quantized[i]
                ds = _base_dataset(
                    sop_class="1.2.840.10008.5.1.4.1.1.2",
                    now=now,
                    patient_id=patient_id,
                    patient_name=patient_name,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    frame_of_reference_uid=for_uid,
                    instance_number=i + 1,
                    series_description=description,
                    image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
                )
                ds.ImageComments = "CT projection data (line integrals), DICOM-CT-PD style, written by ctflow"
                ds.SliceThickness = _ds_str(axial_spacing)
                ds.PixelSpacing = [_ds_str(axial_spacing), _ds_str(geometry.detector_spacing)]
                ds.ImagePositionPatient = [0, 0, _ds_str(z_position)]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.set_pixel_data(np.ascontiguousarray(q), photometric_interpretation="MONOCHROME2", bits_stored=16,
                                  generate_instance_uid=False)
                ds.RescaleIntercept = _ds_str(b)
                ds.RescaleSlope = _ds_str(a)
                ds.RescaleType = "US"
                _write_view_tags(ds, geometry, float(angles[i]), rows=rows, axial_spacing=axial_spacing,
                                 z_position=z_position, projections_per_rotation=ppr, noise_json=noise_json)
                _write_manifest_tags(ds, n_views, i, digests[i], scan_digest)
                ds.save_as(tmp / names[i], enforce_file_format=True)
    except FolderInUseError as e:
        raise DataError(f"cannot write the projection folder: {e}", str(folder)) from None
    return [folder / name for name in names]


def _pixel_digest(data: bytes, slope: float, intercept: float) -> str:
    """SHA-256 of a view's stored pixel bytes and its rescale (what its values are made of)."""
    h = hashlib.sha256(data)
    h.update(f"{float(slope)!r},{float(intercept)!r}".encode("ascii"))
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _read_ctpd_view(path: Path) -> dict:
    """One projection file → dict(path, view, theta, instance, z, key, ppr, noise, manifest, ds); ``key``
    holds the geometry values that every view of a scan must share. Every failure is a DataError naming
    the file."""
    try:
        return _read_ctpd_view_unguarded(path)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (the last line of defence)
        raise DataError(f"cannot read the projection file ({type(e).__name__}: {e})", str(path)) from None


def _read_ctpd_view_unguarded(path: Path) -> dict:
    ds = _dcmread(path)
    g = _read_view_tags(ds, path)
    rows, cols = g["rows"], g["cols"]
    if not _has_pixels(ds):
        raise DataError("has the DICOM-CT-PD geometry but no pixel data", str(path))
    stored = _decode_pixels(ds, path)
    if stored.shape == (rows, cols):
        pass
    elif stored.shape == (cols, rows):  # some writers store detector columns along the DICOM rows
        stored = stored.T
    else:
        raise DataError(
            f"pixel data shape {stored.shape} does not match the {rows} detector row(s) × {cols} column(s) "
            f"of {_tag_label(_T_ROWS)}/{_tag_label(_T_COLS)}",
            str(path),
        )
    manifest = _read_manifest_tags(ds, path)
    if manifest is not None:
        raw = ds.get("PixelData")
        try:
            slope, icpt = float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))
        except (TypeError, ValueError, OverflowError):
            slope = icpt = float("nan")
        if not isinstance(raw, (bytes, bytearray)) or _pixel_digest(bytes(raw), slope, icpt) != manifest["digest"]:
            raise DataError(
                "the pixel data or their rescale do not match the checksum ctflow wrote with them (the file was "
                "modified or damaged)",
                str(path),
            )
    values = _rescaled(stored, ds, path, dtype=np.float64)
    r = float(np.clip(g["central"][1], 0, rows - 1))  # the central row, 0-based (x.5 for an even row count)
    r0 = math.floor(r)
    r1, frac = min(r0 + 1, rows - 1), r - math.floor(r)
    view = ((1.0 - frac) * values[r0] + frac * values[r1]).astype(np.float32)
    if not np.all(np.isfinite(view)):
        raise DataError("the projection values overflow float32", str(path))
    return {
        "path": path,
        "view": view,
        "theta": g["theta"],
        "instance": _instance_number(ds),
        "z": g["z"],
        "key": {
            "detector rows": rows,
            "detector columns": cols,
            "transverse spacing": g["spacing"],
            "detector shape": g["shape"],
            "focal-centre-to-isocentre distance ρ₀": g["rho"],
            "focal-centre-to-detector distance": g["d0"],
            "central element column": g["central"][0],
            "detector_offset": g["offset"],
        },
        "ppr": g["ppr"],
        "noise": g["noise"],
        "manifest": manifest,
        "ds": ds,
    }


def _check_manifest(views: list[dict], on_error: str, where: str) -> None:
    """Check the views written by ctflow against their manifest: one scan, every view present once.

    A folder cut short (a copy or write interrupted after some views) is a DataError in ``"raise"``
    mode; in ``"skip"`` mode the missing views are counted in a warning.
    """
    import warnings

    tagged = [v for v in views if v["manifest"] is not None]
    if not tagged:
        return
    ref = tagged[0]
    m0 = ref["manifest"]
    for v in views:
        m = v["manifest"]
        if m is None or m["scan"] != m0["scan"] or m["n_views"] != m0["n_views"]:
            what = "has no ctflow manifest" if m is None else "belongs to another scan (its manifest differs)"
            raise DataError(f"{what}, unlike {ref['path']}: views of different scans are mixed", str(v["path"]))
    seen: dict[int, dict] = {}
    for v in views:
        i = v["manifest"]["index"]
        if i in seen:
            raise DataError(f"holds view {i + 1} of the scan, as does {seen[i]['path']}", str(v["path"]))
        seen[i] = v
    n = m0["n_views"]
    missing = [i for i in range(n) if i not in seen]
    if not missing:
        digests = "".join(seen[i]["manifest"]["digest"] for i in range(n))
        if hashlib.sha256(digests.encode("ascii")).hexdigest() != m0["scan"]:
            raise DataError("the views' checksums do not add up to the scan checksum of the manifest "
                            f"(e.g. {ref['path']}): files were modified or mixed", where)
        return
    first = ", ".join(str(i + 1) for i in missing[:5]) + (" …" if len(missing) > 5 else "")
    msg = (f"incomplete scan: ctflow's manifest lists {n} views but {len(missing)} are missing (views {first}); "
           "the folder was cut short (interrupted copy or write) or files were removed")
    if on_error == "raise":
        raise DataError(msg + "; pass on_error='skip' to read the views that are there", where)
    warnings.warn(f"{where}: {msg}", UserWarning, stacklevel=3)


def _geometry_difference(a: dict, b: dict) -> str | None:
    for name, va in a.items():
        vb = b[name]
        if isinstance(va, str) or isinstance(vb, str):
            same = va == vb
        else:
            same = math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12)
        if not same:
            return f"{name} {vb!r} vs {va!r}"
    return None


def read_dicom_ctpd(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    on_error: str = "raise",
    *,
    image_shape: int | tuple[int, int] = 512,
    pixel_size: float | None = None,
    n_views: int | None = None,
) -> ProjectionData:
    r"""Read DICOM-CT-PD-style projection files into ``(sinogram, FanBeamGeometry)``.

    Views are sorted by InstanceNumber, then by angle. The geometry is built from the private
    tags (see :func:`write_dicom_ctpd`): θ = φ₀ + π/2, ``source_to_isocenter = ρ₀``,
    ``source_to_detector`` = focal-centre-to-detector distance, ``detector_offset =
    ((n+1)/2 − c)·spacing`` for DetectorCentralElement column ``c`` (1-based, the DICOM-CT-PD convention:
    :mod:`.dicom_ctpd_tags` says where that comes from), ``CYLINDRICAL``/``SPHERICAL`` →
    ``"curved"``, ``FLAT`` → ``"flat"``. For files written by ctflow the exact θ and offset stored
    in the ``CTFLOW`` block are used, so the geometry compares equal (``==``) to the one written.
    For a multi-row detector the central row is returned (interpolated linearly between the two rows
    around it for an even row count; ctflow is 2D). Helical and flying-focal-spot scans are refused
    with :class:`~ctflow.io.dicom_ctpd_tags.UnsupportedScanError` (a DataError), whatever ``on_error`` says.

    Projection data do not define an image grid: ``image_shape`` is taken as given and
    ``pixel_size`` defaults to :math:`2 r_\text{FOV} / \sqrt{H^2 + W^2}`, the largest pixel for
    which the whole image lies inside the field of view every view sees
    (:attr:`FanBeamGeometry.fov_radius`), so reconstructions are never truncated.

    Parameters
    ----------
    source : path or sequence of paths
        A folder of view files (hidden files ignored) or the files.
    on_error : {"raise", "skip"}
        ``"skip"`` leaves out bad files and files whose geometry differs from the majority,
        lists them in ``.skipped`` and warns.
    image_shape : int or (H, W)
        Image grid of the returned geometry.
    pixel_size : float, optional
        Pixel side in mm (default: fit the field of view, see above).
    n_views : int, optional
        Expected number of views; a different count raises DataError.

    Returns
    -------
    ProjectionData
        Unpacks as ``(sinogram, geometry)``: float32 ``(n_views, n_detectors)`` line integrals and
        a :class:`~ctflow.FanBeamGeometry`; also ``.paths``, ``.skipped``, ``.z_positions``,
        ``.metadata``.

    Raises
    ------
    DataError
        A missing, non-DICOM or non-projection file; a missing geometry tag (named); geometry that
        differs between files (both named); a view count different from ``n_views``.
    """
    _check_on_error(on_error)
    files, where = _list_inputs(source, "projection")
    with _guard(where):
        return _read_ctpd(files, where, on_error, image_shape, pixel_size, n_views)


def _read_ctpd(files: list[Path], where: str, on_error: str, image_shape, pixel_size, n_views) -> ProjectionData:
    views: list[dict] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            views.append(_read_ctpd_view(f))
        except DataError as e:
            if on_error == "raise" or isinstance(e, UnsupportedScanError):  # helical/FFS: never skip silently
                raise
            skipped.append((str(f), _reason(e, f)))
    if views:
        if on_error == "raise":
            ref = views[0]
            for v in views[1:]:
                diff = _geometry_difference(ref["key"], v["key"])
                if diff:
                    raise DataError(f"inconsistent geometry: {diff} in {ref['path']}", str(v["path"]))
        else:
            groups: list[list[dict]] = []
            for v in views:
                for g in groups:
                    if _geometry_difference(g[0]["key"], v["key"]) is None:
                        g.append(v)
                        break
                else:
                    groups.append([v])
            groups.sort(key=len, reverse=True)
            ref = groups[0][0]
            for g in groups[1:]:
                for v in g:
                    skipped.append((str(v["path"]),
                                    (f"inconsistent geometry: {_geometry_difference(ref['key'], v['key'])} "
                                     f"in {ref['path']}")))
            views = groups[0]
    if not views:
        detail = f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"no readable projection file among {len(files)} file(s){detail}", where)
    _warn_skipped(skipped, len(files), "projection")
    _check_manifest(views, on_error, where)
    from ..limits import check_bytes

    check_bytes(len(views) * int(views[0]["view"].nbytes) * 2, f"the sinogram of {len(views)} views", where)
    if n_views is not None and len(views) != int(n_views):
        raise DataError(f"expected {int(n_views)} views but found {len(views)} readable projection file(s)", where)
    big = float("inf")
    views.sort(key=lambda v: (v["instance"] if v["instance"] is not None else big, v["theta"]))
    zs = [v["z"] for v in views if v["z"] is not None]
    if zs and max(zs) - min(zs) > 1e-6 * max(1.0, max(abs(z) for z in zs)):
        raise UnsupportedScanError(
            f"helical projection data: the focal-centre z (7031,1002) moves from {min(zs):g} to {max(zs):g} mm "
            "across the views; ctflow reconstructs 2D fan-beam slices and does not model helical trajectories yet "
            "(rebin the scan to axial fan-beam slices first)", where)
    k = views[0]["key"]
    first = views[0]["path"]
    try:
        probe = FanBeamGeometry(
            image_shape=1,
            angles=[v["theta"] for v in views],
            source_to_isocenter=k["focal-centre-to-isocentre distance ρ₀"],
            source_to_detector=k["focal-centre-to-detector distance"],
            n_detectors=k["detector columns"],
            pixel_size=1e-6,
            detector_spacing=k["transverse spacing"],
            detector_shape=k["detector shape"],
            detector_offset=k["detector_offset"],
        )
        if pixel_size is None:
            probe_shape = probe.replace(image_shape=image_shape).image_shape
            fov = probe.fov_radius
            if not fov > 0:
                raise GeometryError("the detector sees no field of view around the isocentre")
            pixel_size = 2.0 * fov / math.hypot(*probe_shape) * (1.0 - 1e-12)
        geometry = probe.replace(image_shape=image_shape, pixel_size=pixel_size)
    except GeometryError as e:
        raise DataError(f"the projection geometry is invalid: {e}", str(first)) from None
    except (TypeError, ValueError, ArithmeticError) as e:
        raise DataError(f"the projection geometry is invalid: {type(e).__name__}: {e}", str(first)) from None
    ds = views[0]["ds"]
    metadata: dict[str, Any] = {
        key: str(ds.get(key)) for key in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesDescription")
        if key in ds
    }
    metadata["detector_rows"] = k["detector rows"]
    if views[0]["ppr"] is not None:
        metadata["projections_per_rotation"] = views[0]["ppr"]
    if views[0]["noise"] is not None:
        metadata["noise"] = views[0]["noise"]
    zs = [v["z"] for v in views]
    return ProjectionData(
        np.stack([v["view"] for v in views]),
        geometry,
        paths=[v["path"] for v in views],
        skipped=skipped,
        z_positions=None if any(z is None for z in zs) else np.asarray(zs, dtype=np.float64),
        metadata=metadata,
    )
