"""Re-entrancy: one solver object per registered method, called from two threads at once on different
sinograms, gives exactly what sequential calls give and leaves the object (and the prior) as it was.

The comparison is exact (torch.equal): both threads run the same kernels with the same thread count. The
OpenMP thread count is per thread (a new thread starts with the default), and another count changes the
reduction order: without ``torch.set_num_threads`` in the workers, msflow here differs by 7e-8 in float32
(iterative solves can amplify such last-bit differences), so each worker sets the main thread's count.

The prior has a parameter its owner left trainable: solvers freeze it during a call and must hand it back
trainable also when calls overlap (before, the second call saved the first's frozen flags and restored those).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import warnings

import pytest
import torch

from ctflow.solvers import SOLVERS, get_solver

from .gaussian_problems import two_gaussian_sinograms

pytestmark = pytest.mark.usefixtures("one_thread")

N = 16
# few iterations per method (only the options a method has are used); stochastic methods with 2 samples
QUICK = {
    "iterations": 3, "steps": 4, "segments": 2, "lbfgs_max_iter": 3, "n_denoise": 2, "cg_iters": 5,
}


def quick(name: str) -> dict:
    cls = SOLVERS[name]
    fields = {f.name for f in dataclasses.fields(cls.Options)}
    opts = {k: v for k, v in QUICK.items() if k in fields}
    if name == "msflow":
        opts["steps"] = 4  # a multiple of segments
    return {**opts, "seed": 2, **({"n_samples": 2} if cls.stochastic else {})}


class TrainablePrior(torch.nn.Module):
    """A prior with a parameter, left trainable by its owner: solvers freeze it during a call (eval mode,
    no parameter gradients) and must hand it back trainable, also when two calls overlap."""

    def __init__(self, gauss):
        super().__init__()
        self.gauss = gauss
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, x, t):
        return self.gauss(x, t) * self.scale.to(x.dtype)


@pytest.fixture(scope="module")
def problem():
    op, y, gauss = two_gaussian_sinograms(N)
    y = y.float()
    return op, (y[0, 0], y[1, 0]), gauss


def _call(solver, y, op, prior):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the noise-estimate warning
        return solver(y, op, prior=prior if solver.needs_prior else None)


def _same(a, b) -> None:
    assert torch.equal(a.image, b.image)
    assert (a.std is None) == (b.std is None) and (a.std is None or torch.equal(a.std, b.std))
    assert (a.samples is None) == (b.samples is None) and (a.samples is None or torch.equal(a.samples, b.samples))
    assert a.nfe == b.nfe and a.history == b.history and a.options == b.options


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_one_solver_two_threads(name, problem):
    op, ys, gauss = problem
    prior = TrainablePrior(gauss).train()  # its owner's state: trainable
    solver = get_solver(name, **quick(name))
    before = copy.deepcopy(vars(solver))
    options = solver.options
    expected = [_call(solver, y, op, prior) for y in ys]

    n_threads = torch.get_num_threads()
    start = threading.Barrier(len(ys))
    results: list = [None] * len(ys)
    errors: list = []

    def work(k):
        try:
            torch.set_num_threads(n_threads)  # per thread: otherwise another reduction order
            start.wait()
            results[k] = [_call(solver, ys[k], op, prior) for _ in range(2)]  # two rounds: more overlap
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(ys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    for k in range(len(ys)):
        for rec in results[k]:
            _same(rec, expected[k])
    assert not torch.equal(expected[0].image, expected[1].image)  # the threads really solved different problems

    # the solver object is unchanged, and the prior is handed back as its owner left it
    assert vars(solver) == before and solver.options is options
    assert prior.training and all(p.requires_grad for p in prior.parameters())


def test_prior_flags_restored_per_module(problem):
    """A network prior is wrapped per call; each of its modules and parameters gets its own flag back (an
    eval-mode network used to come back in train mode, the per-call wrapper's flag), and is frozen during
    the call."""
    op, ys, gauss = problem
    prior = TrainablePrior(gauss)
    prior.eval()
    prior.gauss.train()  # mixed flags
    during = []

    def look(info):
        during.append((prior.training, prior.gauss.training, prior.scale.requires_grad))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_solver("pigfm", steps=2)(ys[0], op, prior=prior, callback=look)
    assert during and set(during) == {(False, False, False)}
    assert not prior.training and prior.gauss.training and prior.scale.requires_grad
