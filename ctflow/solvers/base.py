r"""The one solver contract: ``solver(y, operator, prior=None, x_init=None, callback=None) → Reconstruction``.

Every method is a :class:`Solver` subclass in its own module with

* ``name`` / ``description`` (what ``ctflow methods`` lists), ``needs_prior``, ``stochastic``;
* an ``Options`` frozen dataclass (inheriting :class:`SolverOptions`: ``seed``, ``progress`` and,
  for stochastic methods, ``n_samples``) that validates itself in ``__post_init__``;
* ``_solve(ctx) → image`` working on batched tensors ``(B, 1, H, W)`` through a :class:`SolveContext`
  (data, operator, counted prior, seeded generator, history recorder, progress bars).

:meth:`Solver.__call__` does everything shared: input checks with clear errors, layout handling
(``(A, D)``, ``(B, A, D)`` or ``(B, 1, A, D)`` sinograms give images of the matching layout), seeding,
NFE counting, wall time, peak memory and, for stochastic methods with ``n_samples > 1``, the posterior
mean and pixelwise standard deviation.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import CTFlowError, NonFiniteError, ShapeError
from ..errors import ConfigError

__all__ = [
    "Reconstruction",
    "SolveContext",
    "Solver",
    "SolverOptions",
    "CountingVelocity",
    "register",
    "get_solver",
    "list_methods",
    "SOLVERS",
]

SOLVERS: dict[str, type[Solver]] = {}


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: make a solver available by ``cls.name`` (``ctflow methods``, ``reconstruct``)."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no name")
    SOLVERS[cls.name] = cls
    return cls


def list_methods() -> dict[str, str]:
    """``{name: one-line description}`` of every registered method, sorted by name."""
    from . import _load_all  # noqa: F401  (import side effect: registration)

    return {k: SOLVERS[k].description for k in sorted(SOLVERS)}


def get_solver(method: str, **options) -> Solver:
    """Instantiate the registered solver ``method`` with ``options`` (unknown method/option → error)."""
    from . import _load_all  # noqa: F401

    if method not in SOLVERS:
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(sorted(SOLVERS))} (see `ctflow methods`)")
    return SOLVERS[method](**options)


# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Options every solver has. ``seed`` fixes every random draw; ``progress`` shows tqdm bars."""

    seed: int = 0
    progress: bool = False
    n_samples: int = 1

    def __post_init__(self):
        if int(self.n_samples) < 1:
            raise ConfigError(f"n_samples must be ≥ 1, got {self.n_samples}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def check_positive(opts, *names: str, allow_zero: bool = False) -> None:
    """Raise a :class:`ConfigError` naming the option if any of ``names`` is negative (or zero)."""
    for n in names:
        v = getattr(opts, n)
        if v is None:
            continue
        if isinstance(v, (tuple, list)):
            bad = any((x < 0) if allow_zero else (x <= 0) for x in v)
        else:
            bad = (v < 0) if allow_zero else (v <= 0)
        if bad:
            rel = "≥ 0" if allow_zero else "> 0"
            raise ConfigError(f"option {n}={v!r} must be {rel}")


def check_choice(opts, name: str, choices) -> None:
    v = getattr(opts, name)
    if v not in choices:
        raise ConfigError(f"option {name}={v!r} must be one of {sorted(choices)}")


def check_integer(opts, *names: str) -> None:
    """Raise a :class:`ConfigError` naming the option unless each of ``names`` is an integer."""
    for n in names:
        v = getattr(opts, n)
        if isinstance(v, bool) or not float(v).is_integer():
            raise ConfigError(f"option {n}={v!r} must be an integer")


def check_bool(opts, *names: str) -> None:
    """Raise a :class:`ConfigError` naming the option unless each of ``names`` is True/False."""
    for n in names:
        v = getattr(opts, n)
        if v not in (True, False):
            raise ConfigError(f"option {n}={v!r} must be True or False")


def check_interval(opts, name: str) -> None:
    """Option ``name`` (a box / clip range) is ``None`` or a ``(lo, hi)`` pair with lo < hi."""
    b = getattr(opts, name)
    if b is None:
        return
    try:
        lo, hi = (float(v) for v in b)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name}={b!r} must be None or a (lo, hi) pair") from None
    if not lo < hi:
        raise ConfigError(f"option {name}={b!r} needs lo < hi")


