"""The sinogram noise estimator (:mod:`ctflow.solvers.noise_estimate`) against the true σ of simulated noise.

The estimator sees only the noisy sinogram. Where the noise dominates the object's own fine detail along
the detector (smooth objects; σ ≥ 2 % of max|y| for the procedural phantoms) it is within 10 % of the true
σ for Gaussian and post-log Poisson noise at 16–180 views; at 8 views (few detector blocks) it measured
0.80–1.14 of the true σ on the smooth objects (xfail, kept visible). At 0.5–1 % on the detailed axial phantoms the
object's edges leak into the high-pass and it over-estimates (measured 1.2–2×; the xfail below keeps that
visible): presets are tuned with the *estimated* σ, so ``reconstruct`` stays consistent with them.
"""

from __future__ import annotations

import pytest
import torch

from ctflow.geometry import load_geometry
from ctflow.operators import RayTransform
from ctflow.solvers.noise_estimate import estimate_noise_std, resolve_noise_std
from ctflow.studies.evaluation import NoiseSetting

VIEWS = (8, 16, 30, 60, 180)


@pytest.fixture(scope="module")
def smooth_images():
    """Smooth test objects (Gaussian blobs: one wide, one narrow and off-centre, one elongated pair), 64²."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    a = torch.exp(-((xx - 30) ** 2 + (yy - 34) ** 2) / 300.0)
    b = 0.8 * torch.exp(-((xx - 40) ** 2 + (yy - 25) ** 2) / 60.0)
    c = 0.6 * torch.exp(-((xx - 24) ** 2) / 40.0 - ((yy - 32) ** 2) / 250.0) + 0.4 * torch.exp(-((xx - 44) ** 2 + (yy - 40) ** 2) / 30.0)
    return torch.stack([a, b, c])[:, None]


@pytest.mark.parametrize("views", [pytest.param(8, marks=pytest.mark.xfail(
    reason="8 views: 8 × 11 blocks; measured 0.80–1.14 of the true σ on these objects", strict=False))] + list(VIEWS[1:]))
@pytest.mark.parametrize("noise", [NoiseSetting("gaussian", 0.01), NoiseSetting("gaussian", 0.02), NoiseSetting("poisson", 1e4)],
                         ids=["gauss1%", "gauss2%", "poisson1e4"])
def test_estimate_within_10_percent(smooth_images, views, noise):
    op = RayTransform(load_geometry(f"parallel-64-sparse{views}"))
    clean = op(smooth_images)
    for i in range(clean.shape[0]):
        for seed in (0, 1):
            y = noise.apply(clean[i], seed=100 * i + seed)
            est = float(estimate_noise_std(y))
            true = noise.sigma(clean[i])
            assert est == pytest.approx(true, rel=0.10), (views, noise.label, i, est / true)


@pytest.mark.parametrize("views", (16, 30, 180))
def test_detailed_phantoms_at_2_percent(views):
    from ctflow.data.abdomen import AbdomenPhantomDataset

    ds = AbdomenPhantomDataset(4, size=64, seed=31337, kind="coronal")
    x = torch.stack([ds[i][0] for i in range(4)]).float()
    op = RayTransform(load_geometry(f"parallel-64-sparse{views}"))
    clean = op(x)
    noise = NoiseSetting("gaussian", 0.02)
    for i in range(4):
        est = float(estimate_noise_std(noise.apply(clean[i], seed=i)))
        assert est == pytest.approx(noise.sigma(clean[i]), rel=0.10)


@pytest.mark.xfail(reason="object detail leaks into the detector high-pass at 0.5 % on axial phantoms (over-estimate)",
                   strict=False)
def test_detailed_axial_phantoms_at_half_percent():
    """Known limit (module docstring of ctflow.solvers.noise_estimate): kept visible as an xfail."""
    from ctflow.data.abdomen import AbdomenPhantomDataset

    ds = AbdomenPhantomDataset(2, size=64, seed=31337, kind="axial")
    x = torch.stack([ds[i][0] for i in range(2)]).float()
    clean = RayTransform(load_geometry("parallel-64-sparse30"))(x)
    noise = NoiseSetting("gaussian", 0.005)
    for i in range(2):
        assert float(estimate_noise_std(noise.apply(clean[i], seed=i))) == pytest.approx(noise.sigma(clean[i]), rel=0.10)


def test_shapes_batches_and_errors():
    y = torch.randn(3, 1, 30, 92)
    s = estimate_noise_std(y)
    assert s.shape == (3, 1) and torch.allclose(s, torch.ones(3, 1, dtype=s.dtype), rtol=0.1)
    assert estimate_noise_std(y[0, 0]).shape == ()
    from ctflow.errors import ConfigError, ShapeError

    with pytest.raises(ShapeError):
        estimate_noise_std(torch.randn(30, 5))
    sig, src = resolve_noise_std([0.1, 0.2, 0.3], y)
    assert src == "given" and sig.shape == (3, 1, 1, 1)
    with pytest.raises(ConfigError, match="3 sinograms"):
        resolve_noise_std([0.1, 0.2], y)
    with pytest.warns(UserWarning, match="estimated"):
        _, src = resolve_noise_std(None, y)
    assert src == "estimated"
