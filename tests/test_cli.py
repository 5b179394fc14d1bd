"""The command line: geometry listing and the demo (quick mode)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ctflow import geometry_from_dict, load_geometry
from ctflow.cli import main


def test_geometries_lists_presets(capsys):
    assert main(["geometries"]) == 0
    out = capsys.readouterr().out
    for name in ("parallel-28-sparse8", "parallel-256-sparse180", "fan-512-clinical", "parallel-64-limited90"):
        assert name in out
    assert main(["geometries", "-v"]) == 0
    assert "sinogram 2304x736" in capsys.readouterr().out


def test_geometries_show_round_trips(capsys):
    assert main(["geometries", "--show", "fan-64-sparse60"]) == 0
    g = geometry_from_dict(yaml.safe_load(capsys.readouterr().out))
    assert g == load_geometry("fan-64-sparse60")


def test_unknown_geometry_is_a_clean_error(capsys):
    assert main(["geometries", "--show", "parallel-65-sparse30"]) == 2
    err = capsys.readouterr().err
    assert "unknown geometry 'parallel-65-sparse30'" in err and "Traceback" not in err


def test_demo_quick_writes_outputs(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    png = tmp_path / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "metrics.json").read_text())
    psnr = {(r["geometry"], r["filter"]): r["psnr_db"] for r in summary["results"]}
    # more views → better FBP; the Hann window beats Ram-Lak on noisy sparse data
    assert psnr[("parallel-64-sparse180", "ram-lak")] > psnr[("parallel-64-sparse30", "ram-lak")] + 3
    assert psnr[("parallel-64-sparse30", "hann")] > psnr[("parallel-64-sparse30", "ram-lak")]
    rec = np.load(tmp_path / "fbp_fan-64-sparse60_hann.npy")
    assert rec.shape == (64, 64) and np.isfinite(rec).all()
    # the flow part: bundled sinogram, default prior, FBP vs TV vs MS-Flow vs C-ΠGFM
    flow = {r["method"]: r for r in summary["flow"]["results"]}
    assert {"FBP (Hann)", "TV", "MS-Flow", "C-ΠGFM"} <= set(flow)
    assert flow["TV"]["psnr_db"] > flow["FBP (Hann)"]["psnr_db"]
    assert all(r["psnr_db"] > 20 for r in flow.values()) and flow["MS-Flow"]["nfe"] > 0
    from ctflow.io import read_dicom_image, read_image_h5

    assert read_image_h5(tmp_path / "msflow.h5").image.shape == (64, 64)
    assert read_dicom_image(tmp_path / "msflow.dcm").hu.shape == (64, 64)
    assert (tmp_path / "fbp_geometries.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


def test_info(capsys):
    assert main(["info"]) == 0
    assert "astra-toolbox" in capsys.readouterr().out


def test_missing_command_exits():
    with pytest.raises(SystemExit):
        main([])