def check_unit_interval(opts, name: str, allow_zero: bool) -> None:
    """Option ``name`` lies in [0, 1) (``allow_zero``) or (0, 1)."""
    v = getattr(opts, name)
    lo_ok = v >= 0.0 if allow_zero else v > 0.0
    if not (math.isfinite(v) and lo_ok and v < 1.0):
        raise ConfigError(f"option {name}={v!r} must be in {'[0' if allow_zero else '(0'}, 1)")


# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Reconstruction:
    """A reconstruction and how it was made.

    ``image`` has the layout of the input sinogram's leading dims (``(H, W)``, ``(B, H, W)`` or
    ``(B, 1, H, W)``); ``std`` (same layout) and ``samples`` (``(n_samples, *image.shape)``) are set
    for stochastic methods run with ``n_samples > 1``. ``history`` maps a term name (``data_misfit`` =
    ½‖Ax − y‖² summed over the batch, objective terms, …) to its per-iteration values; ``nfe`` counts
    forward evaluations of the prior network (a batched call counts once); ``peak_memory`` is bytes:
    CUDA peak allocated during the call, or the process's RSS high-water mark on CPU
    (``peak_memory_kind`` says which).
    """

    image: torch.Tensor
    method: str
    options: dict
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    nfe: int = 0
    wall_time: float = 0.0
    peak_memory: int = 0
    peak_memory_kind: str = "cpu_rss_high_water"
    std: torch.Tensor | None = None
    samples: torch.Tensor | None = None

    def numpy(self) -> np.ndarray:
        return self.image.detach().cpu().numpy()

    def metrics(self, truth, data_range: float | None = None) -> dict[str, float]:
        """PSNR (dB), SSIM and RMSE against ``truth`` (same layout as ``image``)."""
        from .. import metrics as m

        x = self.numpy()
        ref = truth.detach().cpu().numpy() if isinstance(truth, torch.Tensor) else np.asarray(truth)
        if ref.shape != x.shape:
            raise ShapeError(f"truth has shape {ref.shape} but the reconstruction is {x.shape}")
        return {
            "psnr": float(np.mean(m.psnr(x, ref, data_range=data_range))),
            "ssim": float(np.mean(m.ssim(x, ref, data_range=data_range))),
            "rmse": float(np.mean(m.rmse(x, ref))),
        }

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return {
            "method": self.method,
            "options": self.options,
            "nfe": self.nfe,
            "wall_time_s": self.wall_time,
            "peak_memory_bytes": self.peak_memory,
            "peak_memory_kind": self.peak_memory_kind,
            "final": {k: v[-1] for k, v in self.history.items() if v},
            "image_shape": list(self.image.shape),
            "has_std": self.std is not None,
        }

    def __repr__(self) -> str:
        return (
            f"Reconstruction(method={self.method!r}, image={tuple(self.image.shape)}, nfe={self.nfe}, "
            f"wall_time={self.wall_time:.2f}s, iterations={max((len(v) for v in self.history.values()), default=0)})"
        )


# ------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
def _peak_rss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


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


