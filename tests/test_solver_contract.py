"""The one solver contract, checked over every registered method (like an operator contract test).

A tiny problem (12×12 image, 10 angles) with an analytic Gaussian prior whose mean is a blurred
version of the truth keeps every method fast; the assertions are about the contract (layouts, dtypes,
determinism, history, NFE, errors), not about quality (the per-method test files do that).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import ctflow
from ctflow.errors import NonFiniteError, ShapeError
from ctflow.priors.unet import ConfigError
from ctflow.priors.gaussian import GaussianPrior
from ctflow.solvers import SOLVERS, Reconstruction, get_solver, list_methods

N = 12
GEOM = ctflow.ParallelBeamGeometry(N, 10)

# quick settings per method so the contract runs in seconds (None: defaults are already quick)
QUICK = {
    "sirt": {"iterations": 20},
    "cgls": {"iterations": 10},
    "tikhonov": {"iterations": 20},
    "tv": {"iterations": 40},
    "dflow": {"iterations": 2, "steps": 3},
    "msflow": {"iterations": 3, "steps": 6, "segments": 2},
    "pigfm": {"steps": 10},
    "cpigfm": {"steps": 5},
    "otode": {"steps": 10},
    "pnpflow": {"steps": 10},
    "dps": {"steps": 10},
}


def _quick(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(SOLVERS[name].Options)}
    return {k: v for k, v in QUICK.get(name, {}).items() if k in fields}


@pytest.fixture(scope="module")
def problem():
    op = ctflow.RayTransform(GEOM, backend="matrix")
    yy, xx = np.mgrid[:N, :N]
    truth = ((xx - 5.5) ** 2 + (yy - 6) ** 2 < 16).astype(np.float32) * 0.8 + 0.1
    t = torch.from_numpy(truth)
    blur = torch.nn.functional.avg_pool2d(t[None, None], 3, 1, 1)[0, 0]
    idx = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
    d2 = ((idx[:, None] - idx[None]) ** 2).sum(-1)
    cov = 0.05 * np.exp(-d2 / (2 * 2.0**2)) + 1e-3 * np.eye(N * N)
    prior = GaussianPrior(blur.double(), torch.from_numpy(cov))
    y = op(t)
    return op, t, y, prior


def test_every_issue_method_is_registered():
    names = set(list_methods())
    assert {"fbp", "tv", "dflow", "msflow", "pigfm", "cpigfm", "otode", "pnpflow"} <= names, names
    assert {"sirt", "cgls"} & names and "tikhonov" in names
    for name, desc in list_methods().items():
        assert desc and "\n" not in desc, name


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_contract(name, problem):
    op, truth, y, prior = problem
    solver = get_solver(name, seed=3, **_quick(name))
    pr = prior if solver.needs_prior else None
    seen = []
    rec = solver(y, op, prior=pr, callback=lambda info: seen.append(info["iteration"]))
    assert isinstance(rec, Reconstruction) and rec.method == name
    assert rec.image.shape == (N, N) and rec.image.dtype == torch.float32
    assert torch.isfinite(rec.image).all()
    assert rec.history.get("data_misfit"), "every solver records the data misfit"
    assert seen == list(range(len(seen))) and len(seen) >= 1
    assert rec.wall_time > 0 and rec.peak_memory >= 0 and rec.peak_memory_kind
    assert (rec.nfe > 0) == solver.needs_prior
    assert rec.options["seed"] == 3
    # it reconstructs something: closer to the truth than the zero image
    assert float((rec.image - truth).norm()) < 0.8 * float(truth.norm())
    # deterministic given the seed; batch layouts map to image layouts
    rec2 = solver(y[None].repeat(2, 1, 1), op, prior=pr)
    assert rec2.image.shape == (2, N, N)
    torch.testing.assert_close(rec2.image[0], rec.image, atol=2e-4, rtol=1e-3)
    rec3 = solver(y.numpy()[None, None], op, prior=pr)
    assert rec3.image.shape == (1, 1, N, N)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_bad_input_errors(name, problem):
    op, truth, y, prior = problem
    solver = get_solver(name, **_quick(name))
    pr = prior if solver.needs_prior else None
    with pytest.raises(ShapeError, match="n_angles"):
        solver(y.T, op, prior=pr)
    bad = y.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        solver(bad, op, prior=pr)
    with pytest.raises(ConfigError, match="no option"):
        get_solver(name, not_an_option=1)
    if solver.needs_prior:
        with pytest.raises(ConfigError, match="needs a prior"):
            solver(y, op)
        wrong = GaussianPrior(torch.zeros(8, 8, dtype=torch.float64), torch.eye(64, dtype=torch.float64))
        with pytest.raises(ShapeError):
            solver(y, op, prior=wrong)
    if not solver.stochastic:
        with pytest.raises(ConfigError, match="deterministic"):
            get_solver(name, n_samples=2)


def test_unknown_method_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: .*fbp"):
        get_solver("nope")


def test_callback_can_stop_early(problem):
    op, truth, y, prior = problem
    name = "sirt" if "sirt" in SOLVERS else "tikhonov"
    rec = get_solver(name, **_quick(name))(y, op, callback=lambda info: info["iteration"] >= 2)
    assert len(rec.history["data_misfit"]) == 3


def test_stochastic_methods_give_std_maps(problem):
    op, truth, y, prior = problem
    stochastic = [n for n, c in SOLVERS.items() if c.stochastic]
    assert stochastic, "posterior sampling methods exist"
    for name in stochastic:
        rec = get_solver(name, n_samples=3, **_quick(name))(y, op, prior=prior)
        assert rec.std is not None and rec.std.shape == rec.image.shape
        assert rec.samples.shape == (3, N, N)
        torch.testing.assert_close(rec.samples.mean(0), rec.image)
        assert float(rec.std.max()) > 0, name


def test_reconstruct_api_and_geometry_check(problem):
    op, truth, y, prior = problem
    rec = ctflow.reconstruct(y, GEOM, method="fbp", filter="hann")
    assert rec.options["filter"] == "hann"
    rec2 = ctflow.reconstruct(y, GEOM, method="fbp", operator=op, filter="hann")
    torch.testing.assert_close(rec.image, rec2.image, atol=1e-5, rtol=1e-4)
    with pytest.raises(ctflow.GeometryError):
        ctflow.reconstruct(y, ctflow.ParallelBeamGeometry(N, 11), method="fbp", operator=op)
    m = rec.metrics(truth)
    assert set(m) == {"psnr", "ssim", "rmse"} and m["psnr"] > 10
    with pytest.raises(ShapeError):
        rec.metrics(truth[:5])


def test_peak_memory_is_the_calls_own_peak(problem):
    """A call that touches 300 MB reports at least that; the next call (without it) reports far less,
    so the figure is per call, not the process's lifetime high-water mark."""
    import numpy as np

    op, _, y, _ = problem
    solver = get_solver("sirt", iterations=3)
    big = []

    def hog(info):
        if not big:
            a = np.ones(300 * 2**20 // 8)  # 300 MiB, written so the pages are resident
            big.append(float(a.sum()))

    first = solver(y, op, callback=hog)
    second = solver(y, op)
    if first.peak_memory_kind == "cuda_max_allocated" or first.peak_memory_kind == "cpu_rss_high_water":
        pytest.skip(f"per-call CPU peak not measurable here ({first.peak_memory_kind})")
    assert first.peak_memory >= 250 * 2**20
    assert second.peak_memory < 100 * 2**20
