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
from ctflow.priors.gaussian import GaussianPrior
from ctflow.priors.unet import ConfigError
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


# ---- one randomness policy, one noise model, one vocabulary, validated inputs (issue 13, reliability item 10)
def _different_batch(problem):
    """Three *different* noisy sinograms: the truth, a brighter copy and a shifted copy."""
    op, truth, y, prior = problem
    imgs = torch.stack([truth, 1.6 * truth, torch.roll(truth, (2, -1), (0, 1))])
    clean = op(imgs)
    g = torch.Generator().manual_seed(5)
    return clean + 0.01 * clean.abs().amax() * torch.randn(clean.shape, generator=g)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_batch_of_different_sinograms_equals_single_runs(name, problem):
    """Element k of a batch equals a single run of sinogram k, for every method (per-element generators,
    per-sinogram σ, per-sample solvers): no element depends on the others."""
    op, truth, _, prior = problem
    # float64: CGLS and the other Krylov/ODE loops amplify float32 rounding (a batched and a single matmul
    # round differently on some BLAS kernels: 1e-3 after 10 CGLS steps here, while float64 vs float32 alone
    # differ by 4e-2), which is not a coupling between elements; in float64 rounding stays below 1e-5 (OT-ODE:
    # 3e-6, a CG stop one step apart) while a coupling (a batch-wide σ or generator) shows at 1e-1.
    yb = _different_batch(problem).double()
    solver = get_solver(name, seed=1, **_quick(name))
    pr = prior if solver.needs_prior else None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = solver(yb, op, prior=pr)
        singles = [solver(yb[k], op, prior=pr) for k in range(yb.shape[0])]
    for k, single in enumerate(singles):
        torch.testing.assert_close(batch.image[k], single.image, atol=1e-5, rtol=1e-5, msg=f"{name}: element {k}")
    if batch.options.get("noise_std") is not None:  # one σ per sinogram, each the single run's
        assert len(batch.options["noise_std"]) == 3
        for k, single in enumerate(singles):
            assert batch.options["noise_std"][k] == pytest.approx(single.options["noise_std"], rel=1e-5)


@pytest.mark.parametrize("name", sorted(n for n, c in SOLVERS.items() if "noise_std" in {f.name for f in dataclasses.fields(c.Options)}))
def test_noise_std_estimated_with_a_warning_and_recorded(name, problem):
    from ctflow.solvers.noise_estimate import NoiseEstimateWarning

    op, truth, _, prior = problem
    yb = _different_batch(problem)
    extra = {"noisy": True} if "noisy" in {f.name for f in dataclasses.fields(SOLVERS[name].Options)} else {}
    with pytest.warns(NoiseEstimateWarning, match="estimated"):
        rec = get_solver(name, **_quick(name), **extra)(yb[0], op, prior=prior)
    assert rec.options["noise_std_source"] == "estimated" and rec.options["noise_std"] > 0
    rec = get_solver(name, noise_std=0.3, **_quick(name), **extra)(yb, op, prior=prior)
    assert rec.options["noise_std_source"] == "given" and rec.options["noise_std"] == [0.3, 0.3, 0.3]
    rec = get_solver(name, noise_std=[0.1, 0.2, 0.3], **_quick(name), **extra)(yb, op, prior=prior)
    assert rec.options["noise_std"] == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="noise_std has 2 values"):
        get_solver(name, noise_std=[0.1, 0.2], **_quick(name), **extra)(yb, op, prior=prior)


@pytest.mark.parametrize(
    "method,old,new",
    [("pigfm", {"clip": (0, 1)}, "box"), ("cpigfm", {"clip": (0, 1)}, "box"), ("fbp", {"clip_negative": True}, "box"),
     ("sirt", {"nonnegative": False}, "box"), ("tv", {"nonnegative": True}, "box"), ("msflow", {"nonnegative": True}, "box"),
     ("msflow", {"jacobian": "vjp"}, "jacobian_free"), ("dflow", {"lr": 0.5}, "step_size"),
     ("pnpflow", {"lr": 1.0}, "step_size")],
)
def test_old_option_names_name_the_new_one(method, old, new):
    with pytest.raises(ConfigError, match=f"renamed.*{new}"):
        get_solver(method, **old)


def test_one_vocabulary_across_solvers():
    from ctflow.solvers.options import INITS

    for name, cls in SOLVERS.items():
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        assert not {"clip", "clip_negative", "nonnegative", "jacobian", "lr"} & set(fields), name
        if name not in ("cgls", "tikhonov"):
            assert "box" in fields, f"{name} has no box option"
        if "init" in fields:
            for kind in INITS:  # every method that takes an init accepts the whole vocabulary
                get_solver(name, init=kind)
        for k in cls.Options.search_space:
            assert k in fields, f"{name}: search space names unknown option {k}"


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_bad_inputs_are_ctflow_errors(name, problem):
    op, truth, y, prior = problem
    solver = get_solver(name, **_quick(name))
    pr = prior if solver.needs_prior else None
    with pytest.raises(ShapeError, match="float16"):
        solver(y.half(), op, prior=pr)
    with pytest.raises(ShapeError, match="float16"):
        solver(y.numpy().astype(np.float16), op, prior=pr)
    with pytest.raises(ShapeError, match="empty"):
        solver(y[None][:0], op, prior=pr)
    with pytest.raises(ShapeError, match="x_init holds 3 images"):
        solver(y[None].repeat(2, 1, 1), op, prior=pr, x_init=torch.zeros(3, N, N))
    with pytest.raises(ConfigError, match="exceeds the cap"):
        get_solver(name, iterations=10**9) if "iterations" in {f.name for f in dataclasses.fields(SOLVERS[name].Options)} \
            else get_solver(name, n_samples=10**9)


@pytest.mark.parametrize("name,opts", [("cpigfm", {"guidance": 1e30}), ("pigfm", {"guidance": 1e9}), ("dps", {"guidance": 1e12})])
def test_absurd_guidance_is_a_config_error(name, opts):
    with pytest.raises(ConfigError, match="guidance"):
        get_solver(name, **opts)


def test_time_limit_stops_a_long_run(problem):
    from ctflow.solvers.context import TimeLimitWarning

    op, truth, y, prior = problem
    with pytest.warns(TimeLimitWarning, match="time_limit"):
        rec = get_solver("tv", iterations=100_000, time_limit=0.3)(y, op)
    assert rec.wall_time < 5 and len(rec.history["data_misfit"]) < 100_000
    assert "time_limit" in rec.options["stopped"]


def _numeric_fields(cls):
    out = []
    for f in dataclasses.fields(cls.Options):
        if f.name in ("seed",) or isinstance(f.default, (bool, str)):
            continue
        if isinstance(f.default, (int, float)) or f.name in ("noise_std", "rho", "weight_abs", "rho_max", "time_limit"):
            out.append(f.name)
    return out


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_random_bad_numeric_options_are_config_errors(name):
    """NaN / ±Inf / huge / negative values of any numeric option: a ConfigError naming the option (or a
    valid option set), never a raw exception."""
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    fields = _numeric_fields(SOLVERS[name])
    bad = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, 1e300, -1e-300, 0.0, 1e9, 10**12])

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(field=st.sampled_from(fields), value=bad)
    def check(field, value):
        try:
            get_solver(name, **{field: value})
        except ConfigError as e:
            assert field in str(e) or "option" in str(e), str(e)
        if isinstance(value, float) and not np.isfinite(value):
            with pytest.raises(ConfigError, match=field):
                get_solver(name, **{field: value})

    check()