class Solver:
    """Base class: subclasses set ``name``, ``description``, ``Options`` and implement ``_solve``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_prior: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False
    Options: ClassVar[type] = SolverOptions

    def __init__(self, **options):
        allowed = {f.name for f in dataclasses.fields(self.Options)}
        unknown = set(options) - allowed
        if unknown:
            raise ConfigError(
                f"method {self.name!r} has no option(s) {sorted(unknown)}; its options are: {', '.join(sorted(allowed))}"
            )
        try:
            self.options = self.Options(**options)
        except TypeError as e:  # pragma: no cover - dataclass signature errors
            raise ConfigError(f"method {self.name!r}: {e}") from None
        if not self.stochastic and self.options.n_samples != 1:
            raise ConfigError(f"method {self.name!r} is deterministic; n_samples must be 1 (got {self.options.n_samples})")

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.options, f.name)
            for f in dataclasses.fields(self.options)
            if getattr(self.options, f.name) != f.default
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ---- the one call signature ---------------------------------------------------------------
    def __call__(self, y, operator, prior=None, x_init=None, callback=None) -> Reconstruction:
        """Reconstruct from sinogram ``y`` with ``operator`` (a :class:`~ctflow.RayTransform`)."""
        from ..operators import RayTransform

        if not isinstance(operator, RayTransform) and not all(
            hasattr(operator, a) for a in ("adjoint", "domain_shape", "range_shape")
        ):
            raise TypeError(
                f"operator must be a ctflow.RayTransform (or have forward/adjoint/domain_shape/range_shape), "
                f"got {type(operator).__name__}; build one with ctflow.RayTransform(geometry)"
            )
        yy, restore, is_numpy = _as_sinogram(y, operator)
        if self.needs_prior and prior is None:
            raise ConfigError(f"method {self.name!r} needs a prior: pass prior='default', a prior folder or a VelocityModel")
        pv = _prepare_prior(prior, operator, yy.device, yy.dtype) if prior is not None else None
        xi = None
        if x_init is not None:
            xi = torch.as_tensor(x_init, dtype=yy.dtype, device=yy.device)
            h, w = operator.domain_shape
            if tuple(xi.shape[-2:]) != (h, w):
                raise ShapeError(f"x_init has shape {tuple(xi.shape)}; expected (…, {h}, {w}) like the reconstruction")
            xi = xi.reshape(-1, 1, h, w).expand(yy.shape[0], 1, h, w).clone()
            if not torch.isfinite(xi).all():
                raise NonFiniteError("x_init contains NaN/Inf values")

        cuda = yy.is_cuda
        if cuda:
            torch.cuda.synchronize(yy.device)
            torch.cuda.reset_peak_memory_stats(yy.device)
            base_mem = torch.cuda.memory_allocated(yy.device)
        t0 = time.perf_counter()
        samples = []
        history: dict[str, list[float]] = {}
        nfe = 0
        for s in range(self.options.n_samples):
            opts = dataclasses.replace(self.options, seed=self.options.seed + s) if s else self.options
            ctx = SolveContext(yy, operator, pv, xi, opts, callback, self.name)
            with torch.inference_mode(False), _FrozenPrior(pv):
                x = self._solve(ctx)
            if not torch.isfinite(x).all():
                raise CTFlowError(
                    f"{self.name} diverged (NaN/Inf in the result); lower the step size / weights or check the noise level"
                )
            samples.append(x.detach())
            if s == 0:
                history = ctx.history
        if pv is not None:
            nfe = pv.nfe
        if cuda:
            torch.cuda.synchronize(yy.device)
            peak = int(torch.cuda.max_memory_allocated(yy.device) - base_mem)
            kind = "cuda_max_allocated"
        else:
            peak, kind = _peak_rss_bytes(), "cpu_rss_high_water"
        wall = time.perf_counter() - t0
        stack = torch.stack(samples)
        mean = stack.mean(0)
        std = stack.std(0, unbiased=True) if len(samples) > 1 else None
        rec = Reconstruction(
            image=restore(mean),
            method=self.name,
            options=self.options.to_dict(),
            history=history,
            nfe=nfe,
            wall_time=wall,
            peak_memory=peak,
            peak_memory_kind=kind,
            std=restore(std) if std is not None else None,
            samples=torch.stack([restore(s) for s in samples]) if len(samples) > 1 else None,
        )
        return rec

    def _solve(self, ctx: SolveContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
