"""``ctflow methods`` and ``ctflow reconstruct``: outputs, batches with bad files, torchrun sharding."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ctflow.cli import main
from ctflow.cli.reconstruct import parse_option
from ctflow.io import read_image_h5, write_sinogram_h5
from ctflow.physics.noise import GaussianNoise


def _scan(path: Path, seed: int, geometry="parallel-28-sparse30"):
    import torch

    import ctflow
    from ctflow.data.abdomen import abdomen_slice

    g = ctflow.load_geometry(geometry)
    x = torch.from_numpy(abdomen_slice(seed, size=g.image_shape[0])).float()
    y = GaussianNoise(relative_sigma=0.01)(ctflow.RayTransform(g)(x), seed=seed)
    write_sinogram_h5(path, y.numpy(), g)
    return x.numpy()


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    d = tmp_path_factory.mktemp("scans")
    truths = {f"s{i}": _scan(d / f"s{i}.h5", 100 + i) for i in range(4)}
    return d, truths


def test_parse_option():
    assert parse_option("iterations=20") == ("iterations", 20)
    assert parse_option("rho=1e2") == ("rho", 100.0)
    assert parse_option("filter=hann") == ("filter", "hann")
    assert parse_option("box=(0, 1)") == ("box", (0, 1))
    assert parse_option("nonnegative=true") == ("nonnegative", True)
    assert parse_option("x-mode=free") == ("x_mode", "free")


def test_methods_lists_every_method(capsys):
    assert main(["methods", "-v"]) == 0
    out = capsys.readouterr().out
    for name in ("fbp", "tv", "msflow", "dflow", "cpigfm"):
        assert f"\n{name}" in "\n" + out
    assert "iterations =" in out


def test_reconstruct_single_file_writes_h5_with_metadata(scans, tmp_path, capsys):
    d, truths = scans
    out = tmp_path / "rec.h5"
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "tv", "--set", "iterations=50", "--out", str(out)]) == 0
    im = read_image_h5(out)
    assert im.image.shape == (28, 28) and im.method == "tv"
    assert im.params["iterations"] == 50
    with h5py.File(out) as f:
        hist = json.loads(f.attrs["history"])
    assert len(hist["data_misfit"]) == 50
    err = np.abs(im.image - truths["s0"]).mean()
    assert err < 0.1


def test_reconstruct_flow_method_png_and_std(scans, tmp_path):
    d, _ = scans
    out = tmp_path / "rec.png"
    rc = main(["reconstruct", str(d / "s1.h5"), "--method", "cpigfm", "--prior", "phantom-28", "--set", "steps=3",
               "--n-samples", "2", "--out", str(out)])
    assert rc == 0 and out.stat().st_size > 1000
    assert (tmp_path / "rec_std.png").stat().st_size > 1000
    rc = main(["reconstruct", str(d / "s1.h5"), "--method", "cpigfm", "--prior", "phantom-28", "--set", "steps=3",
               "--n-samples", "2", "--out", str(tmp_path / "rec.h5")])
    std = read_image_h5(tmp_path / "rec_std.h5")
    assert rc == 0 and std.image.shape == (28, 28) and std.image.max() > 0 and std.method == "cpigfm std"


def test_reconstruct_errors_are_clear(scans, tmp_path, capsys):
    d, _ = scans
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "nope"]) == 2
    assert "available:" in capsys.readouterr().err
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "tv", "--set", "weight=-1"]) == 2
    assert "weight" in capsys.readouterr().err
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "fbp", "--geometry", "parallel-28-sparse60"]) == 2
    assert "has 30 angles" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_batch_skips_and_reports_bad_files(scans, tmp_path, capsys):
    d, _ = scans
    batch = tmp_path / "in"
    batch.mkdir()
    for f in ("s0.h5", "s1.h5"):
        shutil.copy(d / f, batch / f)
    (batch / "broken.h5").write_bytes(b"not hdf5")
    out = tmp_path / "out"
    assert main(["reconstruct", str(batch), "--method", "fbp", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.h5" in err
    assert sorted(p.name for p in out.iterdir()) == ["s0_fbp.h5", "s1_fbp.h5"]


def test_torchrun_sharding_matches_single_process(scans, tmp_path):
    d, _ = scans
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    args = ["reconstruct", str(d), "--method", "sirt", "--set", "iterations=30"]
    assert main(args + ["--out", str(single)]) == 0
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "ctflow.cli", *args, "--out", str(sharded)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    names = sorted(p.name for p in single.iterdir())
    assert names == sorted(p.name for p in sharded.iterdir()) and len(names) == 4
    for n in names:
        np.testing.assert_array_equal(read_image_h5(single / n).image, read_image_h5(sharded / n).image)
    # each rank did its own share
    assert r.stdout.count("->") == 4


def _water_disk_dicom(path: Path, n: int, radius: float) -> np.ndarray:
    """A water disk (0 HU) in air (−1000 HU) as a DICOM image; returns each pixel's distance to the centre."""
    from ctflow.io import write_dicom_image

    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(yy, xx)
    write_dicom_image(path, np.where(r < radius, 0.0, -1000.0).astype(np.float32), 1.0, method="water disk")
    return r


