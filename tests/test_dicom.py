"""DICOM I/O: HU ↔ μ, CT image read/write (atomic, exact int16 HU), series sorting, bad-file
errors that name the file, and DICOM-CT-PD-style projection round trips (geometry == after)."""

from __future__ import annotations

import math
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

import ctflow
from ctflow.errors import DataError, NonFiniteError, ShapeError
from ctflow.io.dicom_ctpd import read_dicom_ctpd, write_dicom_ctpd
from ctflow.io.dicom_image import CTImage, read_dicom_image, read_dicom_series
from ctflow.io.dicom_image_writer import write_dicom_image, write_dicom_series
from ctflow.physics.phantoms import analytic_sinogram, shepp_logan_ellipses
from ctflow.units import MU_WATER, hu_to_mu, mu_to_hu


def _hu_image(h=24, w=20, seed=0):
    return np.random.default_rng(seed).integers(-1024, 3072, (h, w)).astype(np.float64)


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _edit(path: Path, fn) -> Path:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path, enforce_file_format=True)
    return path


# ---- HU ↔ μ ---------------------------------------------------------------------------------
def test_hu_mu_conversions_numpy_torch_scalar():
    assert hu_to_mu(0.0) == pytest.approx(MU_WATER) and hu_to_mu(-1000.0) == 0.0
    hu = np.array([-1000.0, 0.0, 1000.0, 40.0])
    np.testing.assert_allclose(hu_to_mu(hu), MU_WATER * (1 + hu / 1000))
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(hu)), hu, atol=1e-9)
    t = torch.tensor([-1000.0, 0.0, 500.0])
    out = hu_to_mu(t, mu_water=0.02)
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.tensor([0.0, 0.02, 0.03]))
    assert torch.allclose(mu_to_hu(out, mu_water=0.02), t, atol=1e-4)
    with pytest.raises(ValueError):
        hu_to_mu(hu, mu_water=0.0)


# ---- writing and reading images -------------------------------------------------------------
def test_int16_hu_round_trip_is_exact_and_file_is_valid(tmp_path):
    img = _hu_image()
    img[0, 0], img[0, 1] = -32768, 32767  # the int16 extremes survive too
    p = write_dicom_image(tmp_path / "img.dcm", torch.from_numpy(img), (0.5, 0.75), method="FBP ram-lak")
    assert p == tmp_path / "img.dcm" and _visible(tmp_path) == ["img.dcm"]  # no temp file left
    im = read_dicom_image(p)
    assert isinstance(im, CTImage) and im.hu.dtype == np.float32
    np.testing.assert_array_equal(im.hu, img)
    assert im.pixel_spacing == (0.5, 0.75) and im.slice_thickness == 1.0
    np.testing.assert_allclose(im.mu, hu_to_mu(img), rtol=1e-6, atol=1e-7)

    ds = pydicom.dcmread(p, force=False)
    assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Modality == "CT" and ds.SeriesDescription == "ctflow FBP ram-lak"
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
    assert (ds.PixelRepresentation, ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (1, 16, 16, 15)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
    assert (ds.Rows, ds.Columns) == img.shape and list(ds.ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]
    assert ds.SoftwareVersions == f"ctflow {ctflow.__version__}" and ds.StudyDate and ds.ContentTime
    # default position centres the image on the isocentre
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], [-9.5 * 0.75, -11.5 * 0.5, 0.0])
    assert im.metadata["SeriesDescription"] == "ctflow FBP ram-lak" and im.metadata["WindowWidth"] == 400.0


def test_write_options_and_rounding_clipping(tmp_path):
    img = np.array([[0.4, 0.6, -1.6], [40000.0, -40000.0, 12.5]])
    with pytest.warns(UserWarning, match="clipped"):
        p = write_dicom_image(tmp_path / "a.dcm", img, 1.0, description="my recon", window=None,
                              extra={"InstitutionName": "lab"}, patient_id="P1", instance_number=3,
                              slice_thickness=2.0)
    ds = pydicom.dcmread(p)
    assert ds.SeriesDescription == "my recon" and "WindowCenter" not in ds and ds.InstitutionName == "lab"
    assert ds.PatientID == "P1" and ds.InstanceNumber == 3 and float(ds.ImagePositionPatient[2]) == 4.0
    np.testing.assert_array_equal(read_dicom_image(p).hu, [[0, 1, -2], [32767, -32768, 12]])
    with pytest.warns(UserWarning, match="mu_to_hu"):  # an attenuation image passed by mistake
        write_dicom_image(tmp_path / "mu.dcm", np.full((4, 4), MU_WATER), 1.0)


