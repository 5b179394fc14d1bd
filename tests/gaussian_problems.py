"""Small exact-prior problems shared by the solver tests (not a test module)."""

from __future__ import annotations

import numpy as np
import torch

import ctflow
from ctflow.priors.gaussian import GaussianPrior


class PerSample(torch.nn.Module):
    """A prior evaluated one sample at a time. A (2, n) and a (1, n) matrix product or row sum can round
    differently in the last bit (BLAS and reduction kernels pick paths by shape), and iterative solves amplify
    such differences (warm-started CG on AᵀA, whose null space is large: 1e-15 → 1e-8 after 20 iterations).
    With this wrapper the velocity is batch-invariant to the last bit, so a batched solve without CG is
    bit-identical to separate runs."""

    def __init__(self, prior):
        super().__init__()
        self.prior = prior

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return torch.cat([self.prior(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])


def two_gaussian_sinograms(n: int, views: int = 8, noise: float = 0.02):
    """A squared-exponential Gaussian prior on n² images (mean 0.5), two draws from it and their noisy
    parallel-beam sinograms (float64): ``(op, y (2, 1, A, D), gauss)``; the two sinograms differ."""
    op = ctflow.RayTransform(ctflow.ParallelBeamGeometry(n, views), backend="matrix")
    yy, xx = np.mgrid[:n, :n]
    idx = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
    d2 = ((idx[:, None] - idx[None]) ** 2).sum(-1)
    cov = torch.from_numpy(0.05 * np.exp(-d2 / 8.0) + 1e-3 * np.eye(n * n))
    gauss = GaussianPrior(torch.full((1, n, n), 0.5, dtype=torch.float64), cov)
    g = torch.Generator().manual_seed(0)
    truth = gauss.sample(2, g).reshape(2, 1, n, n)
    clean = op(truth)
    y = clean + noise * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    assert not torch.equal(y[0], y[1])
    return op, y, gauss