def _assert_water_in_air(dcm: Path, r: np.ndarray, inside: float, outside: float) -> None:
    from ctflow.io import read_dicom_image

    hu = read_dicom_image(dcm).hu
    ring = (r > outside) & (r < r.shape[0] / 2 - 0.5)
    assert abs(np.median(hu[r < inside])) < 40, np.median(hu[r < inside])
    assert abs(np.median(hu[ring]) + 1000) < 60, np.median(hu[ring])


def test_simulate_stores_the_sinogram_units(tmp_path):
    from ctflow.io import read_sinogram_h5

    r = _water_disk_dicom(tmp_path / "disk.dcm", 28, 8)
    assert r.shape == (28, 28)
    assert main(["simulate", "--geometry", "parallel-28-sparse30", "--phantom", str(tmp_path / "disk.dcm"),
                 "--out", str(tmp_path / "mu.h5")]) == 0
    assert read_sinogram_h5(tmp_path / "mu.h5").attrs["units"] == "mu"  # DICOM HU → μ line integrals
    assert main(["simulate", "--geometry", "parallel-28-sparse30", "--phantom", "abdomen",
                 "--out", str(tmp_path / "w.h5")]) == 0
    assert read_sinogram_h5(tmp_path / "w.h5").attrs["units"] == "window"


@pytest.mark.parametrize("method,extra", [("fbp", []), ("cpigfm", ["--prior", "phantom-28", "--set", "steps=5"])])
def test_mu_sinogram_reconstructs_to_hu_through_the_cli(tmp_path, capsys, method, extra):
    """A water disk in air as μ line integrals (`ctflow simulate` from a HU image, so units=mu is stored):
    --units auto takes μ, and the DICOM output reads back ≈ 0 HU inside and ≈ −1000 HU outside."""
    r = _water_disk_dicom(tmp_path / "disk.dcm", 28, 8)
    scan = tmp_path / "scan.h5"
    assert main(["simulate", "--geometry", "parallel-28-sparse30", "--phantom", str(tmp_path / "disk.dcm"),
                 "--gaussian", "0.005", "--out", str(scan)]) == 0
    capsys.readouterr()
    out = tmp_path / "rec.dcm"
    assert main(["reconstruct", str(scan), "--method", method, *extra, "--out", str(out)]) == 0
    assert "units mu" in capsys.readouterr().out
    _assert_water_in_air(out, r, inside=6, outside=10.5)
    h5 = tmp_path / "rec.h5"
    assert main(["reconstruct", str(scan), "--method", method, *extra, "--units", "mu", "--out", str(h5)]) == 0
    im = read_image_h5(h5)
    assert im.attrs["units"] == "mu" and abs(np.median(im.image[r < 6]) - 0.0192) < 0.0192 * 0.04


