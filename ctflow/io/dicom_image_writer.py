r"""Writing CT images in Hounsfield units: :func:`write_dicom_image` (one file) and
:func:`write_dicom_series` (one file per slice, shared UIDs), int16 CT Image Storage files.

Values are rounded and stored directly as signed 16-bit HU (exact for integer HU in range).
Attenuation images are converted with :func:`ctflow.units.mu_to_hu` first. The readers are in
:mod:`.dicom_image`.

Coordinate conventions
----------------------
Images are written with ``ImageOrientationPatient = [1, 0, 0, 0, 1, 0]``: row 0 at the top, as in
ctflow. DICOM's patient y axis points down the displayed image, so ctflow's image y (up) is DICOM
−y.

Every writer checks the whole image first and goes through :func:`ctflow.files.atomic_path`, so a
failed write never leaves a partial file.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .dicom_common import _base_dataset, _check_finite, _ds_str, _save_atomic, _to_numpy

__all__ = ["write_dicom_image", "write_dicom_series"]

_INT16_MIN, _INT16_MAX = -32768, 32767


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
