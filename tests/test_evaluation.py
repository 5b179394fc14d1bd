"""Evaluation sets, simulated measurements and scoring (ctflow.studies.evaluation) and the quality study script."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import ctflow
from ctflow.errors import DataError
from ctflow.studies.evaluation import NoiseSetting, eval_images, measure, run_method, scores


def test_phantom_eval_set_is_deterministic_and_in_range():
    a, b = eval_images(3, 32), eval_images(3, 32)
    assert a.shape == (3, 1, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, eval_images(3, 32, seed=7))


def test_npz_and_dicom_sources(tmp_path):
    from ctflow.data.abdomen import write_phantom_npz
    from ctflow.io import write_dicom_series

    npz = write_phantom_npz(tmp_path / "p.npz", 2, 2, 3, size=28, seed=5, kind="coronal")
    imgs = eval_images(3, 64, npz)
    with np.load(npz) as f:
        ref = f["test_images"][:3].astype(np.float32) / 255.0
    assert imgs.shape == (3, 1, 64, 64)
    np.testing.assert_allclose(imgs[:, 0].mean((1, 2)).numpy(), ref.mean((1, 2)), atol=0.02)  # resized, same content
    with pytest.raises(DataError, match="only 3 images"):
        eval_images(5, 28, npz)

    hu = np.stack([np.full((40, 40), -160.0), np.full((40, 40), 40.0), np.full((40, 40), 240.0)])
    write_dicom_series(tmp_path / "dcm", hu, 1.0)
    d = eval_images(3, 40, tmp_path / "dcm")
    means = sorted(float(v) for v in d.mean((1, 2, 3)))
    np.testing.assert_allclose(means, [0.0, 0.5, 1.0], atol=1e-6)  # L40/W400 window → [0, 1]
    with pytest.raises(DataError, match="phantoms"):
        eval_images(2, 32, tmp_path / "nothing.txt")


def test_noise_settings_and_measure():
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(24, 12))
    x = eval_images(4, 24)
    g = NoiseSetting("gaussian", 0.02)
    clean, noisy = measure(x, op, g, seed=1)
    assert clean.shape == noisy.shape == (4, 1, 12, op.range_shape[1])
    rel = float((noisy - clean).std() / clean.abs().amax())
    assert 0.01 < rel < 0.03
    _, again = measure(x, op, g, seed=1)
    assert torch.equal(noisy, again)
    assert g.sigma(clean) == pytest.approx(0.02 * float(clean.abs().amax()))
    p = NoiseSetting("poisson", 1e4, mu_scale=0.05)
    clean, noisy = measure(x, op, p, seed=0)
    emp = float((noisy - clean).pow(2).mean().sqrt())
    assert p.sigma(clean) == pytest.approx(emp, rel=0.15)  # the delta-method σ the likelihood uses
    assert "poisson" in p.label and "gaussian" in g.label


def test_run_method_scores_every_image():
    op = ctflow.RayTransform("parallel-28-sparse30")
    x = eval_images(3, 28)
    _, y = measure(x, op, NoiseSetting("gaussian", 0.01))
    res = run_method("tv", y, op, x, label="TV", iterations=100)
    fbp = run_method("fbp", y, op, x, filter="hann")
    assert res.images.shape == (3, 1, 28, 28) and len(res.psnr) == len(res.ssim) == 3
    assert res.row()["psnr_mean"] > fbp.row()["psnr_mean"]
    p, s = scores(x, x)
    assert np.isinf(p).all() or (p > 90).all()
    assert np.allclose(s, 1.0)


def test_quality_benchmark_script_runs(tmp_path):
    out = tmp_path / "q"
    r = subprocess.run(
        [sys.executable, "-m", "ctflow.studies.quality", "--prior", "phantom-28", "--angles", "8",
         "--n-images", "2", "--methods", "fbp,tv,cpigfm", "--out", str(out), "--threads", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "C-ΠGFM (5 NFE)" in r.stdout and "TV" in r.stdout and "comparisons:" in r.stdout
    md = (out / "quality.md").read_text()
    assert "| TV |" in md and "8 angles" in md
    rows = (out / "quality.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # header + FBP, TV, C-ΠGFM 5 and 10 NFE
    assert (out / "psnr_vs_angles.png").stat().st_size > 1000 and (out / "examples_8.png").exists()


def test_comparisons_report_differences_without_judgement():
    from ctflow.studies.quality import comparisons

    def row(method, psnr, t, nfe=0):
        return {"method": method, "psnr_mean": psnr, "time_per_image_s": t, "nfe": nfe}

    rows = [row("FBP (hann)", 26.0, 0.001), row("TV", 30.0, 0.1), row("D-Flow", 27.0, 40.0, 600),
            row("MS-Flow", 28.5, 10.0, 400), row("ΠGFM (100 NFE)", 29.0, 5.0, 100),
            row("C-ΠGFM (5 NFE)", 28.0, 0.25, 5), row("OT-ODE (100 NFE)", 27.5, 5.0, 100)]
    lines = comparisons(rows)
    text = "\n".join(lines)
    assert lines[0] == ("best flow method: ΠGFM (100 NFE) 29.00 dB, -1.00 dB vs TV (30.00 dB), "
                        "+3.00 dB vs FBP (hann) (26.00 dB)")
    assert "MS-Flow vs D-Flow: 28.50 vs 27.00 dB (+1.50 dB), 4.0× faster" in lines
    assert "C-ΠGFM (5 NFE) vs ΠGFM (100 NFE): 28.00 vs 29.00 dB (-1.00 dB), 20.0× faster" in lines
    assert "C-ΠGFM (5 NFE) vs OT-ODE (100 NFE): 28.00 vs 27.50 dB (+0.50 dB), 20.0× faster" in lines
    for word in ("PASS", "MISS", "target", "≥", "≤"):
        assert word not in text
    assert comparisons([row("TV", 30.0, 0.1)]) == []
