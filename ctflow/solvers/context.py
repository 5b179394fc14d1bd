"""What a solver's ``_solve`` works with: :class:`SolveContext`, the NFE-counting prior wrapper,
and the input preparation shared by every method (sinogram layouts, prior loading, frozen prior)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import NonFiniteError, ShapeError


class CountingVelocity(torch.nn.Module):
    """Wrap a velocity model ``v(x, t)`` and count its forward calls (one per batched call)."""

    def __init__(self, velocity):
        super().__init__()
        self.velocity = velocity
        self.nfe = 0

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        self.nfe += 1
        return self.velocity(x, t)

    def denoise(self, x: torch.Tensor, t) -> torch.Tensor:
        r""":math:`\hat x_1 = x + (1-t)\,v(x,t)` (one NFE)."""
        v = self(x, t)
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if tt.ndim == 1:
            tt = tt.reshape(-1, *([1] * (x.ndim - 1)))
        return x + (1.0 - tt) * v


class SolveContext:
    """Everything a solver's ``_solve`` needs, with shared helpers.

    Attributes: ``y`` (B, 1, A, D) float tensor, ``op`` the operator (acts on trailing dims),
    ``prior`` a :class:`CountingVelocity` or ``None``, ``x_init`` (B, 1, H, W) or ``None``,
    ``generator`` (seeded torch.Generator on ``device``), ``options``.
    """

    def __init__(self, y, op, prior, x_init, options, callback, method):
        self.y = y
        self.op = op
        self.prior = prior
        self.x_init = x_init
        self.options = options
        self.callback = callback
        self.method = method
        self.device = y.device
        self.dtype = y.dtype
        self.generator = torch.Generator(device=y.device)
        self.generator.manual_seed(int(options.seed))
        self.history: dict[str, list[float]] = {}
        self.stop = False
        self._iteration = 0

    # ---- shapes and helpers ------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.y.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int, int]:
        h, w = self.op.domain_shape
        return (self.batch, 1, h, w)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(y)

    def randn(self, shape=None) -> torch.Tensor:
        """Seeded standard normal noise (default: image shape)."""
        return torch.randn(shape or self.image_shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def noise_std(self, value: float | None) -> float:
        """The sinogram noise σ a likelihood uses: ``value`` if given, else 1 % of max|y| (the
        "1 % relative Gaussian noise" convention of :class:`ctflow.noise.GaussianNoise`)."""
        if value is not None:
            return float(value)
        return max(0.01 * float(self.y.abs().max()), 1e-12)

    def data_misfit(self, x: torch.Tensor) -> float:
        """½‖Ax − y‖² summed over the batch."""
        with torch.no_grad():
            return 0.5 * float((self.A(x) - self.y).pow(2).sum())

    def progress(self, iterable, desc: str | None = None, **kw):
        return tqdm(iterable, desc=desc or self.method, disable=not self.options.progress, leave=False, **kw)

    def log(self, x: torch.Tensor | None = None, **terms: float) -> None:
        """Record one iteration: the data misfit of ``x`` (if given) and any named objective terms.

        Calls the user callback with ``{"iteration", "x", **terms}``; a callback returning ``True``
        asks the solver to stop (``ctx.stop`` becomes True; solvers check it once per iteration).
        """
        rec = dict(terms)
        if x is not None and "data_misfit" not in rec:  # solvers that already have Ax − y pass it in
            rec["data_misfit"] = self.data_misfit(x)
        for k, v in rec.items():
            self.history.setdefault(k, []).append(float(v))
        if self.callback is not None:
            if self.callback({"iteration": self._iteration, "x": x, **rec}):
                self.stop = True
        self._iteration += 1


def _as_sinogram(y, op) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], bool]:
    """Any accepted sinogram layout → ``(B, 1, A, D)`` float tensor plus a function restoring layout."""
    is_numpy = isinstance(y, np.ndarray)
    if is_numpy:
        if not np.issubdtype(y.dtype, np.floating) and not np.issubdtype(y.dtype, np.integer):
            raise ShapeError(f"sinogram has dtype {y.dtype}; expected a real floating-point array")
        y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32 if y.dtype != np.float64 else np.float64))
    if not isinstance(y, torch.Tensor):
        raise ShapeError(f"sinogram must be a torch.Tensor or numpy array, got {type(y).__name__}")
    if not y.is_floating_point():
        y = y.float()
    rng = tuple(op.range_shape)
    if y.ndim < 2 or tuple(y.shape[-2:]) != rng:
        raise ShapeError(
            f"sinogram has shape {tuple(y.shape)} but the geometry expects (…, {rng[0]}, {rng[1]}) = "
            f"(…, n_angles, n_detectors); pass the geometry the data was acquired with "
            f"(or transpose a (detectors, angles) array)"
        )
    if not torch.isfinite(y).all():
        raise NonFiniteError(f"sinogram contains {int((~torch.isfinite(y)).sum())} NaN/Inf values; clean or mask them first")
    lead = tuple(y.shape[:-2])
    if len(lead) == 0:
        yy = y.reshape(1, 1, *rng)
        restore = lambda x: x.reshape(x.shape[-2:])  # noqa: E731
    elif len(lead) == 1:
        yy = y.reshape(lead[0], 1, *rng)
        restore = lambda x: x.reshape(lead[0], *x.shape[-2:])  # noqa: E731
    elif len(lead) == 2 and lead[1] == 1:
        yy = y
        restore = lambda x: x  # noqa: E731
    else:
        raise ShapeError(f"sinogram has shape {tuple(y.shape)}; use (A, D), (B, A, D) or (B, 1, A, D)")
    return yy, restore, is_numpy


def _prepare_prior(prior, op, device, dtype):
    from ..priors import load_prior
    from ..priors.velocity import as_velocity

    if isinstance(prior, str):
        prior = load_prior(prior)
    elif hasattr(prior, "__fspath__"):
        prior = load_prior(prior)
    v = as_velocity(prior)
    size = getattr(v, "image_size", None)
    if callable(size):
        size = size()
    shape = getattr(v, "image_shape", None)
    h, w = op.domain_shape
    if size is not None and (int(size), int(size)) != (h, w):
        raise ShapeError(
            f"the prior works on {size}×{size} images but the geometry reconstructs {h}×{w}; "
            f"use a geometry with image_shape [{size}, {size}] (e.g. a parallel-{size}-* preset) or a prior of that size"
        )
    if shape is not None and tuple(shape)[-2:] != (h, w):
        raise ShapeError(f"the prior's images are {tuple(shape)} but the geometry reconstructs {(h, w)}")
    if isinstance(v, torch.nn.Module):
        v = v.to(device)
    return CountingVelocity(v)


class _FrozenPrior:
    """Within the block the prior is in eval mode without parameter gradients (solvers differentiate
    with respect to images only); the caller's training flag and requires_grad flags are restored."""

    def __init__(self, pv):
        self.module = pv.velocity if pv is not None and isinstance(pv.velocity, torch.nn.Module) else None

    def __enter__(self):
        if self.module is not None:
            self.training = self.module.training
            self.flags = [(p, p.requires_grad) for p in self.module.parameters()]
            self.module.eval()
            for p, _ in self.flags:
                p.requires_grad_(False)

    def __exit__(self, *exc):
        if self.module is not None:
            self.module.train(self.training)
            for p, f in self.flags:
                p.requires_grad_(f)