def test_failed_writes_leave_nothing_behind(tmp_path, monkeypatch):
    img = _hu_image()
    bad = img.copy()
    bad[3, 4] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        write_dicom_image(tmp_path / "x.dcm", bad, 1.0)
    vol = np.stack([img, img, img])
    vol[2, 0, 0] = np.inf
    with pytest.raises(NonFiniteError):
        write_dicom_series(tmp_path / "series", vol, 1.0)
    with pytest.raises(ShapeError):
        write_dicom_image(tmp_path / "y.dcm", vol, 1.0)
    assert _visible(tmp_path) == []

    # an existing file survives a write that fails half-way through saving
    good = write_dicom_image(tmp_path / "x.dcm", img, 1.0)
    before = good.read_bytes()

    def broken_save(self, filename, **kw):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.Dataset, "save_as", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_image(tmp_path / "x.dcm", img + 1, 1.0)
    assert _visible(tmp_path) == ["x.dcm"] and good.read_bytes() == before


def test_bundled_ct_small_and_jpeg2000(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    im = read_dicom_image(src)
    assert im.hu.shape == (128, 128)
    assert float(im.hu.min()) == -896.0 and float(im.hu.max()) == 1167.0
    ds = pydicom.dcmread(src)
    assert im.pixel_spacing == tuple(float(v) for v in ds.PixelSpacing)
    assert im.slice_thickness == float(ds.SliceThickness) and im.metadata["Modality"] == "CT"
    np.testing.assert_allclose(im.positions, [[float(v) for v in ds.ImagePositionPatient]])

    j2k = get_testdata_file("693_J2KI.dcm")
    assert pydicom.dcmread(j2k).file_meta.TransferSyntaxUID.is_compressed
    im2 = read_dicom_image(j2k)
    assert im2.hu.shape == (512, 512) and im2.hu.dtype == np.float32 and np.ptp(im2.hu) > 100


def test_series_round_trip_sorted_by_position(tmp_path):
    vol = np.stack([_hu_image(seed=k) for k in range(5)])
    paths = write_dicom_series(tmp_path / "s", vol, (0.6, 0.6), slice_thickness=2.5, method="FBP hann")
    assert [p.name for p in paths] == [f"slice_{k:04d}.dcm" for k in range(1, 6)]
    assert _visible(tmp_path / "s") == [p.name for p in paths]
    dss = [pydicom.dcmread(p, force=False) for p in paths]
    assert len({d.SeriesInstanceUID for d in dss}) == len({d.StudyInstanceUID for d in dss}) == 1
    assert len({d.FrameOfReferenceUID for d in dss}) == 1 and len({d.SOPInstanceUID for d in dss}) == 5
    assert [d.InstanceNumber for d in dss] == [1, 2, 3, 4, 5]
    assert [float(d.ImagePositionPatient[2]) for d in dss] == [0.0, 2.5, 5.0, 7.5, 10.0]

    # copy under shuffled names so that name order and InstanceNumber both disagree with z
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    order = [3, 0, 4, 1, 2]
    for new, k in enumerate(order):
        shutil.copy(paths[k], shuffled / f"im{new}.dcm")
        _edit(shuffled / f"im{new}.dcm", lambda d: setattr(d, "InstanceNumber", 10 - new))
    s = read_dicom_series(shuffled)
    np.testing.assert_array_equal(s.hu, vol)
    np.testing.assert_allclose(s.positions[:, 2], [0, 2.5, 5, 7.5, 10])
    assert s.pixel_spacing == (0.6, 0.6) and s.slice_thickness == 2.5 and s.slice_spacing == 2.5
    assert s.metadata["SeriesDescription"] == "ctflow FBP hann" and s.skipped == []
    files = list(paths)
    random.Random(1).shuffle(files)
    np.testing.assert_array_equal(read_dicom_series(files).hu, vol)

    # without positions the InstanceNumber decides
    for p in paths:
        _edit(p, lambda d: (delattr(d, "ImagePositionPatient")))
    rev = [paths[k] for k in (4, 2, 0, 3, 1)]
    s2 = read_dicom_series(rev)
    np.testing.assert_array_equal(s2.hu, vol)
    assert s2.positions is None


# ---- bad image input ------------------------------------------------------------------------
@pytest.fixture()
def bad_files(tmp_path):
    """name → a bad file made here, plus a good image for comparison."""
    img = _hu_image()
    good = write_dicom_image(tmp_path / "good.dcm", img, 1.0)
    raw = good.read_bytes()
    files = {"missing": tmp_path / "missing.dcm"}
    files["text"] = tmp_path / "notes.dcm"
    files["text"].write_text("this is not DICOM\n")
    files["truncated"] = tmp_path / "truncated.dcm"
    files["truncated"].write_bytes(raw[: len(raw) - 300])  # cut inside the pixel data
    files["nopixels"] = _edit(Path(shutil.copy(good, tmp_path / "nopixels.dcm")), lambda d: delattr(d, "PixelData"))

    def to_mr(d):
        d.Modality, d.SOPClassUID = "MR", MRImageStorage
        d.file_meta.MediaStorageSOPClassUID = MRImageStorage

    files["mr"] = _edit(Path(shutil.copy(good, tmp_path / "mr.dcm")), to_mr)
    return good, files


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "does not exist"),
        ("text", "not a DICOM file"),
        ("truncated", "truncated"),
        ("nopixels", "no pixel data"),
        ("mr", "not a CT image"),
    ],
)
def test_bad_image_files_raise_data_error_naming_the_file(bad_files, case, pattern):
    _, files = bad_files
    with pytest.raises(DataError, match=pattern) as info:
        read_dicom_image(files[case])
    assert files[case].name in str(info.value) and info.value.path == str(files[case])
    with pytest.raises(DataError, match=files[case].name):
        read_dicom_series([bad_files[0], files[case]])


