"""Real CT slices as an evaluation set (ctflow.studies.realct), checked against pydicom's own parse."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ctflow.errors import DataError
from ctflow.studies import realct

CT_SMALL = realct.ct_small_path()
needs_ct_small = pytest.mark.skipif(CT_SMALL is None, reason="this pydicom does not ship CT_small.dcm")


def _window(hu):
    return np.clip((hu - (40.0 - 200.0)) / 400.0, 0.0, 1.0)


def _pydicom_hu(ds):
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@needs_ct_small
def test_ct_small_is_the_block_mean_of_its_windowed_pixels():
    """CT_small (128², its body touches the border) keeps the whole image: 2×2 block means of the HU that
    pydicom decodes, then the L40/W400 window."""
    ds = pydicom.dcmread(CT_SMALL)
    hu = _pydicom_hu(ds)
    assert hu.shape == (128, 128)
    oracle = _window(hu.reshape(64, 2, 64, 2).mean(axis=(1, 3)))
    imgs, slices = realct.real_ct_images([CT_SMALL], size=64)
    assert imgs.shape == (1, 1, 64, 64)
    np.testing.assert_allclose(imgs[0, 0].numpy(), oracle, atol=2e-6)
    assert slices[0].flips == (False, False)  # [1, 0, 0, 0, 1, 0]: anterior already at the top
    from ctflow.io import read_dicom_image

    np.testing.assert_array_equal(read_dicom_image(CT_SMALL).orientation,
                                  np.array([float(v) for v in ds.ImageOrientationPatient]))


@needs_ct_small
@pytest.mark.parametrize("iop,flips", [([-1, 0, 0, 0, -1, 0], (True, True)), ([1, 0, 0, 0, -1, 0], (True, False)),
                                       ([-1, 0, 0, 0, 1, 0], (False, True))])
def test_orientation_turns_anterior_up_and_patient_right_left(tmp_path, iop, flips):
    """A slice stored with rows running anterior (c_y < 0) or columns running to the patient's right (r_x < 0)
    is flipped back: the prepared image equals the flipped block means of the stored pixels."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.ImageOrientationPatient = iop
    path = tmp_path / "turned.dcm"
    ds.save_as(path)
    hu = _pydicom_hu(pydicom.dcmread(path))
    if flips[0]:
        hu = hu[::-1]
    if flips[1]:
        hu = hu[:, ::-1]
    oracle = _window(hu.reshape(64, 2, 64, 2).mean(axis=(1, 3)))
    imgs, slices = realct.real_ct_images([path], size=64)
    assert slices[0].flips == flips
    np.testing.assert_allclose(imgs[0, 0].numpy(), oracle, atol=2e-6)


def test_body_square_centres_the_body_at_the_phantoms_fraction():
    """An off-centre disk body (diameter 80 px) in a 300² image: the field of view is centred on it with side
    80 / BODY_FRACTION, so the body spans BODY_FRACTION of the output; the mean HU is area-preserved."""
    yy, xx = np.mgrid[:300, :300]
    body = (yy - 100.5) ** 2 + (xx - 180.5) ** 2 < 40**2
    hu = np.where(body, 50.0, -1000.0)
    out, info = realct.body_square(hu, 0.7, 64)
    side = round(80 / realct.BODY_FRACTION)
    assert info["crop"].startswith(f"{side} px")
    assert info["mm_per_px"] == pytest.approx(side * 0.7 / 64)
    inside = out > -475  # the body's pixels (partial ones at the rim included) ...
    rows, cols = np.nonzero(inside)
    extent = max(np.ptp(rows), np.ptp(cols)) + 1
    assert abs(extent - 64 * realct.BODY_FRACTION) <= 2  # ... span 80 % of the side
    assert abs((rows.min() + rows.max()) / 2 - 31.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 31.5) <= 1
    total = body.sum() * 50.0 + (side * side - body.sum()) * -1000.0  # crop entirely inside the image
    assert out.mean() == pytest.approx(total / side**2, rel=1e-6)


def test_a_bad_file_is_a_ctflow_error_naming_it(tmp_path):
    bad = tmp_path / "not_ct.dcm"
    bad.write_bytes(b"\0" * 300)
    with pytest.raises(DataError, match="not_ct.dcm"):
        realct.real_ct_images([bad])


def test_area_resize_is_block_averaging_and_keeps_the_mean():
    rng = np.random.default_rng(6)
    img = rng.random((128, 96))
    out = realct.area_resize(img, (32, 24))
    np.testing.assert_allclose(out, img.reshape(32, 4, 24, 4).mean(axis=(1, 3)))
    odd = realct.area_resize(img, (45, 37))  # non-integer factors: area weights, mean preserved
    assert odd.mean() == pytest.approx(img.mean(), rel=1e-12)
    np.testing.assert_allclose(realct.area_resize(np.full((100, 70), 3.5), (64, 64)), 3.5)
