"""Geometry values: validation, equality, serialisation, presets, and agreement with ASTRA's conventions."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

import ctflow
from ctflow import FanBeamGeometry, GeometryError, ParallelBeamGeometry, load_geometry
from ctflow.errors import DetectorCoverageWarning
from ctflow.geometry import angle_weights, geometry_from_dict, list_geometries


def test_defaults_and_derived_values():
    g = ParallelBeamGeometry(64, 30)
    assert g.image_shape == (64, 64) and g.n_angles == 30
    assert g.angles[0] == 0.0 and math.isclose(g.angles[1], math.pi / 30)
    assert g.n_detectors == math.ceil(64 * math.sqrt(2)) + 1  # covers the diagonal
    assert g.detector_spacing == g.pixel_size == 1.0
    f = FanBeamGeometry(64, 10, 256, 467)
    assert math.isclose(f.angles[-1], 2 * math.pi * 9 / 10)  # a count means a full circle for fan beam
    assert math.isclose(f.detector_spacing, 467 / 256)  # one pixel per element at the isocentre
    assert f.fov_radius >= f.image_radius


def test_immutable_equal_hashable():
    a = ParallelBeamGeometry(32, 10, name="a")
    b = ParallelBeamGeometry((32, 32), np.arange(10) * math.pi / 10)
    assert a == b and hash(a) == hash(b)  # the name is a label, not physics
    assert a != a.replace(pixel_size=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.pixel_size = 2.0  # type: ignore[misc]
    assert a.fingerprint() == b.fingerprint() != a.replace(detector_offset=0.1).fingerprint()
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "g",
    [
        ParallelBeamGeometry((30, 40), [0.1, 0.5, 2.0], pixel_size=0.7, n_detectors=80, detector_offset=0.3, name="x"),
        FanBeamGeometry(64, 33, 300, 520.5, detector_shape="curved", detector_offset=-0.4),
        load_geometry("fan-512-clinical-sparse64"),
    ],
)
def test_round_trips(g, tmp_path):
    assert geometry_from_dict(g.to_dict()) == g
    for suffix in (".json", ".yaml"):
        path = g.save(tmp_path / f"geom{suffix}")
        h = load_geometry(path)
        assert h == g and h.angles == g.angles  # bit-exact floats
    assert "Geometry(" in repr(g) and "angles in" in repr(g)


def test_repr_is_concise():
    r = repr(load_geometry("parallel-64-sparse30"))
    assert r.startswith("ParallelBeamGeometry(name='parallel-64-sparse30'") and "30 angles in [0°, 174°]" in r
    assert len(repr(load_geometry("fan-512-clinical"))) < 400  # 2304 angles are summarised


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_shape=-4, angles=10), "positive integer"),
        (dict(image_shape=32, angles=0), "at least one projection angle"),
        (dict(image_shape=32, angles=[]), "at least one projection angle"),
        (dict(image_shape=32, angles=[0.0, float("nan")]), "NaN"),
        (dict(image_shape=32, angles=10, pixel_size=-1.0), "pixel_size must be a positive"),
        (dict(image_shape=32, angles=10, detector_spacing=0.0), "detector_spacing must be a positive"),
        (dict(image_shape=32, angles=10, n_detectors=0), "n_detectors must be a positive integer"),
        (dict(image_shape=(3, 4, 5), angles=10), "pair"),
    ],
)
def test_parallel_validation(kwargs, match):
    with pytest.raises(GeometryError, match=match):
        ParallelBeamGeometry(**kwargs)


def test_fan_validation():
    with pytest.raises(GeometryError, match="must exceed source_to_isocenter"):
        FanBeamGeometry(32, 10, 200, 150)
    with pytest.raises(GeometryError, match="lies inside the image"):
        FanBeamGeometry(64, 10, 30, 100)
    with pytest.raises(GeometryError, match="'flat' or 'curved'"):
        FanBeamGeometry(32, 10, 200, 300, detector_shape="spherical")


def test_detector_coverage_warning():
    with pytest.warns(DetectorCoverageWarning, match=r"truncated.*n_detectors=92"):
        ParallelBeamGeometry(64, 10, n_detectors=64)
    with pytest.warns(DetectorCoverageWarning, match="truncated"):
        FanBeamGeometry(64, 10, 256, 467, n_detectors=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, _ in list_geometries():  # no shipped preset truncates
            load_geometry(name)


def test_presets_required_by_the_spec():
    names = {n for n, _ in list_geometries()}
    for n in (28, 64, 128, 256):
        for k in (8, 16, 30, 60, 90, 180):
            g = load_geometry(f"parallel-{n}-sparse{k}")
            assert g.image_shape == (n, n) and g.n_angles == k
            assert math.isclose(g.angular_coverage, math.pi)
            assert 0 <= min(g.angles) and max(g.angles) < math.pi
    clin = load_geometry("fan-512-clinical")
    assert clin.image_shape == (512, 512) and abs(clin.pixel_size - 0.7) < 0.05
    assert clin.source_to_isocenter == 595.0 and clin.source_to_detector == 1085.6
    assert clin.n_detectors == 736 and clin.detector_shape == "curved"
    assert math.isclose(clin.angular_coverage, 2 * math.pi)
    for k in (64, 128, 256):
        sub = load_geometry(f"fan-512-clinical-sparse{k}")
        assert sub == clin.subsample_views(2304 // k)  # a true subset of the full scan's views
    lim = load_geometry("parallel-64-limited90")
    assert math.isclose(max(lim.angles), math.radians(89))
    assert any("limited" in n for n in names)


def test_unknown_preset_suggests_names(tmp_path):
    with pytest.raises(GeometryError, match=r"unknown geometry 'parallel-64-sparse31'.*Did you mean parallel-64-sparse30"):
        load_geometry("parallel-64-sparse31")
    with pytest.raises(GeometryError, match="does not exist"):
        load_geometry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: parallel\nimage_shape: [8, 8]\nangels: 4\n")
    with pytest.raises(GeometryError, match=r"unknown parallel geometry field\(s\) \['angels'\]"):
        load_geometry(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(GeometryError, match="expected a mapping"):
        load_geometry(bad)
    bad.write_text("type: cone\n")
    with pytest.raises(GeometryError, match="'type' must be one of"):
        load_geometry(bad)


def test_angle_spec_forms():
    a = geometry_from_dict({"type": "parallel", "image_shape": 8, "angles": {"count": 4, "start_deg": 0, "stop_deg": 90}})
    np.testing.assert_allclose(a.angles, np.radians([0, 22.5, 45, 67.5]))
    b = geometry_from_dict({"type": "parallel", "image_shape": 8, "angles": {"degrees": [0, 22.5, 45, 67.5]}})
    assert np.allclose(a.angles, b.angles)


def test_angle_weights():
    w = angle_weights(np.arange(30) * math.pi / 30)
    assert np.allclose(w, math.pi / 30)
    w = angle_weights([0.0, 0.1, 0.3])  # non-uniform: midpoint rule
    assert np.allclose(w, [0.1, 0.15, 0.2])


def test_subsample_views():
    g = load_geometry("parallel-64-sparse180")
    s = g.subsample_views(6)
    assert s == load_geometry("parallel-64-sparse30")
    with pytest.raises(GeometryError, match="leaves no view"):
        g.subsample_views(2, offset=500)


def _astra_vectors(proj_geom):
    import astra

    return astra.geom_2vec(proj_geom)["Vectors"]


def test_vec_geometries_agree_with_astra_conversion():
    # Our own vec construction (used for offsets) must equal ASTRA's conversion of its plain geometry.
    p = ParallelBeamGeometry(16, 7)
    _, plain = p.to_astra()
    _, vec = p.replace(detector_offset=1e-300).to_astra()  # forces the vec path with ~zero offset
    np.testing.assert_allclose(vec["Vectors"], _astra_vectors(plain), atol=1e-12)
    f = FanBeamGeometry(16, 9, 80, 150)
    _, plain = f.to_astra()
    _, vec = f.replace(detector_offset=1e-300).to_astra()
    np.testing.assert_allclose(vec["Vectors"], _astra_vectors(plain), atol=1e-9)


def test_curved_detector_elements_lie_on_the_arc():
    g = FanBeamGeometry(32, 5, 150, 260, detector_shape="curved")
    det = g.detector_positions()
    src = g.source_positions()[:, None, :]
    np.testing.assert_allclose(np.linalg.norm(det - src, axis=-1), 260.0)
    gam = g.fan_angles()
    np.testing.assert_allclose(np.diff(gam), g.detector_spacing / 260.0)  # equiangular
    _, pg = g.to_astra()
    assert pg["type"] == "fanflat_vec" and pg["DetectorCount"] == 1
    assert pg["Vectors"].shape == (g.n_angles * g.n_detectors, 6)


def test_ctflow_namespace():
    for name in ("ParallelBeamGeometry", "FanBeamGeometry", "load_geometry", "RayTransform", "fbp", "phantoms"):
        assert hasattr(ctflow, name)
    assert callable(ctflow.metrics.psnr) and callable(ctflow.metrics.ssim)