def test_series_mismatches_and_skip_mode(tmp_path, bad_files):
    good, files = bad_files
    s = tmp_path / "series"
    write_dicom_series(s, np.stack([_hu_image(seed=k) for k in range(3)]), 1.0)
    small = write_dicom_image(tmp_path / "small.dcm", _hu_image(10, 10), 1.0)
    coarse = write_dicom_image(tmp_path / "coarse.dcm", _hu_image(), 2.0)
    with pytest.raises(DataError, match="shape") as info:
        read_dicom_series(sorted(s.iterdir()) + [small])
    assert "small.dcm" in str(info.value) and "slice_0001.dcm" in str(info.value)
    with pytest.raises(DataError, match="spacing") as info:
        read_dicom_series(sorted(s.iterdir()) + [coarse])
    assert "coarse.dcm" in str(info.value) and "slice_0001.dcm" in str(info.value)

    for name in ("text", "truncated", "nopixels", "mr"):
        shutil.copy(files[name], s / files[name].name)
    shutil.copy(small, s / "small.dcm")
    with pytest.raises(DataError):
        read_dicom_series(s)
    with pytest.warns(UserWarning, match="skipped 5 of 8"):
        res = read_dicom_series(s, on_error="skip")
    assert res.hu.shape == (3, 24, 20) and [p.name for p in res.paths] == [f"slice_{k:04d}.dcm" for k in (1, 2, 3)]
    skipped = {Path(p).name: reason for p, reason in res.skipped}
    assert set(skipped) == {"notes.dcm", "truncated.dcm", "nopixels.dcm", "mr.dcm", "small.dcm"}
    assert "not a DICOM" in skipped["notes.dcm"] and "not a CT image" in skipped["mr.dcm"]

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        read_dicom_series(empty)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    shutil.copy(files["text"], only_bad / "a.dcm")
    with pytest.raises(DataError, match="no readable CT slice.*not a DICOM"):
        read_dicom_series(only_bad, on_error="skip")
    with pytest.raises(ValueError, match="on_error"):
        read_dicom_series(s, on_error="ignore")


# ---- projection data (DICOM-CT-PD style) ----------------------------------------------------
def _scan(shape: str, step: int = 1):
    g = ctflow.load_geometry("fan-64-sparse60")
    if step > 1:
        g = g.subsample_views(step)
    if shape == "curved":
        g = g.replace(detector_shape="curved", detector_offset=0.25 * g.detector_spacing)
    return g, analytic_sinogram(shepp_logan_ellipses(30.0), g).astype(np.float32)


