"""DICOM-CT-PD conventions against the header values published for the TCIA LDCT-and-Projection-Data
collection (Siemens SOMATOM Definition AS/Flash: 736 columns × 64 rows, DetectorCentralElement
(369.625, 32.5), ρ₀ = 595 mm, 1085.6 mm to the detector, 1.2858 × 1.0947 mm elements, 2304 views per
rotation, flying focal spot and helical pitch set). The files are written here with pydicom alone (another
writer than ctflow), in the layout of those files: pixel data stored 736 rows × 64 columns, private tags
in FL/US/CS, implicit or explicit VR.
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

import ctflow
from ctflow.errors import DataError
from ctflow.io import read_dicom_ctpd, write_dicom_ctpd
from ctflow.io.dicom_ctpd_tags import UnsupportedScanError

COLS, ROWS = 736, 64
CENTRAL = (369.625, 32.5)  # (column, row), 1-based: the row centre of 64 rows is 32.5
RHO, D0 = 595.0, 1085.6
T_SPACING, A_SPACING = 1.2858, 1.0947
PPR = 2304
TCIA = {"scan": "HELICAL", "pitch": 0.6, "ffs": "FFSZ", "dphi": 0.000333, "dz": -0.66, "drho": 5.45, "z_step": 0.02}
AXIAL = {"scan": "AXIAL", "pitch": None, "ffs": "FFSNONE", "dphi": 0.0, "dz": 0.0, "drho": 0.0, "z_step": 0.0}


def _view_values(i: int) -> np.ndarray:
    """(rows, columns) line integrals of view i: value = column/100 + row/1000 + i (rows tell apart)."""
    r = np.arange(ROWS, dtype=np.float64)[:, None]
    c = np.arange(COLS, dtype=np.float64)[None, :]
    return c / 100.0 + r / 1000.0 + i


def _write_view(path, i: int, phi: float, h: dict, implicit: bool) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.PatientID = "CT", "SIEMENS", "L067"
    ds.InstanceNumber = i + 1
    if h["pitch"] is not None:
        ds.SpiralPitchFactor = h["pitch"]
    values = _view_values(i)
    slope = 1.0 / 4096
    stored = np.round(values / slope).astype(np.uint16).T  # TCIA layout: 736 DICOM rows × 64 DICOM columns
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", "0"
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    c = "DICOM-CT-PD"
    b29 = ds.private_block(0x7029, c, create=True)
    b29.add_new(0x10, "US", ROWS)
    b29.add_new(0x11, "US", COLS)
    b29.add_new(0x02, "FL", T_SPACING)
    b29.add_new(0x06, "FL", A_SPACING)
    b29.add_new(0x0B, "CS", "CYLINDRICAL")
    b31 = ds.private_block(0x7031, c, create=True)
    b31.add_new(0x01, "FL", phi)
    b31.add_new(0x02, "FL", 100.0 + h["z_step"] * i)
    b31.add_new(0x03, "FL", RHO)
    b31.add_new(0x31, "FL", D0)
    b31.add_new(0x33, "FL", list(CENTRAL))
    b33 = ds.private_block(0x7033, c, create=True)
    b33.add_new(0x0B, "FL", h["dphi"] * (i % 2))
    b33.add_new(0x0C, "FL", h["dz"] * (i % 2))
    b33.add_new(0x0D, "FL", h["drho"] * (i % 2))
    b33.add_new(0x0E, "CS", h["ffs"])
    b33.add_new(0x13, "US", PPR)
    ds.private_block(0x7037, c, create=True).add_new(0x09, "CS", h["scan"])
    ds.save_as(path, enforce_file_format=True)


def _scan(folder, header: dict, n: int = 6, implicit: bool = True):
    folder.mkdir()
    phis = [0.3 + 2 * math.pi * k / PPR for k in range(n)]
    for i, phi in enumerate(phis):
        _write_view(folder / f"L067_{i + 1:05d}.dcm", i, phi, header, implicit)
    return phis


@pytest.mark.parametrize("implicit", [True, False])
def test_tcia_header_gives_the_published_geometry(tmp_path, implicit):
    phis = _scan(tmp_path / "axial", AXIAL, implicit=implicit)
    out = read_dicom_ctpd(tmp_path / "axial", image_shape=512)
    g = out.geometry
    assert g.detector_shape == "curved" and g.n_detectors == COLS
    assert g.source_to_isocenter == pytest.approx(RHO) and g.source_to_detector == pytest.approx(D0)
    assert g.detector_spacing == pytest.approx(T_SPACING, rel=1e-6)  # FL → float32 rounding
    # 1-based: column 369.625 is 0-based 368.625, 1.125 elements right of the centre (n − 1)/2 = 367.5
    assert g.detector_offset == pytest.approx((367.5 - 368.625) * T_SPACING, rel=1e-6)
    assert g.detector_offset == pytest.approx(-1.446525, abs=1e-5)
    np.testing.assert_allclose(g.angles, np.asarray(phis) + math.pi / 2, atol=1e-6)
    assert out.metadata["detector_rows"] == ROWS and out.metadata["projections_per_rotation"] == PPR
    # the central row 32.5 (1-based) is 31.5 0-based: halfway between rows 31 and 32
    for i in range(len(phis)):
        expected = _view_values(i)[31:33].mean(0)
        np.testing.assert_allclose(out.sinogram[i], expected, atol=2 / 4096)
    # the same scanner as ctflow's clinical preset, apart from the quarter offset the header carries
    ref = ctflow.load_geometry("fan-512-clinical")
    assert (ref.n_detectors, ref.detector_shape) == (g.n_detectors, g.detector_shape)
    assert ref.source_to_isocenter == pytest.approx(g.source_to_isocenter)
    assert ref.source_to_detector == pytest.approx(g.source_to_detector)
    assert ref.detector_spacing == pytest.approx(g.detector_spacing, rel=1e-6)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_tcia_helical_flying_focal_spot_scan_is_refused(tmp_path, on_error):
    _scan(tmp_path / "helical", TCIA)
    with pytest.raises(UnsupportedScanError) as info:
        read_dicom_ctpd(tmp_path / "helical", on_error=on_error)
    msg = str(info.value)
    assert "helical" in msg and "flying-focal-spot" in msg
    assert "HELICAL" in msg and "SpiralPitchFactor (0018,9311) is 0.6" in msg and "FFSZ" in msg
    assert "L067_0000" in msg and "rebin" in msg  # names the file and what to do
    assert isinstance(info.value, DataError)


def test_each_unsupported_feature_is_refused_on_its_own(tmp_path):
    cases = {
        "ffs": (AXIAL | {"ffs": "FFSXY"}, r"flying-focal-spot .*FlyingFocalSpotMode is FFSXY"),
        "shift": (AXIAL | {"dphi": 0.000333}, r"flying-focal-spot .*SourceAngularPositionShift is 0\.000333"),
        "type": (AXIAL | {"scan": "HELICAL"}, r"helical .*TypeofProjectionData is HELICAL"),
        "pitch": (AXIAL | {"pitch": 1.0}, r"helical .*SpiralPitchFactor \(0018,9311\) is 1"),
        "z": (AXIAL | {"z_step": 0.5}, r"helical projection data: the focal-centre z \(7031,1002\) moves from 100 to 102\.5"),
    }
    for name, (header, pattern) in cases.items():
        _scan(tmp_path / name, header)
        with pytest.raises(UnsupportedScanError, match=pattern):
            read_dicom_ctpd(tmp_path / name)


def test_ctflow_writes_1_based_and_reads_its_older_0_based_files(tmp_path):
    g = ctflow.FanBeamGeometry(64, 24, 595.0, 1085.6, n_detectors=200, pixel_size=1.0, detector_spacing=1.2858,
                               detector_shape="curved", detector_offset=0.25 * 1.2858)
    sino = np.random.default_rng(0).random(g.sinogram_shape).astype(np.float32)
    paths = write_dicom_ctpd(tmp_path / "new", sino, g, rows=4)
    ds = pydicom.dcmread(paths[0])
    central = list(ds.private_block(0x7031, "DICOM-CT-PD")[0x33].value)
    assert central == pytest.approx([(200 + 1) / 2 - 0.25, (4 + 1) / 2])  # 1-based, like the TCIA files
    assert ds.private_block(0x7033, "DICOM-CT-PD")[0x0E].value == "FFSNONE"
    assert ds.private_block(0x7037, "DICOM-CT-PD")[0x09].value == "AXIAL"
    assert read_dicom_ctpd(tmp_path / "new", image_shape=64, pixel_size=1.0).geometry == g
    # a file from another writer with the same 1-based tags and no CTFLOW block: the same geometry
    for p in paths:
        d = pydicom.dcmread(p)
        for tag in [e.tag for e in d if e.tag.group == 0x7035]:
            del d[tag]
        d.save_as(p)
    g2 = read_dicom_ctpd(tmp_path / "new", image_shape=64, pixel_size=1.0).geometry
    assert g2.detector_offset == pytest.approx(g.detector_offset, abs=1e-9)
    # files written by earlier ctflow versions: CTFLOW block without the base entry, central element 0-based
    paths = write_dicom_ctpd(tmp_path / "old", sino, g)
    for p in paths:
        d = pydicom.dcmread(p)
        blk = d.private_block(0x7031, "DICOM-CT-PD")
        blk[0x33].value = [v - 1.0 for v in blk[0x33].value]
        del d[d.private_block(0x7035, "CTFLOW").get_tag(0x20)]
        d.save_as(p)
    assert read_dicom_ctpd(tmp_path / "old", image_shape=64, pixel_size=1.0).geometry == g
