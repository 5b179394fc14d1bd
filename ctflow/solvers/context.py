"""What a solver's ``_solve`` works with: :class:`SolveContext`, the NFE-counting prior wrapper,
and the input preparation shared by every method (sinogram layouts, prior loading, frozen prior)."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import NonFiniteError, ShapeError


class TimeLimitWarning(UserWarning):
    """A solver stopped early because its ``time_limit`` was reached."""


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
    ``generators`` (one seeded torch.Generator per batch element on ``device``; draw through
    :meth:`randn`), ``options``, ``copies``.

    :class:`~ctflow.solvers.base.Solver` solves the posterior samples of a stochastic method as one batch:
    ``y`` then stacks ``copies`` copies of the caller's B sinograms (each copy one posterior sample, seeded
    ``seed + s`` for sample s). Everything per batch element stays per element; what is per call (the history's
    ``data_misfit``, the noise σ) is the first copy's. Terms a solver passes to :meth:`log` are
    recorded as given, so a stochastic method should pass only batch-independent ones (like ``t``).
    """

    def __init__(self, y, op, prior, x_init, options, callback, method, shared=None, seeds=None, copies=1):
        self.y = y
        self.op = op
        self.prior = prior
        self.x_init = x_init
        self.options = options
        self.callback = callback
        self.method = method
        self.device = y.device
        self.dtype = y.dtype
        #: how many stacked copies of the caller's sinogram batch ``y`` holds (posterior samples solved as
        #: one batch, sample-major: rows ``[j·B, (j+1)·B)`` are copy j); the history and the noise σ are the
        #: first copy's, as when each sample ran on its own
        self.copies = int(copies)
        if y.shape[0] % self.copies:
            raise ValueError(f"SolveContext: a batch of {y.shape[0]} is not {self.copies} copies of one batch")
        # one generator per batch element, each seeded with its seed (``seeds``; default: the seed for all):
        # an image's result does not depend on what else is in its batch (a batch equals its elements run one
        # at a time)
        if seeds is None:
            seeds = [int(options.seed)] * y.shape[0]
        if len(seeds) != y.shape[0]:
            raise ValueError(f"SolveContext: {len(seeds)} seeds for a batch of {y.shape[0]}")
        self.generators = []
        for seed in seeds:
            g = torch.Generator(device=y.device)
            g.manual_seed(int(seed))
            self.generators.append(g)
        self.generator = self.generators[0] if self.generators else None
        self.history: dict[str, list[float]] = {}
        self.stop = False
        self._iteration = 0
        #: what the call records beside the options (σ used, stop reason); shared across n_samples
        self.shared = {} if shared is None else shared
        self._t0 = time.perf_counter()

    # ---- shapes and helpers ------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.y.shape[0]

    @property
    def base_batch(self) -> int:
        """The caller's number of sinograms (``batch`` = ``copies`` × this)."""
        return self.y.shape[0] // self.copies

    @property
    def image_shape(self) -> tuple[int, int, int, int]:
        h, w = self.op.domain_shape
        return (self.batch, 1, h, w)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(y)

    def randn(self, shape=None, n: int | None = None) -> torch.Tensor:
        """Seeded standard normal noise from each batch element's own generator: ``(B, 1, H, W)`` (or
        ``shape``, whose first dim must be B), or ``(n, B, …)`` for ``n`` independent draws per element."""
        shape = tuple(shape or self.image_shape)
        if shape[0] != self.batch:
            raise ValueError(f"randn: the first dim must be the batch size {self.batch}, got {shape}")
        k = 1 if n is None else int(n)
        draws = [torch.randn((k, 1, *shape[1:]), generator=g, device=self.device, dtype=self.dtype)
                 for g in self.generators]
        out = torch.cat(draws, dim=1)
        return out[0] if n is None else out

    def noise_std(self, value=None) -> torch.Tensor:
        """The sinogram noise σ per batch element, shape ``(B, 1, 1, 1)``: ``value`` (a number or one per
        sinogram) or, when ``None``, estimated from each sinogram
        (:func:`ctflow.solvers.noise_estimate.resolve_noise_std`; warns). Computed once per call and
        recorded in ``Reconstruction.options`` (``noise_std``, ``noise_std_source``)."""
        if "noise_std" not in self.shared:
            from .noise_estimate import resolve_noise_std

            s, src = resolve_noise_std(value, self.y[: self.base_batch], self.method)  # per caller's sinogram
            self.shared["noise_std"] = s
            self.shared["noise_std_source"] = src
        s = self.shared["noise_std"]
        return s.repeat(self.copies, 1, 1, 1) if self.copies > 1 else s

    def noise_var_vec(self, value=None) -> torch.Tensor:
        """σ² per batch element, shape ``(B,)``."""
        return self.noise_std(value).reshape(-1) ** 2

    def data_misfit(self, x: torch.Tensor) -> float:
        """½‖Ax − y‖² summed over the caller's sinograms: with stacked posterior samples, over the first
        copy only (what the first sample's own run records)."""
        b = self.base_batch
        with torch.no_grad():
            return 0.5 * float((self.A(x[:b]) - self.y[:b]).pow(2).sum())

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
        self.check_time()

    def check_time(self) -> bool:
        """Set ``stop`` (and warn once) when the ``time_limit`` option is exceeded; returns ``stop``."""
        limit = getattr(self.options, "time_limit", None)
        if limit is not None and not self.stop and time.perf_counter() - self._t0 > float(limit):
            self.stop = True
            self.shared["stopped"] = f"time_limit {float(limit):g} s after {self._iteration} iterations"
            warnings.warn(f"{self.method}: time_limit={float(limit):g} s reached after {self._iteration} iterations; "
                          "returning the current iterate", TimeLimitWarning, stacklevel=3)
        return self.stop


