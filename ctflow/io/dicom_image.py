r"""CT images in Hounsfield units: read one file or a series into a :class:`CTImage`, write int16 CT files.

:func:`read_dicom_image` / :func:`read_dicom_series` read CT Image Storage files (any transfer
syntax pydicom can decode) into a :class:`CTImage` in HU; :func:`write_dicom_image` /
:func:`write_dicom_series` write reconstructions as int16 CT images (exact for integer HU in
range). Attenuation images are converted with :func:`ctflow.units.mu_to_hu` first.

Coordinate conventions
----------------------
Images are written with ``ImageOrientationPatient = [1, 0, 0, 0, 1, 0]``: row 0 at the top, as in
ctflow. DICOM's patient y axis points down the displayed image, so ctflow's image y (up) is DICOM
−y.

Every reader raises :class:`~ctflow.errors.DataError` naming the offending file, and every writer
goes through :func:`ctflow.files.atomic_path`, so a failed write never leaves a partial file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ShapeError
from ..units import hu_to_mu
from .dicom_common import (
    _base_dataset,
    _check_finite,
    _check_on_error,
    _dcmread,
    _decode_pixels,
    _ds_str,
    _floats_or_empty,
    _guard,
    _has_pixels,
    _instance_number,
    _list_inputs,
    _no_pixels_message,
    _reason,
    _rescaled,
    _save_atomic,
    _sop_name,
    _to_numpy,
    _warn_skipped,
)
from .dicom_ctpd_tags import _is_ctpd_dataset

__all__ = ["CTImage", "read_dicom_image", "read_dicom_series", "write_dicom_image", "write_dicom_series"]

_INT16_MIN, _INT16_MAX = -32768, 32767

# SOP classes accepted as CT images (besides any file whose Modality is "CT").
_CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
}


# --------------------------------------------------------------------------------------------
# reading CT images
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class CTImage:
    """A CT image or volume read from DICOM.

    Attributes
    ----------
    hu : numpy.ndarray
        float32 values in HU, ``(H, W)`` for one slice, ``(n_slices, H, W)`` for a series or a
        multi-frame file (stored values mapped with RescaleSlope/RescaleIntercept).
    pixel_spacing : tuple of float
        ``(row, col)`` spacing in mm (DICOM PixelSpacing: distance between rows, then columns).
    slice_thickness : float or None
        SliceThickness in mm of the first slice, if present.
    positions : numpy.ndarray or None
        ``(n, 3)`` ImagePositionPatient of each slice in mm (in ``hu`` order), or None if missing.
    metadata : dict
        PatientID, StudyInstanceUID, SeriesInstanceUID, SeriesDescription, Modality,
        SOPClassUID, TransferSyntaxUID and WindowCenter/WindowWidth when present.
    paths : list of pathlib.Path
        The files read, in slice order.
    skipped : list of (str, str)
        ``(path, reason)`` of the files left out by ``on_error="skip"``.
    """

    hu: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    positions: np.ndarray | None
    metadata: dict
    paths: list
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def mu(self) -> np.ndarray:
        """Linear attenuation in 1/mm, :func:`hu_to_mu` of :attr:`hu` (float32)."""
        return hu_to_mu(self.hu).astype(np.float32)

    @property
    def slice_spacing(self) -> float | None:
        """Median distance (mm) between consecutive slice positions along the slice normal."""
        if self.positions is None or len(self.positions) < 2:
            return None
        d = np.linalg.norm(np.diff(self.positions, axis=0), axis=1)
        return float(np.median(d))

    def __repr__(self) -> str:
        lo, hi = (float(self.hu.min()), float(self.hu.max())) if self.hu.size else (0.0, 0.0)
        s = (
            f"CTImage(shape={tuple(self.hu.shape)}, HU in [{lo:g}, {hi:g}], pixel_spacing={self.pixel_spacing}, "
            f"slice_thickness={self.slice_thickness}, files={len(self.paths)}"
        )
        return s + (f", skipped={len(self.skipped)})" if self.skipped else ")")


def _first_functional(ds, seq: str, keyword: str):
    try:
        return getattr(getattr(ds.SharedFunctionalGroupsSequence[0], seq)[0], keyword)
    except (AttributeError, IndexError, KeyError):
        return None


def _read_ct_slice(path: Path) -> dict:
    """One CT file → dict(hu, spacing, thickness, position, orientation, instance, ds); every failure,
    whatever its origin, is a DataError naming the file."""
    try:
        return _read_ct_slice_unguarded(path)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (the last line of defence: pydicom, numpy, plugins)
        raise DataError(f"cannot read the CT image ({type(e).__name__}: {e})", str(path)) from None


def _read_ct_slice_unguarded(path: Path) -> dict:
    ds = _dcmread(path)
    if not _has_pixels(ds):
        raise DataError(_no_pixels_message(ds), str(path))
    modality = str(ds.get("Modality", ""))
    if str(ds.get("SOPClassUID", "")) not in _CT_SOP_CLASSES and modality != "CT":
        raise DataError(
            f"is not a CT image (Modality {modality or 'missing'}, SOP class {_sop_name(ds)}); "
            "HU values are only defined for CT",
            str(path),
        )
    if _is_ctpd_dataset(ds):
        raise DataError("holds CT projection data (DICOM-CT-PD), not an image; read it with read_dicom_ctpd", str(path))
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DataError(f"is a colour image (SamplesPerPixel={ds.SamplesPerPixel}), not a CT image", str(path))
    stored = _decode_pixels(ds, path)
    rescale_ds = ds
    if "RescaleSlope" not in ds and "SharedFunctionalGroupsSequence" in ds:
        slope = _first_functional(ds, "PixelValueTransformationSequence", "RescaleSlope")
        icpt = _first_functional(ds, "PixelValueTransformationSequence", "RescaleIntercept")
        if slope is not None and icpt is not None:
            from pydicom import Dataset

            rescale_ds = Dataset()
            rescale_ds.RescaleSlope, rescale_ds.RescaleIntercept = slope, icpt
    hu = _rescaled(stored, rescale_ds, path)
    spacing = ds.get("PixelSpacing") or _first_functional(ds, "PixelMeasuresSequence", "PixelSpacing")
    try:
        sp = [float(v) for v in spacing] if spacing is not None else []
    except (TypeError, ValueError, OverflowError):
        sp = []
    if len(sp) != 2 or not all(math.isfinite(v) and v > 0 for v in sp):
        raise DataError(f"has no valid PixelSpacing (got {str(spacing)[:60]!r})", str(path))
    thickness = _optional_positive(ds.get("SliceThickness"), "SliceThickness", path)
    pos = _optional_vector(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", path)
    ori = _optional_vector(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", path)
    return {"hu": hu, "spacing": (sp[0], sp[1]), "thickness": thickness, "position": pos, "orientation": ori,
            "instance": _instance_number(ds), "ds": ds, "path": path}


def _optional_positive(value, name: str, path: Path) -> float | None:
    """An optional positive length (mm); a missing, unreadable, non-finite or non-positive value is None
    (with a warning when a value was there)."""
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        v = float("nan")
    if math.isfinite(v) and v > 0:
        return v
    warnings.warn(f"{path}: ignoring {name} {str(value)[:30]!r} (not a positive finite number of mm)", UserWarning,
                  stacklevel=4)
    return None


def _optional_vector(value, n: int, name: str, path: Path) -> np.ndarray | None:
    """``n`` finite numbers or None (a warning when a value was there but unusable)."""
    if value is None or value == "":
        return None
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        vals = []
    if len(vals) == n and all(math.isfinite(v) for v in vals):
        return np.array(vals)
    warnings.warn(f"{path}: ignoring {name} {str(value)[:60]!r} (not {n} finite numbers)", UserWarning, stacklevel=4)
    return None


def _image_metadata(ds) -> dict:
    meta: dict[str, Any] = {}
    for key in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesDescription", "Modality", "SOPClassUID"):
        if key in ds:
            meta[key] = str(ds.get(key))
    fm = getattr(ds, "file_meta", None)
    if fm is not None and "TransferSyntaxUID" in fm:
        meta["TransferSyntaxUID"] = str(fm.TransferSyntaxUID)
    for key in ("WindowCenter", "WindowWidth"):
        if key in ds and ds.get(key) not in (None, ""):
            vals = _floats_or_empty(ds.get(key))
            if vals:
                meta[key] = vals[0] if len(vals) == 1 else vals
    return meta


def read_dicom_image(path: str | os.PathLike) -> CTImage:
    """Read one CT image file (any transfer syntax pydicom can decode) in HU.

    ``hu`` is ``(H, W)``, or ``(n_frames, H, W)`` for a multi-frame file (whose rescale and
    spacing may come from the shared functional groups).

    Raises
    ------
    DataError
        Missing, non-DICOM, truncated or undecodable file; no pixel data; not a CT image.
    """
    with _guard(path):
        s = _read_ct_slice(Path(path))
        return CTImage(
            hu=s["hu"],
            pixel_spacing=s["spacing"],
            slice_thickness=s["thickness"],
            positions=None if s["position"] is None else s["position"][None, :],
            metadata=_image_metadata(s["ds"]),
            paths=[s["path"]],
        )


def _slice_order(slices: list[dict]) -> list[int]:
    """Indices sorting slices along the normal of ImageOrientationPatient (fallback: InstanceNumber)."""
    n = len(slices)
    if all(s["position"] is not None and s["orientation"] is not None for s in slices):
        ori = slices[0]["orientation"]
        normal = np.cross(ori[:3], ori[3:])
        if np.linalg.norm(normal) > 0:
            keys = [float(np.dot(s["position"], normal)) for s in slices]
            return sorted(range(n), key=lambda i: (keys[i], slices[i]["instance"] or 0))
    if all(s["instance"] is not None for s in slices):
        return sorted(range(n), key=lambda i: slices[i]["instance"])
    return list(range(n))


def read_dicom_series(
    source: str | os.PathLike | Sequence[str | os.PathLike], on_error: str = "raise"
) -> CTImage:
    """Read a CT series (a folder or a list of files) into a ``(n_slices, H, W)`` volume in HU.

    Slices are sorted by their ImagePositionPatient projected on the slice normal
    ``n = r × c`` (``r``, ``c`` the row and column directions of ImageOrientationPatient); if a
    slice has no position or orientation, by InstanceNumber; else the given (file name) order.
    Hidden files and ``DICOMDIR`` in a folder are ignored.

    Parameters
    ----------
    source : path or sequence of paths
        A folder holding the series, or the files.
    on_error : {"raise", "skip"}
        ``"skip"`` leaves out unreadable files and slices whose shape or pixel spacing differs
        from the majority, lists them in ``CTImage.skipped`` and warns.

    Raises
    ------
    DataError
        A bad file (see :func:`read_dicom_image`), slices with mismatched shape or spacing (both
        files named), or no readable slice at all.
    """
    _check_on_error(on_error)
    files, where = _list_inputs(source, "DICOM")
    with _guard(where):
        return _read_series(files, where, on_error)


def _read_series(files: list[Path], where: str, on_error: str) -> CTImage:
    slices: list[dict] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            s = _read_ct_slice(f)
            if s["hu"].ndim != 2:
                raise DataError(f"is a multi-frame image {s['hu'].shape}; read it with read_dicom_image", str(f))
            slices.append(s)
        except DataError as e:
            if on_error == "raise":
                raise
            skipped.append((str(f), _reason(e, f)))

    def signature(s: dict) -> tuple:
        return (s["hu"].shape, round(s["spacing"][0], 6), round(s["spacing"][1], 6))

    if slices:
        if on_error == "raise":
            ref = slices[0]
            for s in slices[1:]:
                if s["hu"].shape != ref["hu"].shape:
                    raise DataError(
                        f"slice shape {s['hu'].shape} differs from {ref['hu'].shape} in {ref['path']}", str(s["path"])
                    )
                if not np.allclose(s["spacing"], ref["spacing"], rtol=1e-5, atol=1e-6):
                    raise DataError(
                        f"pixel spacing {s['spacing']} mm differs from {ref['spacing']} mm in {ref['path']}",
                        str(s["path"]),
                    )
        else:
            common = Counter(signature(s) for s in slices).most_common(1)[0][0]
            ref = next(s for s in slices if signature(s) == common)
            kept = []
            for s in slices:
                if signature(s) == common:
                    kept.append(s)
                else:
                    skipped.append(
                        (str(s["path"]), (f"shape {s['hu'].shape} / spacing {s['spacing']} differ from the majority "
                                          f"{ref['hu'].shape} / {ref['spacing']} (e.g. {ref['path']})"))
                    )
            slices = kept
    if not slices:
        detail = f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"no readable CT slice among {len(files)} file(s){detail}", where)
    _warn_skipped(skipped, len(files), "DICOM")
    from ..limits import check_bytes

    check_bytes(sum(s["hu"].nbytes for s in slices) * 2, f"the series of {len(slices)} slices", where)
    order = _slice_order(slices)
    slices = [slices[i] for i in order]
    positions = (
        np.stack([s["position"] for s in slices]) if all(s["position"] is not None for s in slices) else None
    )
    return CTImage(
        hu=np.stack([s["hu"] for s in slices]),
        pixel_spacing=slices[0]["spacing"],
        slice_thickness=slices[0]["thickness"],
        positions=positions,
        metadata=_image_metadata(slices[0]["ds"]),
        paths=[s["path"] for s in slices],
        skipped=skipped,
    )



# --------------------------------------------------------------------------------------------
# writing CT images
# --------------------------------------------------------------------------------------------
def _apply_extra(ds, extra: dict | None) -> None:
    from pydicom.datadict import tag_for_keyword

    for key, value in (extra or {}).items():
        if tag_for_keyword(key) is None:
            raise ValueError(f"extra: {key!r} is not a DICOM keyword (e.g. 'PatientAge', 'InstitutionName')")
        setattr(ds, key, value)


def _hu_to_int16(img: np.ndarray, what: str) -> np.ndarray:
    if 0 < float(np.max(np.abs(img))) < 1.0:
        warnings.warn(
            f"{what}: every value is within (−1, 1) HU, which looks like attenuation μ (1/mm) rather "
            "than HU; the file would be almost uniform. Convert with ctflow.io.mu_to_hu() first.",
            UserWarning,
            stacklevel=3,
        )
    r = np.rint(img)
    n_clip = int(np.count_nonzero((r < _INT16_MIN) | (r > _INT16_MAX)))
    if n_clip:
        warnings.warn(
            f"{what}: {n_clip} value(s) outside the int16 range [{_INT16_MIN}, {_INT16_MAX}] HU were clipped",
            UserWarning,
            stacklevel=3,
        )
    return np.clip(r, _INT16_MIN, _INT16_MAX).astype(np.int16)


def _prepare_image(image_hu: Any, ndim: int, what: str) -> np.ndarray:
    arr = _to_numpy(image_hu, what)
    if arr.ndim != ndim:
        expected = "(H, W)" if ndim == 2 else "(n_slices, H, W)"
        raise ShapeError(f"{what} must have shape {expected}, got {tuple(arr.shape)}")
    if arr.size == 0:
        raise ShapeError(f"{what} is empty (shape {tuple(arr.shape)})")
    _check_finite(arr, what)
    return arr


def _spacing_pair(pixel_spacing: Any) -> tuple[float, float]:
    if np.ndim(pixel_spacing) == 0:
        pair = (float(pixel_spacing), float(pixel_spacing))
    else:
        vals = [float(v) for v in np.asarray(pixel_spacing, dtype=np.float64).reshape(-1)]
        if len(vals) != 2:
            raise ValueError(f"pixel_spacing must be a number or a (row, col) pair in mm, got {pixel_spacing!r}")
        pair = (vals[0], vals[1])
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"pixel_spacing must be positive finite millimetres, got {pixel_spacing!r}")
    return pair



def _write_image(
    path: Path,
    stored: np.ndarray,
    spacing: tuple[float, float],
    *,
    now: _dt.datetime,
    method: str,
    description: str | None,
    window: tuple[float, float] | None,
    series_uid: str,
    study_uid: str,
    frame_of_reference_uid: str,
    instance_number: int,
    position: Sequence[float] | None,
    slice_thickness: float,
    patient_id: str,
    patient_name: str,
    extra: dict | None,
) -> Path:
    h, w = stored.shape
    dr, dc = spacing
    if position is None:
        position = (-(w - 1) / 2.0 * dc, -(h - 1) / 2.0 * dr, (int(instance_number) - 1) * float(slice_thickness))
    position = [float(v) for v in position]
    if len(position) != 3 or not all(math.isfinite(v) for v in position):
        raise ValueError(f"position must be three finite numbers (x, y, z) in mm, got {position!r}")
    if description is None:
        description = " ".join(p for p in ("ctflow", method.strip()) if p)
    ds = _base_dataset(
        sop_class="1.2.840.10008.5.1.4.1.1.2",
        now=now,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        instance_number=instance_number,
        series_description=description,
        image_type=("DERIVED", "SECONDARY", "AXIAL"),
    )
    if method:
        ds.DerivationDescription = f"ctflow reconstruction: {method}"[:1024]
    ds.SliceThickness = _ds_str(slice_thickness)
    ds.ImagePositionPatient = [_ds_str(v) for v in position]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = _ds_str(position[2])
    ds.PixelSpacing = [_ds_str(dr), _ds_str(dc)]
    ds.set_pixel_data(stored, photometric_interpretation="MONOCHROME2", bits_stored=16, generate_instance_uid=False)
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    if window is not None:
        center, width = (float(v) for v in window)
        ds.WindowCenter = _ds_str(center)
        ds.WindowWidth = _ds_str(width)
    _apply_extra(ds, extra)
    _save_atomic(ds, path)
    return Path(path)


def write_dicom_image(
    path: str | os.PathLike,
    image_hu: Any,
    pixel_spacing: float | Sequence[float],
    *,
    method: str = "",
    description: str | None = None,
    window: tuple[float, float] | None = (40, 400),
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    instance_number: int = 1,
    position: Sequence[float] | None = None,
    slice_thickness: float = 1.0,
    patient_id: str = "CTFLOW",
    patient_name: str = "ctflow^simulation",
    extra: dict | None = None,
) -> Path:
    """Write a 2D image in HU as a CT Image Storage file (Explicit VR Little Endian).

    Values are rounded to the nearest integer and clipped to the int16 range [−32768, 32767]
    (a warning says how many were clipped) and stored directly as signed 16-bit HU
    (PixelRepresentation 1, RescaleSlope 1, RescaleIntercept 0), so integer HU in range
    round-trip exactly. The file is written atomically.

    Parameters
    ----------
    path : path
        Target file (parent folders are created).
    image_hu : numpy.ndarray or torch.Tensor
        ``(H, W)`` image in HU (convert attenuation with :func:`mu_to_hu`); row 0 at the top.
    pixel_spacing : float or (row, col)
        Pixel spacing in mm.
    method : str
        Reconstruction method, e.g. ``"FBP ram-lak"``; the SeriesDescription becomes
        ``"ctflow <method>"`` unless ``description`` is given.
    window : (center, width) or None
        Display window in HU (default soft tissue 40/400).
    series_uid, study_uid, frame_of_reference_uid : str, optional
        UIDs to share with other files; new ones are generated when omitted.
    instance_number : int
        InstanceNumber (1-based slice index).
    position : (x, y, z), optional
        ImagePositionPatient of the top-left pixel centre in mm; default centres the image on the
        isocentre at ``z = (instance_number − 1)·slice_thickness``.
    slice_thickness : float
        SliceThickness in mm.
    patient_id, patient_name : str
        Patient module values (defaults mark the data as simulated).
    extra : dict, optional
        More elements by DICOM keyword, e.g. ``{"InstitutionName": "..."}``, set last.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    NonFiniteError
        The image contains NaN or Inf (nothing is written).
    ShapeError
        The image is not 2D.
    """
    from pydicom.uid import generate_uid

    img = _prepare_image(image_hu, 2, "write_dicom_image: the image")
    spacing = _spacing_pair(pixel_spacing)
    stored = _hu_to_int16(img, "write_dicom_image")
    return _write_image(
        Path(path),
        stored,
        spacing,
        now=_dt.datetime.now(),
        method=method,
        description=description,
        window=window,
        series_uid=series_uid or generate_uid(),
        study_uid=study_uid or generate_uid(),
        frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        instance_number=instance_number,
        position=position,
        slice_thickness=slice_thickness,
        patient_id=patient_id,
        patient_name=patient_name,
        extra=extra,
    )


def write_dicom_series(
    folder: str | os.PathLike,
    volume_hu: Any,
    pixel_spacing: float | Sequence[float],
    slice_thickness: float = 1.0,
    method: str = "",
    *,
    position: Sequence[float] | None = None,
    prefix: str = "slice_",
    **kw: Any,
) -> list[Path]:
    """Write a ``(n_slices, H, W)`` volume in HU as one CT file per slice.

    All slices share one StudyInstanceUID, SeriesInstanceUID and FrameOfReferenceUID (generated
    unless passed), have InstanceNumber 1..n and ImagePositionPatient stepping by
    ``slice_thickness`` along +z from ``position`` (the first slice; default centred at z = 0).
    Files are named ``<prefix>0001.dcm`` …; each is written atomically, and the whole volume is
    checked (finite, 3D) before the first file is written.

    Other keyword arguments are those of :func:`write_dicom_image` (``description``, ``window``,
    ``series_uid``, ``study_uid``, ``frame_of_reference_uid``, ``patient_id``, ``patient_name``,
    ``extra``).
    """
    from pydicom.uid import generate_uid

    if "instance_number" in kw:
        raise TypeError("write_dicom_series numbers the slices itself; do not pass instance_number")
    allowed = {"description", "window", "series_uid", "study_uid", "frame_of_reference_uid", "patient_id",
               "patient_name", "extra"}
    unknown = set(kw) - allowed
    if unknown:
        raise TypeError(f"write_dicom_series got unexpected keyword argument(s) {sorted(unknown)}")
    vol = _prepare_image(volume_hu, 3, "write_dicom_series: the volume")
    spacing = _spacing_pair(pixel_spacing)
    thickness = float(slice_thickness)
    if not (math.isfinite(thickness) and thickness > 0):
        raise ValueError(f"slice_thickness must be positive finite millimetres, got {slice_thickness!r}")
    stored = _hu_to_int16(vol, "write_dicom_series")
    n, h, w = stored.shape
    if position is None:
        position = (-(w - 1) / 2.0 * spacing[1], -(h - 1) / 2.0 * spacing[0], 0.0)
    x0, y0, z0 = (float(v) for v in position)
    opts = {
        "description": kw.get("description"),
        "window": kw.get("window", (40, 400)),
        "series_uid": kw.get("series_uid") or generate_uid(),
        "study_uid": kw.get("study_uid") or generate_uid(),
        "frame_of_reference_uid": kw.get("frame_of_reference_uid") or generate_uid(),
        "patient_id": kw.get("patient_id", "CTFLOW"),
        "patient_name": kw.get("patient_name", "ctflow^simulation"),
        "extra": kw.get("extra"),
    }
    now = _dt.datetime.now()
    width = max(4, len(str(n)))
    folder = Path(folder)
    out = []
    for k in range(n):
        out.append(
            _write_image(
                folder / f"{prefix}{k + 1:0{width}d}.dcm",
                stored[k],
                spacing,
                now=now,
                method=method,
                instance_number=k + 1,
                position=(x0, y0, z0 + k * thickness),
                slice_thickness=thickness,
                **opts,
            )
        )
    return out
