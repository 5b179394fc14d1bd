"""`ctflow simulate` / `ctflow convert`: every format path round-trips, and bad input fails cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ctflow
from ctflow.cli import main
from ctflow.errors import DataError
from ctflow.io import read_any, read_dicom_ctpd, read_image_h5, read_sinogram_h5
from ctflow.simulate import simulate_scan


def test_simulate_is_exact_and_seeded():
    a = simulate_scan("parallel-64-sparse30", "shepp-logan")
    g = ctflow.load_geometry("parallel-64-sparse30")
    ref = ctflow.phantoms.analytic_sinogram(ctflow.phantoms.shepp_logan_ellipses(32.0), g, detector_supersample=2)
    np.testing.assert_allclose(a.sinogram, ref, rtol=1e-6, atol=1e-4)  # noise-free = analytic
    b = simulate_scan("parallel-64-sparse30", "ellipses", gaussian=0.01, seed=3)
    c = simulate_scan("parallel-64-sparse30", "ellipses", gaussian=0.01, seed=3)
    d = simulate_scan("parallel-64-sparse30", "ellipses", gaussian=0.01, seed=4)
    assert np.array_equal(b.sinogram, c.sinogram) and not np.array_equal(b.truth, d.truth)
    assert b.noise == {"model": "gaussian", "relative_sigma": 0.01, "seed": 3}
    v = simulate_scan("fan-64-sparse60", "shepp-logan", n_views=20, poisson_I0=1e4, mu_scale=0.05)
    assert v.sinogram.shape == (20, 93) and v.geometry.n_angles == 20 and v.noise["model"] == "poisson"


def test_simulate_from_image_file_uses_the_operator(tmp_path):
    img = ctflow.phantoms.shepp_logan(64).numpy()
    np.save(tmp_path / "x.npy", img)
    s = simulate_scan("parallel-64-sparse30", str(tmp_path / "x.npy"))
    A = ctflow.RayTransform("parallel-64-sparse30")
    np.testing.assert_allclose(s.sinogram, A(torch.from_numpy(img)).numpy(), rtol=1e-5, atol=1e-4)
    with pytest.warns(UserWarning, match="resampling"):
        simulate_scan("parallel-28-sparse8", str(tmp_path / "x.npy"))
    bad = img.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match=r"bad\.npy.*NaN"):
        simulate_scan("parallel-64-sparse30", str(tmp_path / "bad.npy"))
    with pytest.raises(DataError, match="does not exist"):
        simulate_scan("parallel-64-sparse30", str(tmp_path / "nope.npy"))


def test_cli_simulate_h5_and_ctpd_then_convert(tmp_path, capsys):
    h5 = tmp_path / "scan.h5"
    assert main(["simulate", "--geometry", "fan-64-sparse60", "--gaussian", "0.01", "--seed", "2",
                 "--out", str(h5), "--truth", str(tmp_path / "truth.h5"), "--preview", str(tmp_path / "s.png")]) == 0
    sf = read_sinogram_h5(h5)
    assert sf.geometry == ctflow.load_geometry("fan-64-sparse60") and sf.noise["relative_sigma"] == 0.01
    assert read_image_h5(tmp_path / "truth.h5").method == "phantom"
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    # h5 → DICOM-CT-PD → h5: geometry identical, data within the uint16 quantisation step
    assert main(["convert", str(h5), str(tmp_path / "ctpd")]) == 0
    pd = read_dicom_ctpd(tmp_path / "ctpd", image_shape=64, pixel_size=1.0)
    assert pd.geometry == sf.geometry
    step = (sf.sinogram.max(axis=1) - sf.sinogram.min(axis=1)) / 65535
    assert np.all(np.abs(pd.sinogram - sf.sinogram) <= step[:, None] + 1e-6)
    assert main(["convert", str(tmp_path / "ctpd"), str(tmp_path / "back.h5"), "--image-shape", "64"]) == 0
    assert read_sinogram_h5(tmp_path / "back.h5").geometry.n_angles == 60
    # parallel scans cannot go to DICOM-CT-PD: a clean error, exit code 2, no output folder
    assert main(["simulate", "--geometry", "parallel-28-sparse8", "--out", str(tmp_path / "par")]) == 2
    assert "fan-beam" in capsys.readouterr().err and not (tmp_path / "par").exists()


def test_cli_convert_dicom_image_round_trip(tmp_path):
    import pydicom.data

    src = pydicom.data.get_testdata_file("CT_small.dcm")
    assert main(["convert", src, str(tmp_path / "ct.h5")]) == 0
    im = read_image_h5(tmp_path / "ct.h5")
    assert im.attrs["units"] == "HU" and im.image.min() == -896 and im.image.max() == 1167
    assert main(["convert", str(tmp_path / "ct.h5"), str(tmp_path / "series")]) == 0
    back = read_any(tmp_path / "series")
    assert back.units == "HU" and np.array_equal(back.data[0], im.image)  # int16 HU: exact
    assert main(["convert", str(tmp_path / "series"), str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_convert_bad_inputs(tmp_path, capsys):
    (tmp_path / "junk.dcm").write_bytes(b"definitely not DICOM" * 10)
    assert main(["convert", str(tmp_path / "junk.dcm"), str(tmp_path / "o.h5")]) == 2
    assert "junk.dcm" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.h5"), str(tmp_path / "o.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.float32))
    assert main(["convert", str(tmp_path / "a.npy"), str(tmp_path / "a.txt")]) == 2
    assert "unsupported output type" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "a.npy"), str(tmp_path / "a_dcm")]) == 2  # units unknown → no HU
    assert "units" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


def test_cli_phantom_dataset_loads_through_the_medmnist_loader(tmp_path):
    from ctflow.data import load_medmnist

    out = tmp_path / "organcmnist_64.npz"
    assert main(["data", "phantoms", str(out), "--size", "64", "--n-train", "12", "--n-val", "3", "--n-test", "4"]) == 0
    x, y = load_medmnist("organcmnist", 64, "val", root=tmp_path, verify=False)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (3,) and set(y.tolist()) <= set(range(11))


def test_simulate_abdomen_phantom():
    s = simulate_scan("parallel-64-sparse30", "abdomen", gaussian=0.01, seed=5)
    from ctflow.data import abdomen_slice

    assert np.array_equal(s.truth, abdomen_slice(5, size=64))
    assert s.sinogram.shape == (30, 92) and "abdomen" in s.source