def _within_quantisation(read: np.ndarray, orig: np.ndarray) -> bool:
    """The stated tolerance: half a uint16 step of each view's range, plus float32 rounding."""
    step = (orig.max(axis=1, keepdims=True).astype(np.float64) - orig.min(axis=1, keepdims=True)) / 65535
    err = np.abs(read.astype(np.float64) - orig)
    return bool(np.all(err <= 0.5 * step * (1 + 1e-9) + 2.0**-23 * np.abs(orig)))


@pytest.mark.parametrize("shape", ["flat", "curved"])
def test_ctpd_round_trip_geometry_equal_and_data_within_tolerance(tmp_path, shape):
    g, sino = _scan(shape)
    noise = {"model": "poisson", "I0": 1e5, "seed": 3}
    paths = write_dicom_ctpd(tmp_path / "proj", torch.from_numpy(sino), g, noise=noise, patient_id="SIM1")
    assert len(paths) == g.n_angles and _visible(tmp_path / "proj") == [p.name for p in paths]
    out = read_dicom_ctpd(tmp_path / "proj", image_shape=g.image_shape, pixel_size=g.pixel_size)
    sino2, g2 = out
    assert g2 == g  # every field, angles bit-identical
    assert max(abs(a - b) for a, b in zip(g2.angles, g.angles)) <= 1e-12
    assert sino2.dtype == np.float32 and sino2.shape == g.sinogram_shape
    assert _within_quantisation(sino2, sino)
    assert np.max(np.abs(sino2 - sino)) <= np.max(np.ptp(sino, axis=1)) / 65535
    assert out.metadata["noise"] == noise and out.metadata["PatientID"] == "SIM1"
    assert out.metadata["projections_per_rotation"] == 60 and np.all(out.z_positions == 0.0)
    # FBP of the read data matches FBP of the original to the quantisation level
    f0, f1 = ctflow.fbp(sino, g), ctflow.fbp(sino2, g2)
    assert np.max(np.abs(f1 - f0)) <= 1e-4 * np.max(np.abs(f0))

    ds = pydicom.dcmread(paths[1], force=False)
    assert ds.SOPClassUID == CTImageStorage and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (ds.Rows, ds.Columns, ds.PixelRepresentation) == (1, g.n_detectors, 0)
    blk = ds.private_block(0x7031, "DICOM-CT-PD")
    assert blk[0x01].VR == "FD" and blk[0x01].value == pytest.approx(g.angles[1] - math.pi / 2, abs=1e-15)
    assert blk[0x03].value == g.source_to_isocenter and blk[0x31].value == g.source_to_detector
    central = list(blk[0x33].value)
    # DetectorCentralElement is 1-based (the DICOM-CT-PD convention; see ctflow/io/dicom_ctpd_tags.py)
    assert central == pytest.approx([(g.n_detectors + 1) / 2 - g.detector_offset / g.detector_spacing, 1.0])
    blk29 = ds.private_block(0x7029, "DICOM-CT-PD")
    assert blk29[0x0B].value == ("CYLINDRICAL" if shape == "curved" else "FLAT")
    assert (blk29[0x10].value, blk29[0x11].value, blk29[0x02].value) == (1, g.n_detectors, g.detector_spacing)
    assert ds.private_block(0x7033, "DICOM-CT-PD")[0x13].value == 60


def test_ctpd_standard_tags_alone_give_the_geometry(tmp_path):
    """A file without ctflow's exact block (a foreign DICOM-CT-PD file) maps φ₀ and the central
    element back to θ and the offset to ~1e-12."""
    g, sino = _scan("curved")
    paths = write_dicom_ctpd(tmp_path, sino, g)
    for p in paths:
        _edit(p, lambda d: _drop_block(d, 0x7035))
    _, g2 = read_dicom_ctpd(tmp_path, image_shape=64, pixel_size=1.0)
    np.testing.assert_allclose(g2.angles, g.angles, rtol=0, atol=1e-12)
    assert g2.detector_offset == pytest.approx(g.detector_offset, abs=1e-12)
    assert g2.replace(angles=g.angles, detector_offset=g.detector_offset) == g


def _drop_block(ds, group):
    for tag in [t for t in ds.keys() if t.group == group]:
        del ds[tag]


