"""Shipped presets: format, lookup (nearest by prior, geometry and estimated σ), and ``reconstruct``'s use of them."""

from __future__ import annotations

import warnings

import pytest
import torch

import ctflow
from ctflow.errors import ConfigError
from ctflow.solvers import SOLVERS
from ctflow.solvers.presets import (
    PRESET_DIR,
    Preset,
    PresetWarning,
    find_preset,
    list_presets,
    load_preset,
    prior_hash,
    save_preset,
)


def _preset(method="tv", views=30, sigma_rel=0.01, prior=None, name=None, **opts):
    return Preset({"format": "ctflow-preset/1", "name": name or f"{method}-{views}-{sigma_rel}", "method": method,
                   "options": opts or {"weight": 1e-3},
                   "prior": prior, "geometry": {"name": f"parallel-64-sparse{views}", "kind": "parallel", "image_size": 64,
                                                "n_angles": views},
                   "noise": {"kind": "gaussian", "level": sigma_rel, "sigma_rel": sigma_rel}})


def test_shipped_presets_are_valid_and_their_options_build_solvers():
    presets = list_presets()
    assert presets, "ctflow/solvers/presets/ ships presets"
    for p in presets:
        assert p["method"] in SOLVERS, p.name
        ctflow.get_solver(p["method"], **p.solver_options())  # valid options in the current vocabulary
        assert p["score"]["psnr"] > 0 and p["tuning"]["trials"] >= 1 and p["ctflow_version"]
        if SOLVERS[p["method"]].needs_prior:
            assert p["prior"]["hash"] and p["prior"]["name"]
        assert p.path.parent == PRESET_DIR


def test_nearest_preset_by_views_and_sigma():
    g = ctflow.load_geometry("parallel-64-sparse8").subsample_views(1)
    cands = [_preset(views=v, sigma_rel=s) for v in (8, 30, 60) for s in (0.005, 0.02)]
    best, notes = find_preset("tv", g, 0.006, presets=cands)
    assert best["geometry"]["n_angles"] == 8 and best["noise"]["sigma_rel"] == 0.005 and not notes
    best, _ = find_preset("tv", ctflow.load_geometry("parallel-64-sparse60"), 0.03, presets=cands)
    assert best["geometry"]["n_angles"] == 60 and best["noise"]["sigma_rel"] == 0.02
    assert find_preset("sirt", g, 0.01, presets=cands)[0] is None


def test_prior_hash_match_preferred_and_mismatch_noted():
    g = ctflow.load_geometry("parallel-64-sparse30")
    h = prior_hash("default")
    assert h == prior_hash("phantom-64") and len(h) == 16
    same = _preset("msflow", 60, 0.01, prior={"name": "phantom-64", "hash": h}, name="same", rho=100.0)
    other = _preset("msflow", 30, 0.01, prior={"name": "phantom-64", "hash": "0000"}, name="other", rho=10.0)
    best, notes = find_preset("msflow", g, 0.01, prior="default", presets=[same, other])
    assert best.name == "same" and not notes
    best, notes = find_preset("msflow", g, 0.01, prior="default", presets=[other])
    assert best.name == "other" and "other weights" in notes[0]


def test_save_and_load_round_trip(tmp_path):
    p = _preset(box=(0.0, None), weight=2e-3)
    path = save_preset(p, tmp_path / "x.yaml")
    q = load_preset(path)
    assert q.solver_options() == {"box": (0.0, None), "weight": 2e-3}
    (tmp_path / "bad.yaml").write_text("format: ctflow-preset/1\nname: x\nmethod: tv\noptions: {}\n")
    with pytest.raises(Exception, match="geometry|required"):
        load_preset(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="no preset"):
        load_preset("no-such-preset")


def test_reconstruct_requires_method_and_uses_presets():
    from ctflow.assets import bundled_sinogram
    from ctflow.io import read_sinogram_h5

    scan = read_sinogram_h5(bundled_sinogram())
    with pytest.raises(TypeError, match="method"):
        ctflow.reconstruct(scan.sinogram, scan.geometry)  # noqa
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = ctflow.reconstruct(scan.sinogram, scan.geometry, method="tv")
    shipped = [p for p in list_presets() if p["method"] == "tv"]
    if shipped:
        assert rec.preset is not None and rec.options["preset"] == rec.preset["name"]
        assert rec.options["iterations"] == shipped[0]["options"]["iterations"]
    # a method option → the method's defaults plus that option, no preset
    rec2 = ctflow.reconstruct(scan.sinogram, scan.geometry, method="tv", iterations=20)
    assert rec2.preset is None and rec2.options["preset"] is None and rec2.options["weight"] == 1e-3
    # generic options keep the preset; preset=None never uses one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec3 = ctflow.reconstruct(scan.sinogram, scan.geometry, method="tv", seed=3, time_limit=60)
        rec4 = ctflow.reconstruct(scan.sinogram, scan.geometry, method="tv", preset=None)
    assert rec3.options["preset"] == rec.options["preset"] and rec4.options["preset"] is None


def test_reconstruct_warns_for_a_preset_tuned_for_other_weights(tmp_path, monkeypatch):
    from ctflow.solvers import presets as P

    fake = _preset("pigfm", 30, 0.01, prior={"name": "phantom-64", "hash": "deadbeef"}, name="fake", steps=3)
    monkeypatch.setattr(P, "list_presets", lambda folder=None: [fake])
    y = torch.zeros(30, 92)
    y[:, 30:60] = 20.0
    y += 0.2 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    with pytest.warns(PresetWarning, match="other weights"):
        rec = ctflow.reconstruct(y, "parallel-64-sparse30", method="pigfm", prior="default")
    assert rec.options["preset"] == "fake" and rec.options["steps"] == 3