def test_ctpd_input_is_mu_by_default(tmp_path, capsys):
    r = _water_disk_dicom(tmp_path / "disk.dcm", 64, 16)
    assert main(["simulate", "--geometry", "fan-64-sparse60", "--phantom", str(tmp_path / "disk.dcm"),
                 "--out", str(tmp_path / "ctpd")]) == 0
    out = tmp_path / "rec.dcm"
    assert main(["reconstruct", str(tmp_path / "ctpd"), "--method", "fbp", "--image-shape", "64",
                 "--out", str(out)]) == 0
    assert "units mu" in capsys.readouterr().out
    _assert_water_in_air(out, r, inside=12, outside=20)
    # the same μ data read as window units give no water at 0 HU: --units is what makes HU right
    assert main(["reconstruct", str(tmp_path / "ctpd"), "--method", "fbp", "--image-shape", "64", "--units",
                 "window", "--out", str(tmp_path / "wrong.dcm")]) == 0
    from ctflow.io import read_dicom_image

    assert abs(np.median(read_dicom_image(tmp_path / "wrong.dcm").hu[r < 12])) > 100


FBP_PRESET = "fbp--none--parallel-64-sparse30--gaussian-0.01"


def test_method_is_required(scans, capsys):
    d, _ = scans
    with pytest.raises(SystemExit) as e:
        main(["reconstruct", str(d / "s0.h5")])
    assert e.value.code == 2 and "--method" in capsys.readouterr().err


def test_nearest_shipped_preset_unless_options_are_set(scans, tmp_path, capsys):
    """Solvers by default: no --set → the nearest shipped preset (named on stdout and in the file);
    --set → the method's defaults plus those options; --preset none / NAME choose explicitly."""
    from ctflow.solvers.presets import load_preset

    d, _ = scans
    pre = load_preset(FBP_PRESET)
    out = tmp_path / "auto.h5"
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "fbp", "--out", str(out)]) == 0
    assert f"preset {FBP_PRESET}" in capsys.readouterr().out
    im = read_image_h5(out)
    assert im.params["preset"] == FBP_PRESET and im.params["filter"] == pre["options"]["filter"]
    assert im.params["frequency_scaling"] == pytest.approx(pre["options"]["frequency_scaling"])

    assert main(["reconstruct", str(d / "s0.h5"), "--method", "fbp", "--set", "filter=hann",
                 "--out", str(tmp_path / "set.h5")]) == 0
    assert "preset none (--set options given)" in capsys.readouterr().out
    im = read_image_h5(tmp_path / "set.h5")
    assert im.params["preset"] is None and im.params["filter"] == "hann" and im.params["frequency_scaling"] == 1.0

    assert main(["reconstruct", str(d / "s0.h5"), "--method", "fbp", "--preset", "none",
                 "--out", str(tmp_path / "none.h5")]) == 0
    assert "preset none (--preset none)" in capsys.readouterr().out
    assert read_image_h5(tmp_path / "none.h5").params["filter"] == "ram-lak"

    # a named preset with --set options on top
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "fbp", "--preset", FBP_PRESET, "--set",
                 "filter=hann", "--out", str(tmp_path / "named.h5")]) == 0
    assert f"preset {FBP_PRESET}" in capsys.readouterr().out
    im = read_image_h5(tmp_path / "named.h5")
    assert im.params["filter"] == "hann"
    assert im.params["frequency_scaling"] == pytest.approx(pre["options"]["frequency_scaling"])


def test_bad_presets_fail_before_reading(scans, tmp_path, capsys):
    d, _ = scans
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "tv", "--preset", FBP_PRESET,
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert "is for method 'fbp', not 'tv'" in capsys.readouterr().err
    assert main(["reconstruct", str(d / "s0.h5"), "--method", "fbp", "--preset", "nope",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert "no preset file or shipped preset named 'nope'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
