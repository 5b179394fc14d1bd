"""Noise models (seeded, right statistics), phantoms, and metrics against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctflow import metrics, noise, phantoms
from ctflow.errors import NonFiniteError, ShapeError


# ---- noise --------------------------------------------------------------------------------
def test_gaussian_noise_seeded_and_scaled():
    y = torch.linspace(0, 50, 200 * 300, dtype=torch.float64).reshape(2, 1, 200, 150)
    a = noise.add_gaussian_noise(y, relative_sigma=0.01, seed=3)
    b = noise.add_gaussian_noise(y, relative_sigma=0.01, seed=3)
    c = noise.add_gaussian_noise(y, relative_sigma=0.01, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # σ = 1 % of *each* sinogram's max (25 and 50): empirical std within 2 % (n = 30000 each)
    std = (a - y).std(dim=(-2, -1)).ravel()
    expected = 0.01 * y.amax(dim=(-2, -1)).ravel()
    assert expected[0] < 0.6 * expected[1]
    assert torch.allclose(std, expected, rtol=0.02)
    d = noise.GaussianNoise(sigma=2.0)(y.numpy(), seed=0)
    assert isinstance(d, np.ndarray) and abs((d - y.numpy()).std() - 2.0) < 0.03
    assert a.dtype == torch.float64 and a.shape == y.shape


def test_poisson_noise_statistics():
    # counts ~ Poisson(I0 e^{-y}); post-log y' = -log(N/I0): mean ≈ y, var ≈ e^{y}/I0 (delta method)
    y = torch.full((400, 500), 1.5, dtype=torch.float64)
    model = noise.PoissonNoise(I0=1e4)
    out = model(y, seed=1)
    assert abs(float(out.mean()) - 1.5) < 5e-3
    assert abs(float(out.var()) / (math.exp(1.5) / 1e4) - 1) < 0.03
    assert torch.equal(out, model(y, seed=1)) and not torch.equal(out, model(y, seed=2))
    # mu_scale converts image units: y in "0.02 per mm" units behaves like k·y
    scaled = noise.PoissonNoise(I0=1e4, mu_scale=50.0)(y / 50.0, seed=1)
    torch.testing.assert_close(scaled * 50.0, out)
    # photon starvation: zero counts are clamped, never -log(0) = inf
    starved = noise.add_poisson_noise(torch.full((10, 10), 40.0), I0=100.0, seed=0)
    assert torch.isfinite(starved).all() and float(starved.max()) == pytest.approx(-math.log(0.5 / 100.0), rel=1e-6)


def test_noise_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        noise.GaussianNoise()
    with pytest.raises(ValueError, match="finite and ≥ 0"):
        noise.GaussianNoise(sigma=-1.0)
    with pytest.raises(ValueError, match="I0 must be a positive"):
        noise.PoissonNoise(I0=0)
    with pytest.raises(NonFiniteError):
        noise.add_gaussian_noise(torch.tensor([[float("nan")]]), sigma=1.0)


# ---- phantoms -----------------------------------------------------------------------------
def test_rasterised_disk_area_and_value():
    img = phantoms.ellipses_image(phantoms.disk(20.0, 0.5, (3.0, -4.0)), 64, pixel_size=1.0, supersample=8)
    assert abs(float(img.sum()) / 0.5 - math.pi * 400) < 0.003 * math.pi * 400
    assert float(img.max()) == pytest.approx(0.5)
    # orientation: centre (x=3, y=-4) → column 31.5+3, row 31.5+4 (row 0 at the top)
    rows, cols = np.nonzero(img.numpy() > 0.25)
    assert abs(rows.mean() - 35.5) < 0.1 and abs(cols.mean() - 34.5) < 0.1


def test_shepp_logan_phantom():
    sl = phantoms.shepp_logan(128)
    assert sl.shape == (128, 128) and sl.dtype == torch.float32
    assert float(sl.min()) >= -1e-6 and float(sl.max()) == pytest.approx(1.0)
    assert float(sl[64, 64]) == pytest.approx(0.2, abs=1e-6)  # brain tissue at the centre
    assert float(phantoms.shepp_logan(64, modified=False).max()) == pytest.approx(2.0)
    from ctflow import load_geometry

    assert phantoms.shepp_logan(load_geometry("fan-64-sparse60")).shape == (64, 64)


def test_random_ellipses_seeded_and_inside():
    a = phantoms.random_ellipses(seed=5, radius=30.0)
    assert a == phantoms.random_ellipses(seed=5, radius=30.0)
    assert a != phantoms.random_ellipses(seed=6, radius=30.0)
    img = phantoms.ellipses_image(a, 64)
    X, Y = np.meshgrid(np.arange(64) - 31.5, 31.5 - np.arange(64))
    assert float(np.abs(img.numpy()[np.hypot(X, Y) > 31]).max()) == 0.0  # nothing outside the radius


# ---- metrics ------------------------------------------------------------------------------
def test_metrics_closed_forms():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 48, 48, generator=g, dtype=torch.float64)
    x = ref + 0.05 * torch.randn(3, 48, 48, generator=g, dtype=torch.float64)
    mse = ((x - ref) ** 2).mean(dim=(-2, -1)).numpy()
    np.testing.assert_allclose(metrics.psnr(x, ref, data_range=1.0), 10 * np.log10(1.0 / mse), rtol=1e-10)
    np.testing.assert_allclose(metrics.rmse(x, ref), np.sqrt(mse), rtol=1e-12)
    assert metrics.psnr(x[0], ref[0], data_range=1.0) == pytest.approx(10 * np.log10(1 / mse[0]))
    assert metrics.ssim(ref[0], ref[0], data_range=1.0) == pytest.approx(1.0)
    s_small = metrics.ssim(ref[0] + 0.01 * torch.randn(48, 48, generator=g, dtype=torch.float64), ref[0], data_range=1.0)
    s_big = metrics.ssim(x[0], ref[0], data_range=1.0)
    assert 1.0 > s_small > s_big > 0.0
    assert metrics.ssim(x, ref, data_range=1.0).shape == (3,)


def test_metrics_errors():
    with pytest.raises(ShapeError, match="same shape"):
        metrics.psnr(np.zeros((8, 8)), np.zeros((9, 9)))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(np.zeros((8, 8)), np.zeros((8, 8)))