def _as_sinogram(y, op) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], bool]:
    """Any accepted sinogram layout → ``(B, 1, A, D)`` float tensor plus a function restoring layout."""
    is_numpy = isinstance(y, np.ndarray)
    if is_numpy:
        if not np.issubdtype(y.dtype, np.floating) and not np.issubdtype(y.dtype, np.integer):
            raise ShapeError(f"sinogram has dtype {y.dtype}; expected a real floating-point array")
        if y.dtype == np.float16:
            raise ShapeError("sinogram has dtype float16, which the solvers do not support (too little precision "
                             "for iterative solves); convert it: y.astype(np.float32)")
        y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32 if y.dtype != np.float64 else np.float64))
    if not isinstance(y, torch.Tensor):
        raise ShapeError(f"sinogram must be a torch.Tensor or numpy array, got {type(y).__name__}")
    if y.is_complex():
        raise ShapeError(f"sinogram has dtype {y.dtype}; expected a real floating-point tensor")
    if y.dtype in (torch.float16, torch.bfloat16):
        raise ShapeError(f"sinogram has dtype {y.dtype}, which the solvers do not support (too little precision "
                         "for iterative solves); convert it: y.float()")
    if not y.is_floating_point():
        y = y.float()
    rng = tuple(op.range_shape)
    if y.ndim < 2 or tuple(y.shape[-2:]) != rng:
        raise ShapeError(
            f"sinogram has shape {tuple(y.shape)} but the geometry expects (…, {rng[0]}, {rng[1]}) = "
            f"(…, n_angles, n_detectors); pass the geometry the data was acquired with "
            f"(or transpose a (detectors, angles) array)"
        )
    if y.numel() == 0:
        raise ShapeError(f"sinogram batch is empty (shape {tuple(y.shape)}); pass at least one sinogram")
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


#: what running solver calls froze: id(obj) → [obj, calls in flight, the flag before the first one], for each
#: module (its ``training`` flag) and parameter (its ``requires_grad``) of the priors in use
_FROZEN: dict[int, list] = {}
_FROZEN_LOCK = threading.Lock()


class _FrozenPrior:
    """Within the block the prior is in eval mode without parameter gradients (solvers differentiate
    with respect to images only); each module's training flag and each parameter's requires_grad flag
    are restored afterwards (per module: a network wrapped per call must not take the wrapper's flag).

    Overlapping blocks on one prior (calls from several threads, a solve inside a callback) share one
    freeze: the first in saves a flag and clears it, the last out restores it. (Saving per block would
    hand the prior back frozen when two calls overlap: the second would save the first's frozen flags.)"""

    def __init__(self, pv):
        self.module = pv.velocity if pv is not None and isinstance(pv.velocity, torch.nn.Module) else None

    def _objects(self):
        return [(m, "training") for m in self.module.modules()] + [(p, "requires_grad") for p in self.module.parameters()]

    def __enter__(self):
        if self.module is None:
            return
        with _FROZEN_LOCK:
            for obj, flag in self._objects():
                entry = _FROZEN.get(id(obj))
                if entry is None:
                    entry = _FROZEN[id(obj)] = [obj, 0, getattr(obj, flag)]
                    if flag == "training":
                        obj.training = False
                    else:
                        obj.requires_grad_(False)
                entry[1] += 1

    def __exit__(self, *exc):
        if self.module is None:
            return
        with _FROZEN_LOCK:
            for obj, flag in self._objects():
                entry = _FROZEN[id(obj)]
                entry[1] -= 1
                if entry[1] == 0:
                    del _FROZEN[id(obj)]
                    if flag == "training":
                        obj.training = entry[2]
                    else:
                        obj.requires_grad_(entry[2])
