"""FBP: attenuation values recovered from exact data, agreement with ASTRA and ODL, filters, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ctflow
from ctflow import FanBeamGeometry, ParallelBeamGeometry, fbp, load_geometry
from ctflow.errors import FBPWarning, NonFiniteError, ShapeError
from ctflow.operators.fbp import FILTERS
from ctflow.operators.parker import parker_weights
from ctflow.physics.phantoms import analytic_sinogram, disk, ellipses_image, shepp_logan_ellipses

FULL_SCANS = {
    "parallel-180": ParallelBeamGeometry(128, 180, pixel_size=0.5),
    "parallel-360-over-2pi": ParallelBeamGeometry(128, np.arange(360) * 2 * np.pi / 360, pixel_size=0.5),
    "fan-flat-360": FanBeamGeometry(128, 360, 256, 467, pixel_size=0.5),
    "fan-curved-360": FanBeamGeometry(128, 360, 256, 467, pixel_size=0.5, detector_shape="curved"),
    "fan-curved-offset-360": FanBeamGeometry(128, 360, 256, 467, pixel_size=0.5, detector_shape="curved", detector_offset=0.6),
}


def _disk_stats(g, rec, r, c):
    X, Y = g.pixel_centers()
    d2 = (X - c[0]) ** 2 + (Y - c[1]) ** 2
    inside, outside = rec[d2 < (0.8 * r) ** 2], rec[d2 > (1.2 * r) ** 2]
    return inside.mean(), inside.std(), np.abs(outside).mean()


@pytest.mark.parametrize("name", list(FULL_SCANS))
def test_disk_attenuation_recovered(name):
    # Exact line integrals of an off-centre disk (μ = 0.02 /mm); FBP must return μ inside (mean
    # within 0.5 %, ripple < 2 %) and ~0 outside. The tolerances cover discretisation ripple only.
    g = FULL_SCANS[name]
    r, c, mu = 20.0, (4.0, -2.5), 0.02
    y = analytic_sinogram(disk(r, mu, c), g, detector_supersample=4)
    rec = fbp(y, g)
    mean, std, out = _disk_stats(g, rec, r, c)
    assert abs(mean - mu) < 0.005 * mu and std < 0.02 * mu and out < 0.01 * mu


@pytest.mark.parametrize("name", ["parallel-180", "fan-curved-360"])
def test_shepp_logan_values_recovered(name):
    # Modified Shepp–Logan: brain 1 − 0.8 = 0.2, ventricles 0.2 − 0.2 = 0.0, the upper blob 0.3.
    # Region means (eroded away from edges) within 0.01 absolute = 1 % of the full contrast.
    g = FULL_SCANS[name]
    ells = shepp_logan_ellipses(30.0)
    rec = fbp(analytic_sinogram(ells, g, detector_supersample=4), g)
    truth = ellipses_image(ells, g.image_shape, g.pixel_size, supersample=1).numpy()
    from scipy.ndimage import binary_erosion

    for value in (0.0, 0.2, 0.3):
        region = binary_erosion(np.isclose(truth, value), iterations=2) & (np.hypot(*g.pixel_centers()) < 27)
        assert region.sum() > 20
        assert abs(rec[region].mean() - value) < 0.01, (value, rec[region].mean())


def test_parallel_fbp_agrees_with_astra_fbp():
    import astra

    g = ParallelBeamGeometry(96, 120, pixel_size=0.5, detector_spacing=0.5)
    y = analytic_sinogram(shepp_logan_ellipses(22.0), g, detector_supersample=4).astype(np.float32)
    vol, pg = g.to_astra()
    for f in FILTERS:
        pid = astra.create_projector("linear", pg, vol)
        sid = astra.data2d.create("-sino", pg, y)
        rid = astra.data2d.create("-vol", vol, 0)
        cfg = astra.astra_dict("FBP")
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid, option={"FilterType": f})
        aid = astra.algorithm.create(cfg)
        try:
            astra.algorithm.run(aid)
            ref = astra.data2d.get(rid)
        finally:
            astra.algorithm.delete(aid)
            astra.data2d.delete([sid, rid])
            astra.projector.delete(pid)
        ours = fbp(y, g, filter=f)
        # Same discrete ramp, same back projector: agreement to float32 rounding.
        assert np.linalg.norm(ours - ref) < 1e-4 * np.linalg.norm(ref), f


def test_parallel_fbp_agrees_with_odl_fbp_op():
    import odl
    from odl.applications import tomo

    g = ParallelBeamGeometry(96, 120, pixel_size=0.5, detector_spacing=0.5)
    y = analytic_sinogram(shepp_logan_ellipses(22.0), g, detector_supersample=4)
    half = 96 * 0.5 / 2
    space = odl.uniform_discr([-half, -half], [half, half], (96, 96), dtype="float32")
    geo = tomo.Parallel2dGeometry(
        odl.nonuniform_partition(np.asarray(g.angles), min_pt=0, max_pt=np.pi),
        odl.uniform_partition(-g.n_detectors * 0.25, g.n_detectors * 0.25, g.n_detectors),
    )
    R = tomo.RayTransform(space, geo, impl="astra_cpu")
    # ODL stores images as [x, y]; ours are [row from the top, column] → flipud(odl.T).
    truth = ellipses_image(shepp_logan_ellipses(22.0), 96, 0.5).numpy()
    odl_sino = R(np.flipud(truth).T.copy()).asarray()
    assert np.linalg.norm(odl_sino - y) < 0.03 * np.linalg.norm(y)  # same geometry convention
    xo = np.flipud(tomo.fbp_op(R, filter_type="Ram-Lak")(R.range.element(y.astype(np.float32))).asarray().T)
    ours = fbp(y, g)
    # ODL samples |ω| on the padded FFT grid; we use the band-limited spatial ramp: ~2 % apart.
    assert np.linalg.norm(ours - xo) < 0.03 * np.linalg.norm(xo)


@pytest.mark.parametrize("f", FILTERS)
@pytest.mark.parametrize("scaling", [1.0, 0.6])
def test_every_filter_preserves_values(f, scaling):
    g = FULL_SCANS["fan-flat-360"]
    r, c, mu = 20.0, (4.0, -2.5), 0.02
    rec = fbp(torch.from_numpy(analytic_sinogram(disk(r, mu, c), g, 4)), g, filter=f, frequency_scaling=scaling)
    assert isinstance(rec, torch.Tensor) and rec.dtype == torch.float64
    mean, std, _ = _disk_stats(g, rec.numpy(), r, c)
    assert abs(mean - mu) < 0.005 * mu and std < 0.02 * mu


def test_windows_smooth_noise():
    g = load_geometry("parallel-64-sparse90")
    noise = torch.randn(g.sinogram_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stds = [float(fbp(noise, g, filter=f).std()) for f in ("ram-lak", "shepp-logan", "cosine", "hann")]
    assert stds == sorted(stds, reverse=True)  # each window removes more high-frequency noise
    assert float(fbp(noise, g, frequency_scaling=0.5).std()) < stds[0]


def test_short_scan_parker():
    base = FanBeamGeometry(128, 360, 256, 467, pixel_size=0.5, detector_shape="curved")
    half_fan = float(np.abs(base.fan_angles()).max())
    span = np.pi + 2 * half_fan + 0.05
    g = base.replace(angles=0.7 + np.arange(300) * span / 300)
    w = parker_weights(g)
    assert w.min() >= 0 and w.max() <= 1
    r, c, mu = 20.0, (4.0, -2.5), 0.02
    rec = fbp(analytic_sinogram(disk(r, mu, c), g, 4), g)
    mean, std, out = _disk_stats(g, rec, r, c)
    assert abs(mean - mu) < 0.01 * mu and std < 0.03 * mu and out < 0.02 * mu


def test_too_short_fan_scan_warns():
    g = FanBeamGeometry(64, np.linspace(0, np.pi / 2, 60, endpoint=False), 256, 467)
    with pytest.warns(FBPWarning, match="less than a short scan"):
        fbp(np.zeros(g.sinogram_shape, np.float32), g)


def test_fbp_batches_and_types():
    g = load_geometry("fan-64-sparse60")
    y = torch.rand(2, 3, *g.sinogram_shape, generator=torch.Generator().manual_seed(1))
    x = fbp(y, g)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    torch.testing.assert_close(x[1, 2], fbp(y[1, 2], g), rtol=1e-5, atol=1e-6)
    xn = fbp(y[0, 0].numpy(), "fan-64-sparse60")
    assert isinstance(xn, np.ndarray) and xn.shape == (64, 64)


def test_fbp_bad_input():
    g = load_geometry("parallel-64-sparse30")
    with pytest.raises(ShapeError, match=r"expects \(\.\.\., 30, 92\).*transpose"):
        fbp(np.zeros((92, 30)), g)
    y = np.zeros(g.sinogram_shape)
    y[1, 1] = np.nan
    with pytest.raises(NonFiniteError, match="NaN/Inf"):
        fbp(y, g)
    with pytest.raises(ValueError, match="unknown FBP filter"):
        fbp(np.zeros(g.sinogram_shape), g, filter="butterworth")
    with pytest.raises(ValueError, match="frequency_scaling"):
        fbp(np.zeros(g.sinogram_shape), g, frequency_scaling=0.0)
    with pytest.raises(ctflow.GeometryError, match="does not have the sinogram's geometry"):
        fbp(np.zeros(g.sinogram_shape), g, operator=ctflow.RayTransform("parallel-64-sparse60"))
