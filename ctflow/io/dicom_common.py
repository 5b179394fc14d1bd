"""Pieces shared by the DICOM readers and writers (:mod:`.dicom_image`, :mod:`.dicom_image_writer`,
:mod:`.dicom_ctpd`).

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

import contextlib
import datetime as _dt
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import DataError, NonFiniteDataError, NonFiniteError, ShapeError
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


def _floats_or_empty(value: Any) -> list[float]:
    """:func:`_floats`, or ``[]`` when the value is not numbers (optional display metadata)."""
    try:
        vals = _floats(value)
    except (TypeError, ValueError, OverflowError):
        return []
    return vals if all(math.isfinite(v) for v in vals) else []


@contextlib.contextmanager
def _guard(where: str | os.PathLike):
    """The last line of defence of a public reader: any non-ctflow exception becomes a DataError naming
    ``where`` (the per-file guards name the file itself first)."""
    from ..errors import CTFlowError

    try:
        yield
    except CTFlowError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read it ({type(e).__name__}: {e})", str(where)) from None


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
    try:
        return _list_inputs_unguarded(source, what)
    except OSError as e:
        raise DataError(f"cannot list the input: {e.strerror or e}", str(source) if isinstance(source, (str, os.PathLike)) else None) from None


def _list_inputs_unguarded(source, what: str) -> tuple[list[Path], str]:
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
# Elements whose failure to decode makes the file unusable (image pixel module, rescale, spacing, SOP/modality,
# transfer syntax); an undecodable element elsewhere is dropped with a warning instead.
_CRITICAL_GROUPS = (0x0002, 0x0028, 0x7FE0)
_CRITICAL_TAGS = (0x00080016, 0x00080060)
_MAX_SEQUENCE_DEPTH = 16


def _decode_eagerly(ds, path: Path, dropped: list, depth: int = 0) -> None:
    """Convert every raw element of ``ds`` (and of nested sequences) now, inside the reading guard.

    pydicom decodes values lazily, on first access, so a damaged value would otherwise raise later,
    anywhere (``ValueError``, ``BytesLengthException``, ``NotImplementedError``, ...), outside any
    guard. Critical elements that fail raise DataError naming the element; others are deleted and
    listed in ``dropped``.
    """
    if depth > _MAX_SEQUENCE_DEPTH:
        raise DataError(f"sequences are nested more than {_MAX_SEQUENCE_DEPTH} levels deep", str(path))
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
            value = elem.value
            if elem.VR == "SQ":
                for item in value:
                    _decode_eagerly(item, path, dropped, depth + 1)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 (each VR converter raises its own types)
            if depth == 0 and (tag.group in _CRITICAL_GROUPS or int(tag) in _CRITICAL_TAGS):
                raise DataError(f"element {tag} cannot be decoded ({type(e).__name__}: {e})", str(path)) from None
            dropped.append(f"{tag} ({type(e).__name__})")
            try:
                del ds[tag]
            except Exception:  # noqa: BLE001, S110
                pass


def _dcmread(path: Path):
    """Read a DICOM file and decode every element eagerly, or raise DataError naming it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        if not path.exists():
            raise DataError("file does not exist", str(path))
        if not path.is_file():
            raise DataError("is not a regular file", str(path))
    except OSError as e:  # a name too long, permissions
        raise DataError(f"cannot access the file: {e.strerror or e}", str(path)) from None
    from ..files import CappedReader
    from ..limits import check_bytes

    check_bytes(path.stat().st_size, "the file", path)
    dropped: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught, CappedReader(path) as fh:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(fh, force=False)
            if getattr(ds, "file_meta", None) is not None:
                _decode_eagerly(ds.file_meta, path, dropped)
            _decode_eagerly(ds, path, dropped)
    except DataError:
        raise
    except InvalidDicomError as e:
        raise DataError(f"not a DICOM file ({e})", str(path)) from None
    except Exception as e:  # noqa: BLE001 (a corrupt header makes pydicom raise many types)
        raise DataError(f"corrupt or truncated DICOM file ({type(e).__name__}: {e})", str(path)) from None
    for w in caught:
        text = str(w.message)
        if "EOF" in text or "end of file" in text.lower():
            raise DataError(f"truncated DICOM file ({text})", str(path))
        warnings.warn(w.message, w.category, stacklevel=3)
    if dropped:
        warnings.warn(f"{path}: ignored {len(dropped)} undecodable element(s): {', '.join(dropped[:5])}"
                      f"{' …' if len(dropped) > 5 else ''}", UserWarning, stacklevel=3)
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


