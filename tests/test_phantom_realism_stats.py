"""The statistics of tools/phantom_realism.py against independent oracles (analytic values, plain
numpy re-computations). No network, no real CT files, no phantoms: numpy and scipy only."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "phantom_realism.py"
_spec = importlib.util.spec_from_file_location("phantom_realism", _PATH)
pr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pr)

N = 64


@pytest.mark.parametrize("window", ["hann", None])
@pytest.mark.parametrize(("kx", "ky"), [(8, 0), (0, 13), (6, 8)])
def test_spectrum_of_a_cosine_peaks_at_its_frequency(window, kx, ky):
    yy, xx = np.mgrid[:N, :N]
    img = 0.3 + 0.2 * np.cos(2 * np.pi * (kx * xx + ky * yy) / N + 0.7)
    freqs, power = pr.radial_power_spectrum(img, window=window)
    assert freqs.shape == power.shape == (N // 2,)
    np.testing.assert_allclose(freqs, np.arange(1, N // 2 + 1) / N)
    f0 = math.hypot(kx, ky) / N
    assert freqs[np.argmax(power)] == pytest.approx(f0)
    # nearly all of the power sits at (or, with the Hann window, right next to) that ring
    near = np.abs(freqs - f0) <= 1.5 / N
    assert power[near].sum() > 0.99 * power.sum()


@pytest.mark.parametrize("window", ["hann", None])
def test_spectrum_of_white_noise_is_flat_at_its_variance(window):
    rng = np.random.default_rng(1)
    s = 0.05
    spectra = np.array([pr.radial_power_spectrum(rng.normal(0.5, s, (N, N)), window=window)[1] for _ in range(60)])
    mean = spectra.mean(axis=0)
    # normalisation: expected power s^2 at every frequency
    assert mean[2:].mean() == pytest.approx(s**2, rel=0.03)
    # flat: rings 2.. (ring 1 averages only 8 bins) within 15 % of s^2, no trend with frequency
    np.testing.assert_allclose(mean[1:], s**2, rtol=0.15)
    lo, hi = mean[1:11].mean(), mean[-10:].mean()
    assert hi / lo == pytest.approx(1.0, abs=0.1)


def test_high_freq_fraction_white_noise_and_smooth_image():
    rng = np.random.default_rng(2)
    frac = np.mean([pr.high_freq_fraction(rng.normal(size=(N, N))) for _ in range(20)])
    # share of the frequency square [-1/2, 1/2]^2 outside the disc of radius 1/4
    assert frac == pytest.approx(1 - math.pi / 16, abs=0.02)
    yy, xx = np.mgrid[:N, :N]
    assert pr.high_freq_fraction(np.cos(2 * np.pi * 4 * xx / N)) < 1e-3
    assert pr.high_freq_fraction(np.cos(2 * np.pi * 24 * yy / N)) > 0.99
    assert math.isnan(pr.high_freq_fraction(np.full((N, N), 0.4)))


@pytest.mark.parametrize(("a", "b"), [(0.01, 0.0), (-0.003, 0.0), (0.02, -0.005)])
def test_tv_per_pixel_of_a_ramp_is_its_slope(a, b):
    yy, xx = np.mgrid[:N, :N]
    img = 0.2 + a * xx + b * yy
    assert pr.tv_per_pixel(img) == pytest.approx(abs(a) + abs(b), rel=1e-9)
    # a mask does not change a ramp's value; pairs leaving the mask do not count
    mask = np.zeros((N, N), bool)
    mask[10:30, 5:50] = True
    img2 = img.copy()
    img2[~mask] = 7.0
    assert pr.tv_per_pixel(img2, mask) == pytest.approx(abs(a) + abs(b), rel=1e-9)
    assert math.isnan(pr.tv_per_pixel(img, np.zeros((N, N), bool)))


def test_tv_per_pixel_matches_a_loop():
    rng = np.random.default_rng(3)
    img = rng.random((12, 9))
    mask = rng.random((12, 9)) > 0.3
    dx = [abs(img[i, j + 1] - img[i, j]) for i in range(12) for j in range(8) if mask[i, j] and mask[i, j + 1]]
    dy = [abs(img[i + 1, j] - img[i, j]) for i in range(11) for j in range(9) if mask[i, j] and mask[i + 1, j]]
    assert pr.tv_per_pixel(img, mask) == pytest.approx(np.mean(dx) + np.mean(dy))


def test_gradient_magnitudes_of_a_ramp():
    yy, xx = np.mgrid[:N, :N]
    g = pr.gradient_magnitudes(0.03 * xx + 0.04 * yy)
    assert g.shape == ((N - 1) ** 2,)
    np.testing.assert_allclose(g, 0.05)


@pytest.mark.parametrize("s", [0.02, 0.3])
def test_local_variance_of_white_noise_is_its_variance(s):
    """Estimator: the sample variance (k^2 / (k^2 - 1) correction) of each 5x5 window, averaged."""
    rng = np.random.default_rng(4)
    img = rng.normal(0.4, s, (128, 128))
    mask = pr.erode(np.ones(img.shape, bool), 2)  # windows inside the image (no reflected borders)
    assert pr.local_variance(img, mask, k=5) == pytest.approx(s**2, rel=0.05)
    # the plain window variance is low by exactly 24/25
    biased = pr.local_variance(img, mask, k=5, unbiased=False)
    assert biased == pytest.approx(pr.local_variance(img, mask, k=5) * 24 / 25)


def test_local_variance_map_matches_a_direct_window():
    rng = np.random.default_rng(5)
    img = rng.random((20, 20))
    vm = pr.local_variance_map(img, k=5)
    for r, c in [(2, 2), (10, 7), (17, 17)]:
        assert vm[r, c] == pytest.approx(np.var(img[r - 2 : r + 3, c - 2 : c + 3], ddof=1))
    # a constant region, a step outside the mask: zero inside the eroded mask
    step = np.zeros((20, 20))
    step[:, 10:] = 1.0
    mask = pr.erode(step == 0, 2)
    assert mask.any() and pr.local_variance(step, mask) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(pr.local_variance(step, np.zeros((20, 20), bool)))


def _erode_oracle(mask, p):
    h, w = mask.shape
    out = np.zeros_like(mask)
    for r in range(p, h - p):
        for c in range(p, w - p):
            out[r, c] = mask[r - p : r + p + 1, c - p : c + p + 1].all()
    return out


def test_masks():
    hu = np.full((24, 24), -1000.0)
    hu[2:20, 3:21] = 50.0
    hu[9:13, 9:13] = 400.0
    assert pr.body_mask(hu).sum() == 18 * 18
    soft = pr.soft_tissue_mask(hu)
    np.testing.assert_array_equal(soft, _erode_oracle((hu >= 0) & (hu <= 100), 2))
    assert soft.any() and (hu[soft] == 50).all()
    assert pr.soft_tissue_mask(hu, erode_px=0).sum() == 18 * 18 - 16
    labels = np.zeros((20, 20), np.uint8)
    labels[2:9, 2:18] = 1
    labels[9:18, 2:18] = 2  # touching label 1: each is eroded on its own, so no window straddles them
    m = pr.label_mask(labels, [1, 2], erode_px=2)
    assert m.sum() == 3 * 12 + 5 * 12
    assert not m[7:11].any()
