r"""CT images in Hounsfield units: read one file or a series into a :class:`CTImage`.

:func:`read_dicom_image` / :func:`read_dicom_series` read CT Image Storage files (any transfer
syntax pydicom can decode) into a :class:`CTImage` in HU; series are sorted along the slice normal.
The writers (:func:`write_dicom_image` / :func:`write_dicom_series`, int16 CT files) are in
:mod:`.dicom_image_writer`.

Every reader raises :class:`~ctflow.errors.DataError` naming the offending file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..units import hu_to_mu
from .dicom_common import (
    _check_on_error,
    _dcmread,
    _decode_pixels,
    _floats_or_empty,
    _guard,
    _has_pixels,
    _instance_number,
    _list_inputs,
    _no_pixels_message,
    _reason,
    _rescaled,
    _sop_name,
    _warn_skipped,
)
from .dicom_ctpd_tags import _is_ctpd_dataset

__all__ = ["CTImage", "read_dicom_image", "read_dicom_series"]

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
    orientation : numpy.ndarray or None
        ImageOrientationPatient of the first slice, ``(r_x, r_y, r_z, c_x, c_y, c_z)``: the patient-frame
        (LPS) directions of a row and of a column, or None if missing.
    """

    hu: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    positions: np.ndarray | None
    metadata: dict
    paths: list
    skipped: list = dataclasses.field(default_factory=list)
    orientation: np.ndarray | None = None

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
            orientation=s["orientation"],
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
        orientation=slices[0]["orientation"],
    )
