r"""DICOM input/output: CT images in Hounsfield units and fan-beam projections (DICOM-CT-PD style).

Three things live here:

* **HU ↔ attenuation.** :func:`hu_to_mu` and :func:`mu_to_hu` implement

  .. math:: μ = μ_\text{water}\,(1 + \text{HU}/1000), \qquad
            \text{HU} = 1000\,(μ/μ_\text{water} - 1),

  with :data:`MU_WATER` = 0.0192 mm⁻¹ by default.
* **CT images.** :func:`read_dicom_image` / :func:`read_dicom_series` read CT Image Storage files
  (any transfer syntax pydicom can decode) into a :class:`CTImage` in HU;
  :func:`write_dicom_image` / :func:`write_dicom_series` write reconstructions as int16 CT images.
* **Projection data.** :func:`write_dicom_ctpd` / :func:`read_dicom_ctpd` store a fan-beam
  sinogram as one DICOM file per view with the geometry in the private tags of the DICOM-CT-PD
  format (Chen et al., Med. Phys. 42(12), 2015), so that a ctflow scan round-trips exactly.

Coordinate conventions
----------------------
Images are written with ``ImageOrientationPatient = [1, 0, 0, 0, 1, 0]``: row 0 at the top, as in
ctflow. DICOM's patient y axis points down the displayed image, so ctflow's image y (up) is DICOM
−y. For projections, the focal-centre angle φ₀ of DICOM-CT-PD is measured in the same x–y plane as
ctflow's image frame (x right, y up); the source ``D·(sin θ, −cos θ)`` of ctflow view θ is
``ρ₀·(cos φ₀, sin φ₀)`` with

.. math:: φ_0 = θ - π/2, \qquad ρ_0 = D.

Real scanner files may use a mirrored frame or rotate the other way; their φ₀ is read as it is
(flip or negate the returned angles if reconstructions come out mirrored).

Every reader raises :class:`~ctflow.errors.DataError` naming the offending file, and every writer
goes through :func:`ctflow.files.atomic_path`, so a failed write never leaves a partial file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path
from ..errors import DataError, GeometryError, NonFiniteError, ShapeError
from ..geometry import FanBeamGeometry

__all__ = [
    "MU_WATER",
    "CTImage",
    "ProjectionData",
    "hu_to_mu",
    "mu_to_hu",
    "read_dicom_ctpd",
    "read_dicom_image",
    "read_dicom_series",
    "write_dicom_ctpd",
    "write_dicom_image",
    "write_dicom_series",
]

#: Linear attenuation coefficient of water in 1/mm (0.192 cm⁻¹) at the ~70 keV effective energy of
#: a 120 kVp CT spectrum: the μ that 0 HU maps to. Air (−1000 HU) maps to 0.
MU_WATER = 0.0192

_INT16_MIN, _INT16_MAX = -32768, 32767
_UINT16_MAX = 65535

# SOP classes accepted as CT images (besides any file whose Modality is "CT").
_CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
}

# DICOM-CT-PD private tags: (group, element offset within the creator's block, VR, name).
CTPD_CREATOR = "DICOM-CT-PD"
_T_ROWS = (0x7029, 0x10, "US", "NumberofDetectorRows")
_T_COLS = (0x7029, 0x11, "US", "NumberofDetectorColumns")
_T_TSPACING = (0x7029, 0x02, "FD", "DetectorElementTransverseSpacing")
_T_ASPACING = (0x7029, 0x06, "FD", "DetectorElementAxialSpacing")
_T_SHAPE = (0x7029, 0x0B, "CS", "DetectorShape")
_T_PHI = (0x7031, 0x01, "FD", "DetectorFocalCenterAngularPosition")
_T_Z = (0x7031, 0x02, "FD", "DetectorFocalCenterAxialPosition")
_T_RHO = (0x7031, 0x03, "FD", "DetectorFocalCenterRadialDistance")
_T_D0 = (0x7031, 0x31, "FD", "ConstantRadialDistance")
_T_CENTRAL = (0x7031, 0x33, "FD", "DetectorCentralElement")
_T_PPR = (0x7033, 0x13, "US", "NumberofSourceAngularSteps")
# ctflow's own block: the exact view angle θ and detector offset (so that == holds after a round
# trip, which φ₀ = θ − π/2 and the central element alone cannot guarantee in floating point) and
# the noise description.
CTFLOW_CREATOR = "CTFLOW"
_C_THETA = (0x7035, 0x01, "FD", "ctflow view angle θ (rad)")
_C_OFFSET = (0x7035, 0x02, "FD", "ctflow detector_offset (mm)")
_C_NOISE = (0x7035, 0x03, "UT", "ctflow noise metadata (JSON)")
_C_VERSION = (0x7035, 0x04, "LO", "ctflow version")


def _tag_label(t: tuple) -> str:
    group, offset, _, name = t
    return f"({group:04X},10{offset:02X}) {name}"


# --------------------------------------------------------------------------------------------
# HU ↔ μ
# --------------------------------------------------------------------------------------------
def _check_mu_water(mu_water: float) -> float:
    v = float(mu_water)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"mu_water must be a positive finite attenuation in 1/mm, got {mu_water!r}")
    return v


def hu_to_mu(hu: Any, mu_water: float = MU_WATER) -> Any:
    r"""Hounsfield units to linear attenuation (1/mm): :math:`μ = μ_w (1 + \text{HU}/1000)`.

    Parameters
    ----------
    hu : float, numpy.ndarray or torch.Tensor
        Values in HU (−1000 is air, 0 is water).
    mu_water : float
        Attenuation of water in 1/mm (default :data:`MU_WATER`).

    Returns
    -------
    Same type as ``hu`` (integer inputs become floating point).
    """
    w = _check_mu_water(mu_water)
    return w * (1.0 + hu / 1000.0)


def mu_to_hu(mu: Any, mu_water: float = MU_WATER) -> Any:
    r"""Linear attenuation (1/mm) to Hounsfield units: :math:`\text{HU} = 1000 (μ/μ_w - 1)`.

    Inverse of :func:`hu_to_mu`; works on floats, numpy arrays and torch tensors.
    """
    w = _check_mu_water(mu_water)
    return 1000.0 * (mu / w - 1.0)


# --------------------------------------------------------------------------------------------
# shared helpers
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


def _ds(value: float) -> float:
    """``value`` as it survives a DS (decimal string, ≤ 16 characters) element."""
    from pydicom.valuerep import format_number_as_ds

    return float(format_number_as_ds(float(value)))


def _ds_str(value: float) -> str:
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def _ctflow_version() -> str:
    from .._version import __version__

    return __version__


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
    msg = str(err)
    prefix = f"{path}: "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _warn_skipped(skipped: list[tuple[str, str]], total: int, what: str) -> None:
    if skipped:
        first_path, first_reason = skipped[0]
        warnings.warn(
            f"skipped {len(skipped)} of {total} {what} file(s); first: {first_path}: {first_reason}",
            UserWarning,
            stacklevel=3,
        )


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
    except Exception as e:  # corrupt header: pydicom raises many types
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
    except Exception as e:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", ts)
        raise DataError(
            f"cannot decode the pixel data (transfer syntax {ts_name}; truncated file or missing "
            f"decoder plugin?): {type(e).__name__}: {e}",
            str(path),
        ) from None


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return "unknown"
    return f"{getattr(uid, 'name', uid)}"


def _floats(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)):
        s = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        return [float(v) for v in s.strip("\x00 ").split("\\") if v.strip()]
    if isinstance(value, Iterable):
        return [float(v) for v in value]
    return [float(value)]


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
    """One CT file → dict(hu, spacing, thickness, position, orientation, instance, ds)."""
    from pydicom.pixels import apply_rescale

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
    if CTPD_CREATOR in ds.private_creators(_T_ROWS[0]):
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
    try:
        hu = np.asarray(apply_rescale(stored, rescale_ds), dtype=np.float32)
    except Exception as e:
        raise DataError(f"cannot apply the rescale (RescaleSlope/RescaleIntercept): {e}", str(path)) from None
    spacing = ds.get("PixelSpacing") or _first_functional(ds, "PixelMeasuresSequence", "PixelSpacing")
    try:
        sp = [float(v) for v in spacing] if spacing is not None else []
    except (TypeError, ValueError):
        sp = []
    if len(sp) != 2 or not all(math.isfinite(v) and v > 0 for v in sp):
        raise DataError(f"has no valid PixelSpacing (got {spacing!r})", str(path))
    thickness = ds.get("SliceThickness")
    try:
        thickness = float(thickness) if thickness not in (None, "") else None
    except (TypeError, ValueError):
        thickness = None
    pos = ds.get("ImagePositionPatient")
    ori = ds.get("ImageOrientationPatient")
    try:
        pos = np.array([float(v) for v in pos]) if pos is not None and len(pos) == 3 else None
        ori = np.array([float(v) for v in ori]) if ori is not None and len(ori) == 6 else None
    except (TypeError, ValueError):
        pos, ori = None, None
    inst = ds.get("InstanceNumber")
    try:
        inst = int(inst) if inst not in (None, "") else None
    except (TypeError, ValueError):
        inst = None
    return {"hu": hu, "spacing": (sp[0], sp[1]), "thickness": thickness, "position": pos, "orientation": ori,
            "instance": inst, "ds": ds, "path": path}


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
            vals = _floats(ds.get(key))
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
                        (str(s["path"]), f"shape {s['hu'].shape} / spacing {s['spacing']} differ from the majority "
                         f"{ref['hu'].shape} / {ref['spacing']} (e.g. {ref['path']})")
                    )
            slices = kept
    if not slices:
        detail = f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"no readable CT slice among {len(files)} file(s){detail}", where)
    _warn_skipped(skipped, len(files), "DICOM")
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
    ds.SoftwareVersions = f"ctflow {_ctflow_version()}"
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
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
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


# --------------------------------------------------------------------------------------------
# projection data (DICOM-CT-PD style)
# --------------------------------------------------------------------------------------------
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


def _projections_per_rotation(angles: np.ndarray) -> int:
    if angles.size < 2:
        return 1
    step = float(np.median(np.abs(np.diff(angles))))
    if step <= 0:
        return int(angles.size)
    return max(1, min(_UINT16_MAX, int(round(2 * math.pi / step))))


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
    (7031,1033)        central element (column, row), 0-based:
                       :math:`((n-1)/2 - \text{offset}/\text{spacing},\ (\text{rows}-1)/2)` (FD×2)
    (7033,1013)        projections per rotation, ≈ 2π / median angular step (US)
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
    central_col = (n_det - 1) / 2.0 - geometry.detector_offset / geometry.detector_spacing
    central_row = (rows - 1) / 2.0
    ppr = _projections_per_rotation(angles)
    study_uid, series_uid, for_uid = study_uid or generate_uid(), series_uid or generate_uid(), generate_uid()
    if description is None:
        description = f"ctflow projections {geometry.detector_shape} fan, {n_views} views"
    now = _dt.datetime.now()
    version = _ctflow_version()
    width = max(5, len(str(n_views)))
    folder = Path(folder)
    out = []
    for i in range(n_views):
        view = np.broadcast_to(sino[i][None, :], (rows, n_det))
        q, a, b = _quantize_uint16(view)
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
        theta = float(angles[i])
        values = {
            _T_ROWS: rows,
            _T_COLS: n_det,
            _T_TSPACING: geometry.detector_spacing,
            _T_ASPACING: axial_spacing,
            _T_SHAPE: "CYLINDRICAL" if geometry.detector_shape == "curved" else "FLAT",
            _T_PHI: theta - math.pi / 2.0,
            _T_Z: z_position,
            _T_RHO: geometry.source_to_isocenter,
            _T_D0: geometry.source_to_detector,
            _T_CENTRAL: [float(central_col), float(central_row)],
            _T_PPR: ppr,
        }
        for (group, offset, vr, _), value in values.items():
            ds.private_block(group, CTPD_CREATOR, create=True).add_new(offset, vr, value)
        block = ds.private_block(_C_THETA[0], CTFLOW_CREATOR, create=True)
        block.add_new(_C_THETA[1], _C_THETA[2], theta)
        block.add_new(_C_OFFSET[1], _C_OFFSET[2], float(geometry.detector_offset))
        block.add_new(_C_VERSION[1], _C_VERSION[2], version)
        if noise_json is not None:
            block.add_new(_C_NOISE[1], _C_NOISE[2], noise_json)
        path = folder / f"{prefix}{i + 1:0{width}d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        out.append(path)
    return out


def _private(ds, tag: tuple, path: Path, creator: str = CTPD_CREATOR, required: bool = True):
    """The raw value of a private tag, or DataError naming the tag when it is required."""
    group, offset = tag[0], tag[1]
    try:
        block = ds.private_block(group, creator)
        if offset in block:
            return block[offset]
    except KeyError:
        pass
    if required:
        raise DataError(f"missing geometry tag {_tag_label(tag)} (private creator {creator!r})", str(path))
    return None


def _private_numbers(ds, tag: tuple, path: Path, count: int, integer: bool, required: bool = True,
                     creator: str = CTPD_CREATOR) -> list[float] | None:
    elem = _private(ds, tag, path, creator=creator, required=required)
    if elem is None:
        return None
    value = elem.value
    try:
        if elem.VR in ("UN", "OB") or isinstance(value, bytes):
            raw = bytes(value)
            if integer and len(raw) == 2 * count:
                vals = np.frombuffer(raw, "<u2").tolist()
            elif integer and len(raw) == 4 * count:
                vals = np.frombuffer(raw, "<u4").tolist()
            elif not integer and len(raw) == 8 * count:
                vals = np.frombuffer(raw, "<f8").tolist()
            elif not integer and len(raw) == 4 * count:
                vals = np.frombuffer(raw, "<f4").tolist()
            else:
                vals = _floats(raw)
        else:
            vals = _floats(value)
    except (TypeError, ValueError):
        vals = []
    if len(vals) != count or not all(math.isfinite(v) for v in vals):
        raise DataError(f"geometry tag {_tag_label(tag)} has an unreadable value {value!r}", str(path))
    return vals


def _private_text(ds, tag: tuple, path: Path, creator: str = CTPD_CREATOR, required: bool = True) -> str | None:
    elem = _private(ds, tag, path, creator=creator, required=required)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 ")


def _read_ctpd_view(path: Path) -> dict:
    ds = _dcmread(path)
    if CTPD_CREATOR not in ds.private_creators(_T_ROWS[0]) and CTPD_CREATOR not in ds.private_creators(_T_PHI[0]):
        raise DataError(
            f"is not CT projection data: no {CTPD_CREATOR!r} private block in groups 7029/7031 "
            f"(SOP class {_sop_name(ds)}, Modality {ds.get('Modality', 'missing')})",
            str(path),
        )
    rows = int(_private_numbers(ds, _T_ROWS, path, 1, True)[0])
    cols = int(_private_numbers(ds, _T_COLS, path, 1, True)[0])
    spacing = _private_numbers(ds, _T_TSPACING, path, 1, False)[0]
    shape_txt = (_private_text(ds, _T_SHAPE, path) or "").upper()
    if shape_txt in ("CYLINDRICAL", "SPHERICAL"):
        shape = "curved"
    elif shape_txt == "FLAT":
        shape = "flat"
    else:
        raise DataError(f"geometry tag {_tag_label(_T_SHAPE)} is {shape_txt!r}, expected CYLINDRICAL or FLAT",
                        str(path))
    phi = _private_numbers(ds, _T_PHI, path, 1, False)[0]
    rho = _private_numbers(ds, _T_RHO, path, 1, False)[0]
    d0 = _private_numbers(ds, _T_D0, path, 1, False)[0]
    central = _private_numbers(ds, _T_CENTRAL, path, 2, False)
    z = _private_numbers(ds, _T_Z, path, 1, False, required=False)
    ppr = _private_numbers(ds, _T_PPR, path, 1, True, required=False)
    theta = phi + math.pi / 2.0
    offset = ((cols - 1) / 2.0 - central[0]) * spacing
    # ctflow's exact values win when they agree with the standard tags (they are the unrounded form)
    exact_theta = _private_numbers(ds, _C_THETA, path, 1, False, required=False, creator=CTFLOW_CREATOR)
    if exact_theta is not None and abs(exact_theta[0] - theta) <= 1e-9 * max(1.0, abs(theta)):
        theta = exact_theta[0]
    exact_offset = _private_numbers(ds, _C_OFFSET, path, 1, False, required=False, creator=CTFLOW_CREATOR)
    if exact_offset is not None and abs(exact_offset[0] - offset) <= 1e-9 * max(1.0, spacing, abs(offset)):
        offset = exact_offset[0]
    noise_txt = _private_text(ds, _C_NOISE, path, creator=CTFLOW_CREATOR, required=False)
    noise = None
    if noise_txt:
        try:
            noise = json.loads(noise_txt)
        except json.JSONDecodeError as e:
            raise DataError(f"the ctflow noise metadata {_tag_label(_C_NOISE)} is not valid JSON: {e}",
                            str(path)) from None
    if rows < 1 or cols < 1:
        raise DataError(f"detector rows/columns must be positive, got {rows} × {cols}", str(path))
    if not _has_pixels(ds):
        raise DataError("has the DICOM-CT-PD geometry but no pixel data", str(path))
    from pydicom.pixels import apply_rescale

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
    values = np.asarray(apply_rescale(stored, ds), dtype=np.float64)
    row = int(np.clip(math.floor(central[1] + 0.5), 0, rows - 1))
    inst = ds.get("InstanceNumber")
    try:
        inst = int(inst) if inst not in (None, "") else None
    except (TypeError, ValueError):
        inst = None
    return {
        "path": path,
        "view": values[row].astype(np.float32),
        "theta": theta,
        "instance": inst,
        "z": None if z is None else z[0],
        "key": {
            "detector rows": rows,
            "detector columns": cols,
            "transverse spacing": spacing,
            "detector shape": shape,
            "focal-centre-to-isocentre distance ρ₀": rho,
            "focal-centre-to-detector distance": d0,
            "central element column": central[0],
            "detector_offset": offset,
        },
        "ppr": None if ppr is None else int(ppr[0]),
        "noise": noise,
        "ds": ds,
    }


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
    ((n−1)/2 − c)·spacing`` for central column ``c`` (0-based), ``CYLINDRICAL``/``SPHERICAL`` →
    ``"curved"``, ``FLAT`` → ``"flat"``. For files written by ctflow the exact θ and offset stored
    in the ``CTFLOW`` block are used, so the geometry compares equal (``==``) to the one written.
    For a multi-row detector the row nearest the central row is returned (ctflow is 2D).

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
    views: list[dict] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            views.append(_read_ctpd_view(f))
        except DataError as e:
            if on_error == "raise":
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
                                    f"inconsistent geometry: {_geometry_difference(ref['key'], v['key'])} "
                                    f"in {ref['path']}"))
            views = groups[0]
    if not views:
        detail = f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"no readable projection file among {len(files)} file(s){detail}", where)
    _warn_skipped(skipped, len(files), "projection")
    if n_views is not None and len(views) != int(n_views):
        raise DataError(f"expected {int(n_views)} views but found {len(views)} readable projection file(s)", where)
    big = float("inf")
    views.sort(key=lambda v: (v["instance"] if v["instance"] is not None else big, v["theta"]))
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
