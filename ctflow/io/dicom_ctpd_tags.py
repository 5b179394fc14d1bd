r"""The private tags of DICOM-CT-PD projection files and their codec (ctflow geometry ↔ tags).

DICOM-CT-PD (Chen et al., Med. Phys. 42(12), 2015) keeps the scan geometry of each view in
private blocks of groups 7029/7031/7033 (creator ``"DICOM-CT-PD"``); ctflow adds a block in group
7035 (creator ``"CTFLOW"``) with the exact view angle θ and detector offset, so that ``==`` holds
after a round trip (φ₀ = θ − π/2 and the central element alone cannot guarantee it in floating
point), the noise description (JSON) and its version.

The focal-centre angle φ₀ is measured in the same x–y plane as ctflow's image frame (x right,
y up); the source ``D·(sin θ, −cos θ)`` of ctflow view θ is ``ρ₀·(cos φ₀, sin φ₀)`` with

.. math:: φ_0 = θ - π/2, \qquad ρ_0 = D.

Real scanner files may use a mirrored frame or rotate the other way; their φ₀ is read as it is
(flip or negate the returned angles if reconstructions come out mirrored).

:func:`_write_view_tags` encodes one view's geometry, :func:`_read_view_tags` decodes it (raising
:class:`~ctflow.errors.DataError` that names the file and the missing or unreadable tag).

**DetectorCentralElement (7031,1033) is 1-based.** The DICOM-CT-PD user manual (TCIA, the
LDCT-and-Projection-Data collection; Chen et al. 2015) defines it as the (column X, row Y) index of
the detector element aligned with the isocentre and the focal centre. What settles the origin:

* the public TCIA LDCT-and-Projection-Data headers (Siemens, 736 columns × 64 rows) carry
  ``(369.625, 32.5)``: the row centre of a 64-row detector is 32.5 only when the first row is 1
  (0-based it would be 31.5); the column value is the quarter-detector offset on top of that;
* public readers treat it so: PyTomography's ``CTGen3ProjMeta`` (the DICOM-CT-PD reader of
  ``pytomography.io.CT``) places element ``k`` at ``(k − c)·spacing`` for ``k = 1 … n``; the Mayo/ODL
  ``load_projections`` reader computes the detector shift as ``c − 0.5 − n/2`` = ``(c − 1) − (n − 1)/2``;
  FreeCT and the MATLAB readers of the same data (``n + 1 − c`` for a mirrored column order) are
  1-based too.

(Read here from the public readers' source; the manual itself could not be fetched in this
environment.) ctflow therefore writes and reads ``c = (n + 1)/2 − offset/spacing`` for the columns and
``(rows + 1)/2`` for the rows. Files from ctflow versions that wrote it 0-based carry a CTFLOW block
without the ``central element base`` entry and are still read 0-based.

**Refused until modelled.** ctflow reconstructs 2D fan-beam slices from one detector row; helical
scans (TypeofProjectionData (7037,1009) ``HELICAL``, SpiralPitchFactor (0018,9311) > 0, or a focal-centre
z that moves between views) and flying focal spots (FlyingFocalSpotMode (7033,100E) other than
``FFSNONE``, or non-zero source shifts (7033,100B/100C/100D)) would be read as a plain fan scan with
the wrong rays, so reading them raises :class:`UnsupportedScanError` (a DataError) that says what was
found. Rebin such data to axial fan-beam slices first.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import DataError
from ..geometry import FanBeamGeometry
from .dicom_common import _floats, _sop_name

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
# source dynamics and scan type: what ctflow refuses (UnsupportedScanError) until it models them
_T_SRC_DPHI = (0x7033, 0x0B, "FD", "SourceAngularPositionShift")
_T_SRC_DZ = (0x7033, 0x0C, "FD", "SourceAxialPositionShift")
_T_SRC_DRHO = (0x7033, 0x0D, "FD", "SourceRadialDistanceShift")
_T_FFS = (0x7033, 0x0E, "CS", "FlyingFocalSpotMode")
_T_SCAN_TYPE = (0x7037, 0x09, "CS", "TypeofProjectionData")
# ctflow's own block: the exact view angle θ and detector offset, the noise description, the version.
CTFLOW_CREATOR = "CTFLOW"
_C_THETA = (0x7035, 0x01, "FD", "ctflow view angle θ (rad)")
_C_OFFSET = (0x7035, 0x02, "FD", "ctflow detector_offset (mm)")
_C_NOISE = (0x7035, 0x03, "UT", "ctflow noise metadata (JSON)")
_C_VERSION = (0x7035, 0x04, "LO", "ctflow version")
# ctflow's manifest, repeated in every view: the number of views written, this view's index, the SHA-256 of
# its stored pixel bytes and the SHA-256 of all the views' digests in view order (the scan digest).
_C_NVIEWS = (0x7035, 0x05, "UL", "ctflow manifest: number of views")
_C_INDEX = (0x7035, 0x06, "UL", "ctflow manifest: view index")
_C_DIGEST = (0x7035, 0x07, "LO", "ctflow manifest: SHA-256 of the view's pixel data")
_C_SCAN = (0x7035, 0x08, "LO", "ctflow manifest: SHA-256 of the scan")
# the origin of DetectorCentralElement in this file: "1" (absent in files of ctflow versions that wrote 0-based)
_C_CENTRAL_BASE = (0x7035, 0x20, "CS", "ctflow central element base")


class UnsupportedScanError(DataError):
    """Projection data ctflow cannot reconstruct correctly yet (helical, flying focal spot)."""


def _tag_label(t: tuple) -> str:
    group, offset, _, name = t
    return f"({group:04X},10{offset:02X}) {name}"


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
def _write_view_tags(
    ds,
    geometry: FanBeamGeometry,
    theta: float,
    *,
    rows: int,
    axial_spacing: float,
    z_position: float,
    projections_per_rotation: int,
    noise_json: str | None,
) -> None:
    """Add the DICOM-CT-PD and CTFLOW private blocks describing view ``theta`` to ``ds``."""
    n_det = geometry.n_detectors
    central_col = (n_det + 1) / 2.0 - geometry.detector_offset / geometry.detector_spacing  # 1-based
    central_row = (rows + 1) / 2.0
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
        _T_PPR: projections_per_rotation,
        _T_FFS: "FFSNONE",
        _T_SCAN_TYPE: "AXIAL",
    }
    for (group, offset, vr, _), value in values.items():
        ds.private_block(group, CTPD_CREATOR, create=True).add_new(offset, vr, value)
    block = ds.private_block(_C_THETA[0], CTFLOW_CREATOR, create=True)
    block.add_new(_C_THETA[1], _C_THETA[2], theta)
    block.add_new(_C_OFFSET[1], _C_OFFSET[2], float(geometry.detector_offset))
    block.add_new(_C_VERSION[1], _C_VERSION[2], __version__)
    block.add_new(_C_CENTRAL_BASE[1], _C_CENTRAL_BASE[2], "1")
    if noise_json is not None:
        block.add_new(_C_NOISE[1], _C_NOISE[2], noise_json)


def _write_manifest_tags(ds, n_views: int, index: int, digest: str, scan: str) -> None:
    """Add the manifest entries of view ``index`` (see ``_C_NVIEWS`` …) to the CTFLOW block."""
    block = ds.private_block(_C_THETA[0], CTFLOW_CREATOR, create=True)
    block.add_new(_C_NVIEWS[1], _C_NVIEWS[2], int(n_views))
    block.add_new(_C_INDEX[1], _C_INDEX[2], int(index))
    block.add_new(_C_DIGEST[1], _C_DIGEST[2], digest)
    block.add_new(_C_SCAN[1], _C_SCAN[2], scan)


def _read_manifest_tags(ds, path: Path) -> dict | None:
    """The manifest entries of a view written by ctflow, or None for files without them (other writers)."""
    n = _private_numbers(ds, _C_NVIEWS, path, 1, True, required=False, creator=CTFLOW_CREATOR)
    if n is None:
        return None
    index = _private_numbers(ds, _C_INDEX, path, 1, True, required=True, creator=CTFLOW_CREATOR)
    digest = _private_text(ds, _C_DIGEST, path, creator=CTFLOW_CREATOR)
    scan = _private_text(ds, _C_SCAN, path, creator=CTFLOW_CREATOR)
    n_views, idx = int(n[0]), int(index[0])
    if n_views < 1 or not 0 <= idx < n_views:
        raise DataError(f"ctflow manifest: view index {idx} of {n_views} views is impossible", str(path))
    hexdigits = set("0123456789abcdef")
    if not (len(digest) == 64 and set(digest) <= hexdigits and len(scan) == 64 and set(scan) <= hexdigits):
        raise DataError("ctflow manifest: the checksums are unreadable", str(path))
    return {"n_views": n_views, "index": idx, "digest": digest, "scan": scan}


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------
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
    """``count`` finite numbers of a private tag, also when it was read as raw bytes (VR UN/OB)."""
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
    except (TypeError, ValueError, OverflowError):
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


def _is_ctpd_dataset(ds) -> bool:
    """Whether ``ds`` has a DICOM-CT-PD private block in group 7029 (the detector description)."""
    return CTPD_CREATOR in ds.private_creators(_T_ROWS[0])


def _read_view_tags(ds, path: Path) -> dict:
    """Decode one view's geometry: dict(rows, cols, spacing, shape, theta, offset, rho, d0, central, z, ppr, noise).

    ``theta = φ₀ + π/2`` and ``offset = ((cols + 1)/2 − central column)·spacing`` (DetectorCentralElement is
    1-based, see the module docstring), replaced by the exact values of the CTFLOW block when they agree
    with these. ``central`` is returned 0-based. Helical and flying-focal-spot views raise
    :class:`UnsupportedScanError`.
    """
    if not _is_ctpd_dataset(ds) and CTPD_CREATOR not in ds.private_creators(_T_PHI[0]):
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
    base = _private_text(ds, _C_CENTRAL_BASE, path, creator=CTFLOW_CREATOR, required=False)
    if base is None and CTFLOW_CREATOR in ds.private_creators(_C_THETA[0]):
        base = "0"  # written by a ctflow version that stored DetectorCentralElement 0-based
    central = [c - (0.0 if base == "0" else 1.0) for c in central]  # → 0-based
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
        from ..schemas import parse_mapping

        try:
            noise = parse_mapping(noise_txt, "noise", fmt="json", error=DataError, allow_nonfinite=False)
        except DataError as e:
            raise DataError(f"the ctflow noise metadata {_tag_label(_C_NOISE)} is not valid JSON: {e}",
                            str(path)) from None
    if rows < 1 or cols < 1:
        raise DataError(f"detector rows/columns must be positive, got {rows} × {cols}", str(path))
    from ..limits import check_array

    check_array((rows, cols), 8, "the detector (rows × columns of the geometry tags)", path)
    for name, v in (("transverse spacing", spacing), ("ρ₀", rho), ("focal-centre-to-detector distance", d0)):
        if not v > 0:
            raise DataError(f"geometry tag value {name} must be positive, got {v!r}", str(path))
    _refuse_unsupported(ds, path)
    return {
        "rows": rows,
        "cols": cols,
        "spacing": spacing,
        "shape": shape,
        "theta": theta,
        "offset": offset,
        "rho": rho,
        "d0": d0,
        "central": central,
        "z": None if z is None else z[0],
        "ppr": None if ppr is None else int(ppr[0]),
        "noise": noise,
    }


def _refuse_unsupported(ds, path: Path) -> None:
    """Raise :class:`UnsupportedScanError` for helical or flying-focal-spot data (what was found, and why)."""
    found = []
    kind = (_private_text(ds, _T_SCAN_TYPE, path, required=False) or "").upper()
    if kind == "HELICAL":
        found.append(f"{_tag_label(_T_SCAN_TYPE)} is HELICAL")
    pitch = ds.get("SpiralPitchFactor")
    try:
        pitch_value = float(pitch) if pitch is not None and str(pitch).strip() != "" else 0.0
    except (TypeError, ValueError):
        pitch_value = 0.0
    if pitch_value > 0:
        found.append(f"SpiralPitchFactor (0018,9311) is {pitch_value:g}")
    helical = bool(found)
    ffs = (_private_text(ds, _T_FFS, path, required=False) or "").upper()
    if ffs not in ("", "FFSNONE"):
        found.append(f"{_tag_label(_T_FFS)} is {ffs}")
    for tag in (_T_SRC_DPHI, _T_SRC_DZ, _T_SRC_DRHO):
        v = _private_numbers(ds, tag, path, 1, False, required=False)
        if v is not None and v[0] != 0.0:
            found.append(f"{_tag_label(tag)} is {v[0]:g}")
    if not found:
        return
    what = "helical" if helical else "flying-focal-spot"
    if helical and len(found) > 1 and any("FlyingFocalSpot" in f or "Shift" in f for f in found):
        what = "helical, flying-focal-spot"
    raise UnsupportedScanError(
        f"{what} projection data ({'; '.join(found)}): ctflow reconstructs 2D fan-beam slices from one detector "
        "row and does not model helical trajectories or flying focal spots yet, so it refuses to read this as a "
        "plain fan scan (the rays would be wrong); rebin the scan to axial fan-beam slices first",
        str(path),
    )
