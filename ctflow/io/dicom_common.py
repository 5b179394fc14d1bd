"""Pieces shared by the DICOM readers and writers (:mod:`.dicom_image`, :mod:`.dicom_ctpd`).

* **Reading guard.** :func:`_dcmread` reads a file and turns every pydicom failure (not DICOM,
  corrupt or truncated header, cut-off last element) into a :class:`~ctflow.errors.DataError`
  naming the file; :func:`_decode_pixels` does the same for the pixel data.
* **Inputs and on_error.** :func:`_list_inputs` turns a folder or a list of paths into the files to
  read; :func:`_check_on_error`, :func:`_reason` and :func:`_warn_skipped` implement
  ``on_error="skip"``.
* **Writing.** :func:`_to_numpy` / :func:`_check_finite` check the data before anything is
  written, :func:`_base_dataset` fills the CT Image Storage modules (stamped with the ctflow
  version), :func:`_ds` / :func:`_ds_str` format numbers as DS, and :func:`_save_atomic` writes
  through :func:`ctflow.files.atomic_path`, so a failed write never leaves a partial file.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import DataError, NonFiniteError, ShapeError
from ..files import atomic_path


# --------------------------------------------------------------------------------------------
# checks before writing
# --------------------------------------------------------------------------------------------
def _to_numpy(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeError(f"{what} must be a numpy array or torch tensor of numbers, got {type(x).__name__}") from None
    return arr


def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteError(
            f"{what} contains {int(bad.sum())} NaN/Inf value(s) (first at index {idx}); "
            "nothing was written. Replace them (e.g. np.nan_to_num) before saving."
        )


# --------------------------------------------------------------------------------------------
# number formatting
# --------------------------------------------------------------------------------------------
def _ds(value: float) -> float:
    """``value`` as it survives a DS (decimal string, ≤ 16 characters) element."""
    from pydicom.valuerep import format_number_as_ds

    return float(format_number_as_ds(float(value)))


def _ds_str(value: float) -> str:
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def _floats(value: Any) -> list[float]:
    """Numbers of a DS/FD/multi-valued element (or its raw bytes) as a list of floats."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)):
        s = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        return [float(v) for v in s.strip("\x00 ").split("\\") if v.strip()]
    if isinstance(value, Iterable):
        return [float(v) for v in value]
    return [float(value)]


# --------------------------------------------------------------------------------------------
# inputs and on_error
# --------------------------------------------------------------------------------------------
def _list_inputs(source: str | os.PathLike | Iterable, what: str) -> tuple[list[Path], str]:
    """Files to read: a folder's visible regular files (sorted by name) or the given paths."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = sorted(
                f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and f.name.upper() != "DICOMDIR"
            )
            if not files:
                raise DataError(f"the folder contains no {what} files", str(p))
            return files, str(p)
        if not p.exists():
            raise DataError("file or folder does not exist", str(p))
        return [p], str(p)
    files = [Path(f) for f in source]
    if not files:
        raise DataError(f"no {what} files were given")
    return files, str(files[0].parent)


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _reason(err: DataError, path: Path) -> str:
    """The message of ``err`` without its leading ``"<path>: "``."""
    msg = str(err)
    return msg.removeprefix(f"{path}: ")


def _warn_skipped(skipped: list[tuple[str, str]], total: int, what: str) -> None:
    if skipped:
        first_path, first_reason = skipped[0]
        warnings.warn(
            f"skipped {len(skipped)} of {total} {what} file(s); first: {first_path}: {first_reason}",
            UserWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------------
# the reading guard
# --------------------------------------------------------------------------------------------
def _dcmread(path: Path):
    """Read a DICOM file (header and pixel data) or raise DataError naming it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.exists():
        raise DataError("file does not exist", str(path))
    if not path.is_file():
        raise DataError("is not a regular file", str(path))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, force=False)
    except InvalidDicomError as e:
        raise DataError(f"not a DICOM file ({e})", str(path)) from None
    except Exception as e:  # noqa: BLE001 (a corrupt header makes pydicom raise many types)
        raise DataError(f"corrupt or truncated DICOM file ({type(e).__name__}: {e})", str(path)) from None
    for w in caught:
        text = str(w.message)
        if "EOF" in text or "end of file" in text.lower():
            raise DataError(f"truncated DICOM file ({text})", str(path))
        warnings.warn(w.message, w.category, stacklevel=3)
    # pydicom reads a cut-off file without complaint: the last element is then shorter than declared
    tags = list(ds.keys())
    if not tags:
        raise DataError("contains no data elements (empty or truncated DICOM file)", str(path))
    last = ds.get_item(max(tags))
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    if isinstance(value, bytes) and length is not None and length != 0xFFFFFFFF and len(value) < length:
        raise DataError(
            f"truncated DICOM file: element {last.tag} declares {length} bytes but the file ends after {len(value)}",
            str(path),
        )
    return ds


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return "unknown"
    return f"{getattr(uid, 'name', uid)}"


def _no_pixels_message(ds) -> str:
    return (
        f"has no pixel data (SOP class {_sop_name(ds)}, Modality {ds.get('Modality') or 'missing'}): "
        "it is not an image, or the file was cut short"
    )


def _has_pixels(ds) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def _decode_pixels(ds, path: Path) -> np.ndarray:
    """Stored pixel values (before rescale) or DataError naming the file."""
    if not _has_pixels(ds):
        raise DataError(_no_pixels_message(ds), str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns before raising on short pixel data
            return np.asarray(ds.pixel_array)
    except Exception as e:  # noqa: BLE001 (each decoder plugin raises its own types)
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", ts)
        raise DataError(
            f"cannot decode the pixel data (transfer syntax {ts_name}; truncated file or missing "
            f"decoder plugin?): {type(e).__name__}: {e}",
            str(path),
        ) from None


def _instance_number(ds) -> int | None:
    """InstanceNumber as an int, or None when missing or unreadable."""
    inst = ds.get("InstanceNumber")
    try:
        return int(inst) if inst not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _base_dataset(
    *,
    sop_class: str,
    now: _dt.datetime,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    frame_of_reference_uid: str,
    instance_number: int,
    series_description: str,
    image_type: Sequence[str],
):
    """A CT Image Storage dataset with the patient/study/series/equipment/SOP modules filled."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = list(image_type)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = time
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "ctflow"
    ds.ManufacturerModelName = "ctflow simulation"
    ds.SoftwareVersions = f"ctflow {__version__}"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description[:64]
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.KVP = ""
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = int(instance_number)
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    return ds


def _save_atomic(ds, path: Path) -> None:
    """Save ``ds`` as a DICOM file at ``path`` (temp file + rename: never a partial file)."""
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
