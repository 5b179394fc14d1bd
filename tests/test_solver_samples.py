"""Posterior samples as one batch (:mod:`ctflow.solvers.base`): ``n_samples`` copies of the sinogram batch are
solved together, sample s of every image seeded ``seed + s``, so the batched result is the separate runs'.

A batched and a single-image computation agree bit for bit only where every product is batch-invariant: a
(6, n) and a (1, n) matrix product or row sum can round differently in the last bit (BLAS and the reduction
kernels pick paths by shape; see ``PerSample`` in ``tests/gaussian_problems.py``). Here the Gaussian prior
and the pseudo-inverse are evaluated one image at a time, which makes cpigfm, otode, pigfm and pnpflow
bit-identical to the single runs; dps still differs by ≤ 1e-15 (its per-sample residual norm is a row sum
over a 192-value sinogram, reduced by another kernel for one row than for six). So the samples are compared
to 1e-12 in float64: a sample drawn with a wrong seed is ~0.1 away.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from ctflow.priors.velocity import VelocityModel
from ctflow.solvers import SOLVERS, base, get_solver
from ctflow.solvers.base import sample_chunks
from ctflow.solvers.linalg import PseudoInverse

from .gaussian_problems import PerSample, two_gaussian_sinograms

pytestmark = pytest.mark.usefixtures("one_thread")

N = 16
STOCHASTIC = sorted(name for name, cls in SOLVERS.items() if cls.stochastic)

# few steps per method (only the options a method has are used); pigfm/cpigfm with noisy=True and otode
# with the σ estimate cover the per-sinogram noise σ of a stacked batch
QUICK = {"steps": 4, "n_denoise": 2, "cg_iters": 5, "noisy": True}


def quick(name: str, **extra) -> dict:
    fields = {f.name for f in dataclasses.fields(SOLVERS[name].Options)}
    return {**{k: v for k, v in QUICK.items() if k in fields}, **extra}


def _per_image(fn):
    def one_at_a_time(self, x, **kw):
        d = kw.get("damping")
        per = isinstance(d, torch.Tensor) and d.numel() > 1  # one damping per sinogram: slice it too
        return torch.cat([fn(self, x[i : i + 1], **({**kw, "damping": d[i : i + 1]} if per else kw))
                          for i in range(x.shape[0])])

    return one_at_a_time


@pytest.fixture
def per_image_pinv(monkeypatch):
    for name in ("project", "pinv", "pinv_t"):
        monkeypatch.setattr(PseudoInverse, name, _per_image(getattr(PseudoInverse, name)))


@pytest.fixture(scope="module")
def problem():
    op, y, gauss = two_gaussian_sinograms(N)
    return op, y, VelocityModel(PerSample(gauss))


def run(solver, y, op, prior, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the noise-estimate warning
        return solver(y, op, prior=prior, **kw)


def test_sample_chunks():
    assert sample_chunks(3, 2) == [(0, 3)]
    assert sample_chunks(100, 1) == [(0, 64), (64, 36)]
    assert sample_chunks(5, 20) == [(0, 3), (3, 2)]
    assert sample_chunks(3, 100) == [(0, 1), (1, 1), (2, 1)]  # a batch above the cap is never split
    assert sample_chunks(3, 2, sequential=True) == [(0, 1), (1, 1), (2, 1)]
    assert sample_chunks(1, 7) == [(0, 1)]


@pytest.mark.parametrize("cap", [64, 4, 1])  # one solve of 6 images; 4 + 2 images; one sample per solve
@pytest.mark.parametrize("name", STOCHASTIC)
def test_batched_samples_equal_the_single_runs(name, cap, problem, per_image_pinv, monkeypatch):
    op, y, prior = problem
    monkeypatch.setattr(base, "MAX_SAMPLE_BATCH", cap)
    n, seed = 3, 11
    rec = run(get_solver(name, seed=seed, n_samples=n, **quick(name)), y, op, prior)
    assert rec.samples.shape == (n, 2, 1, N, N) and rec.image.shape == rec.std.shape == (2, 1, N, N)
    single = SOLVERS[name]  # the same options, one sample per run
    for s in range(n):
        for b in range(2):
            one = run(single(seed=seed + s, **quick(name)), y[b : b + 1], op, prior)
            torch.testing.assert_close(rec.samples[s, b], one.image[0], rtol=0, atol=1e-12, msg=f"{name} s={s} b={b}")
    # the layout and the statistics are those of the stacked samples
    assert torch.equal(rec.image, rec.samples.mean(0))
    assert torch.equal(rec.std, rec.samples.std(0, unbiased=True))
    assert float(rec.std.min()) > 0  # the samples differ: each has its own seed
    # cost per sample, history and σ of the first sample's run on the whole batch
    first = run(single(seed=seed, **quick(name)), y, op, prior)
    assert rec.nfe == n * first.nfe > 0
    assert rec.history.keys() == first.history.keys()
    for k, v in first.history.items():
        assert rec.history[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
    assert rec.options.get("noise_std") == first.options.get("noise_std")  # one σ per sinogram, not per copy
    if "noise_std" in first.options:
        assert len(rec.options["noise_std"]) == 2
    assert rec.options["n_samples"] == n and rec.options["seed"] == seed


@pytest.mark.parametrize("name", STOCHASTIC)
def test_callback_runs_the_samples_one_at_a_time(name, problem, per_image_pinv):
    op, y, prior = problem
    seen = []
    solver = get_solver(name, seed=5, n_samples=2, **quick(name))
    rec = run(solver, y, op, prior, callback=lambda info: seen.append((info["iteration"], tuple(info["x"].shape))))
    steps = len(rec.history["data_misfit"])
    assert seen == [(i, (2, 1, N, N)) for i in range(steps)] * 2  # each sample's iterates, the caller's batch
    torch.testing.assert_close(rec.samples, run(solver, y, op, prior).samples, rtol=0, atol=1e-12)  # = batched