def _int_element(ds, keyword: str, default: int, path: Path) -> int:
    value = ds.get(keyword, default)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{keyword} is not an integer ({str(value)[:40]!r})", str(path)) from None


def _check_pixel_size(ds, path: Path) -> None:
    """Refuse declared image sizes beyond :mod:`ctflow.limits` before the decoder allocates them."""
    from ..limits import check_array

    rows = _int_element(ds, "Rows", 0, path)
    cols = _int_element(ds, "Columns", 0, path)
    frames = _int_element(ds, "NumberOfFrames", 1, path)
    samples = _int_element(ds, "SamplesPerPixel", 1, path)
    bits = _int_element(ds, "BitsAllocated", 16, path)
    if rows < 1 or cols < 1 or frames < 1 or samples < 1 or bits < 1:
        raise DataError(f"invalid image size: Rows {rows}, Columns {cols}, NumberOfFrames {frames}, "
                        f"SamplesPerPixel {samples}, BitsAllocated {bits}", str(path))
    # stored values, the float64 rescale and the float32 result
    check_array((frames, rows, cols, samples), max(bits // 8, 1), "the pixel data", path, 12)


def _decode_pixels(ds, path: Path) -> np.ndarray:
    """Stored pixel values (before rescale) or DataError naming the file; sizes checked first."""
    if not _has_pixels(ds):
        raise DataError(_no_pixels_message(ds), str(path))
    _check_pixel_size(ds, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns before raising on short pixel data
            arr = np.asarray(ds.pixel_array)
    except Exception as e:  # noqa: BLE001 (each decoder plugin raises its own types)
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", ts)
        raise DataError(
            f"cannot decode the pixel data (transfer syntax {ts_name}; truncated file or missing "
            f"decoder plugin?): {type(e).__name__}: {e}",
            str(path),
        ) from None
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        raise DataError(f"the pixel data decode to an unusable array ({arr.dtype}, shape {arr.shape})", str(path))
    if arr.dtype.kind == "f":
        from .arrays import count_nonfinite

        bad = count_nonfinite(arr)
        if bad:
            raise NonFiniteDataError(f"the float pixel data contain {bad} NaN/Inf value(s) out of {arr.size}", str(path))
    return arr


def _rescaled(stored: np.ndarray, ds, path: Path, dtype=np.float32) -> np.ndarray:
    """``stored·RescaleSlope + RescaleIntercept`` (as pydicom's ``apply_rescale``), finite or DataError."""
    from pydicom.pixels import apply_rescale

    for key in ("RescaleSlope", "RescaleIntercept"):
        if key in ds and ds.get(key) not in (None, ""):
            try:
                v = float(ds.get(key))
            except (TypeError, ValueError, OverflowError):
                raise DataError(f"{key} {str(ds.get(key))[:40]!r} is not a number", str(path)) from None
            if not math.isfinite(v):
                raise NonFiniteDataError(f"{key} is {v!r}; the pixel values would not be finite", str(path))
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(apply_rescale(stored, ds), dtype=dtype)
    except Exception as e:  # noqa: BLE001 (bad slope/intercept values raise many types)
        raise DataError(f"cannot apply the rescale (RescaleSlope/RescaleIntercept): {type(e).__name__}: {e}",
                        str(path)) from None
    from .arrays import count_nonfinite

    bad = count_nonfinite(out)
    if bad:
        raise NonFiniteDataError(f"{bad} pixel value(s) are not finite after the rescale (RescaleSlope "
                                 f"{ds.get('RescaleSlope')!s:.20}, RescaleIntercept {ds.get('RescaleIntercept')!s:.20})",
                                 str(path))
    return out


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