def test_ctpd_sorting_rows_and_default_pixel_size(tmp_path):
    g, sino = _scan("flat")
    paths = write_dicom_ctpd(tmp_path / "p", sino, g, rows=3)
    ds = pydicom.dcmread(paths[0])
    assert (ds.Rows, ds.Columns) == (3, g.n_detectors)
    files = list(paths)
    random.Random(0).shuffle(files)
    s, g2 = read_dicom_ctpd(files, image_shape=g.image_shape, pixel_size=g.pixel_size)
    assert g2 == g and _within_quantisation(s, sino)
    # without InstanceNumber the views are sorted by angle
    for p in paths:
        _edit(p, lambda d: delattr(d, "InstanceNumber"))
    s, g2 = read_dicom_ctpd(files, image_shape=g.image_shape, pixel_size=g.pixel_size)
    assert g2 == g and _within_quantisation(s, sino)
    # default pixel size: the image just fits in the field of view (no truncation warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, g3 = read_dicom_ctpd(tmp_path / "p", image_shape=256)
    assert g3.image_shape == (256, 256) and g3.image_radius == pytest.approx(g.fov_radius, rel=1e-9)
    assert g3.image_radius <= g3.fov_radius


def test_ctpd_rejects_bad_input(tmp_path):
    g, sino = _scan("flat", step=4)  # 15 views keep it quick
    with pytest.raises(ShapeError):
        write_dicom_ctpd(tmp_path / "x", sino[:, :-1], g)
    bad = sino.copy()
    bad[5, 5] = np.nan
    with pytest.raises(NonFiniteError):
        write_dicom_ctpd(tmp_path / "x", bad, g)
    with pytest.raises(ctflow.GeometryError):
        write_dicom_ctpd(tmp_path / "x", sino, ctflow.load_geometry("parallel-64-sparse30"))
    assert not (tmp_path / "x").exists()

    folder = tmp_path / "p"
    paths = write_dicom_ctpd(folder, sino, g)
    # missing geometry tag: named, with the file
    _edit(paths[7], lambda d: d.private_block(0x7031, "DICOM-CT-PD").__delitem__(0x03))
    with pytest.raises(DataError, match=r"\(7031,1003\)") as info:
        read_dicom_ctpd(folder)
    assert paths[7].name in str(info.value)
    # inconsistent geometry: both files named
    paths = write_dicom_ctpd(folder, sino, g)
    _edit(paths[9], lambda d: setattr(d.private_block(0x7031, "DICOM-CT-PD")[0x31], "value", 500.0))
    with pytest.raises(DataError, match="inconsistent geometry") as info:
        read_dicom_ctpd(folder)
    assert paths[9].name in str(info.value) and paths[0].name in str(info.value)
    # an image is not projection data; nor is a text file
    paths = write_dicom_ctpd(folder, sino, g)
    img = write_dicom_image(folder / "zz_image.dcm", _hu_image(), 1.0)
    with pytest.raises(DataError, match="not CT projection data") as info:
        read_dicom_ctpd(folder)
    assert "zz_image.dcm" in str(info.value)
    with pytest.raises(DataError, match="read_dicom_ctpd"):
        read_dicom_image(paths[0])
    (folder / "zz_notes.txt").write_text("hello")
    # skip mode: the image, the text file and the odd-geometry view are listed, the rest read
    _edit(paths[2], lambda d: setattr(d.private_block(0x7031, "DICOM-CT-PD")[0x03], "value", 300.0))
    with pytest.warns(UserWarning, match="skipped 3 of 17"):
        res = read_dicom_ctpd(folder, on_error="skip", image_shape=64, pixel_size=1.0)
    assert {Path(p).name for p, _ in res.skipped} == {"zz_image.dcm", "zz_notes.txt", paths[2].name}
    assert res.sinogram.shape == (14, g.n_detectors) and paths[2] not in res.paths
    keep = [i for i in range(15) if i != 2]
    assert res.geometry.angles == tuple(g.angles[i] for i in keep)
    assert _within_quantisation(res.sinogram, sino[keep])
    # view count check
    img.unlink()
    (folder / "zz_notes.txt").unlink()
    paths = write_dicom_ctpd(folder, sino, g)
    with pytest.raises(DataError, match="expected 16 views but found 15"):
        read_dicom_ctpd(folder, n_views=16)
    assert read_dicom_ctpd(folder, n_views=15, image_shape=64, pixel_size=1.0)[1] == g
    with pytest.raises(DataError, match="does not exist"):
        read_dicom_ctpd(tmp_path / "nowhere")
