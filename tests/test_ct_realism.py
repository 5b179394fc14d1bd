"""Phantoms v2 (ctflow.data.abdomen.texture): same anatomy as v1, more fine structure, FBP-shaped grain."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctflow.data.abdomen import LABELS, AbdomenPhantom, abdomen_slice, coronal_crop, texture


def test_v2_keeps_the_anatomy_of_v1_and_is_deterministic():
    for seed in (3, 8, 21):
        a1, l1 = abdomen_slice(seed, 64, return_labels=True)
        a2, l2 = abdomen_slice(seed, 64, return_labels=True, version=2)
        assert np.array_equal(l1, l2)  # the label map (anatomy) is drawn before the v2 steps
        assert not np.array_equal(a1, a2)
        assert np.array_equal(a2, abdomen_slice(seed, 64, version=2))
    c1, lab1 = coronal_crop(5, 64)
    c2, lab2 = coronal_crop(5, 64, version=2)
    assert lab1 == lab2 and np.array_equal(c2, coronal_crop(5, 64, version=2)[0])


def _high_pass_energy(img):
    lap = img[1:-1, 1:-1] * 4 - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
    return lap


def test_v2_has_more_fine_structure_inside_organs():
    ratios = []
    for seed in range(10):
        h1, lab = abdomen_slice(2 * seed, 64, hu=True, return_labels=True)
        h2 = abdomen_slice(2 * seed, 64, hu=True, version=2)
        inner = ndimage.binary_erosion((lab == LABELS["liver"]) | (lab == LABELS["subcutaneous_fat"]), iterations=2)
        inner = inner[1:-1, 1:-1]  # organ interiors, away from edges
        if inner.sum() < 30:
            continue
        ratios.append(_high_pass_energy(h2)[inner].std() / _high_pass_energy(h1)[inner].std())
    assert len(ratios) >= 5 and np.median(ratios) > 2.0 and min(ratios) > 1.1


def test_segment_coverage_matches_the_distance_to_the_segment():
    seg = np.array([[10.0, 5.0, 10.0, 25.0, 1.0]], np.float32)  # horizontal segment at row 10, radius 1
    rows = np.array([10, 11, 12, 13, 10, 10], np.float32)
    cols = np.array([15, 15, 15, 15, 27, 30], np.float32)
    d = np.array([0.0, 1.0, 2.0, 3.0, 2.0, 5.0])  # perpendicular / beyond-the-end distances
    expected = np.clip(1.0 + 0.5 - d, 0, 1)
    np.testing.assert_allclose(texture._segment_coverage(rows, cols, seg), expected, atol=1e-6)


def test_recon_grain_has_the_ramp_spectrum_of_fbp_noise():
    """Radially averaged power of the grain rises like |f| (FBP's ramp) below the apodised cut-off."""
    rng = np.random.default_rng(0)
    n = 128
    acc = np.zeros((n, n))
    for _ in range(40):
        g = texture.add_recon_grain(np.zeros((n, n), np.float32), rng, probability=1.0, sigma_hu=(1.0, 1.0))
        acc += np.abs(np.fft.fft2(g)) ** 2
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    low = acc[(f > 0.04) & (f < 0.06)].mean()
    mid = acc[(f > 0.12) & (f < 0.14)].mean()
    # ramp × cos² window: P(f) ∝ f · ¼(1 + cos(π f / fc))², fc ∈ [0.35, 0.5]
    for fc in (0.35, 0.5):
        w = lambda x: x * (1 + np.cos(np.pi * x / fc)) ** 2  # noqa: E731
        expected = w(0.13) / w(0.05)
        assert 0.75 * min(expected, 2.2) < mid / low < 1.25 * max(expected, 2.4)
    assert acc[(f > 0.499)].mean() < 1e-3 * mid  # nothing at Nyquist: the apodisation cuts it
    assert np.isclose(g.std(), 1.0, rtol=1e-3)


def test_phantom_version_is_validated():
    with pytest.raises(ValueError, match="version"):
        AbdomenPhantom(64, version=3)
    with pytest.raises(ValueError, match="version"):
        abdomen_slice(0, 64, version=0)
