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

**Posterior samples as one batch.** The ``n_samples`` samples are solved together: the B sinograms are
stacked ``k`` times (sample-major, at most :data:`MAX_SAMPLE_BATCH` images per solve, more samples in
further solves; a batch of B > 64 sinograms is solved as it is, one sample at a time). Sample s of every
image is drawn from its own generator seeded ``seed + s``, as when the samples ran one after another, so
the results are those of the separate runs (bit for bit where the operator and the prior are
batch-invariant; otherwise to the last-bit rounding of batched matrix products). ``nfe`` counts each
batched network call once per sample it holds (the cost of running the samples separately), ``history``
is the first sample's. A ``time_limit`` stops the samples of one solve together (before, each sample had
its own limit). With a ``callback`` the samples run one at a time, so the callback sees each sample's
iterates in the caller's batch layout and can stop each.
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

import torch

from ..errors import ConfigError, CTFlowError, NonFiniteError, ShapeError
from ..peak_memory import PeakMemory
from .context import SolveContext, _as_sinogram, _FrozenPrior, _prepare_prior
from .options import SolverOptions, renamed_error
from .result import Reconstruction

__all__ = ["MAX_SAMPLE_BATCH", "Solver", "sample_chunks"]

#: the most images one batched solve holds when a stochastic method's ``n_samples`` are stacked
MAX_SAMPLE_BATCH = 64


def sample_chunks(n_samples: int, batch: int, sequential: bool = False, cap: int = MAX_SAMPLE_BATCH):
    """``(first_sample, n_in_chunk)`` pairs: the posterior samples solved together, as many whole copies of
    the ``batch`` sinograms as fit in ``cap`` images (at least one: a larger batch is never split).
    ``sequential`` (a callback was given: it sees each sample's iterates and may stop each) gives one
    sample per solve."""
    per = 1 if sequential else max(1, int(cap) // max(1, int(batch)))
    return [(first, min(per, n_samples - first)) for first in range(0, n_samples, per)]


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
        err = renamed_error(self.name, sorted(unknown))
        if err is not None:
            raise err
        if unknown:
            raise ConfigError(
                f"method {self.name!r} has no option(s) {sorted(unknown)}; its options are: {', '.join(sorted(allowed))}"
            )
        try:
            self.options = self.Options(**options)
        except (TypeError, ValueError, OverflowError) as e:  # bad option types caught by no validator
            raise ConfigError(f"method {self.name!r}: invalid options: {e}") from None
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
            if getattr(x_init, "dtype", None) in (torch.float16, torch.bfloat16) or str(getattr(x_init, "dtype", "")) == "float16":
                raise ShapeError(f"x_init has dtype {x_init.dtype}, which the solvers do not support; convert it to float32")
            try:
                xi = torch.as_tensor(x_init, dtype=yy.dtype, device=yy.device)
            except (TypeError, ValueError, RuntimeError) as e:
                raise ShapeError(f"x_init must be an image array or tensor: {e}") from None
            h, w = operator.domain_shape
            if xi.ndim < 2 or tuple(xi.shape[-2:]) != (h, w):
                raise ShapeError(f"x_init has shape {tuple(xi.shape)}; expected (…, {h}, {w}) like the reconstruction")
            n_init = xi.numel() // (h * w)
            if n_init not in (1, yy.shape[0]):
                raise ShapeError(f"x_init holds {n_init} images but the sinogram batch has {yy.shape[0]}; "
                                 f"give one image (used for every sinogram) or one per sinogram")
            xi = xi.reshape(-1, 1, h, w).expand(yy.shape[0], 1, h, w).clone()
            if not torch.isfinite(xi).all():
                raise NonFiniteError("x_init contains NaN/Inf values")

        t0 = time.perf_counter()
        samples = []
        history: dict[str, list[float]] = {}
        nfe = 0
        shared: dict = {}
        b = yy.shape[0]
        with PeakMemory(yy.device) as mem:
            chunks = sample_chunks(self.options.n_samples, b, sequential=callback is not None, cap=MAX_SAMPLE_BATCH)
            for first, k in chunks:
                # samples first … first+k−1 as one batch of k stacked copies; sample s seeded seed + s
                seeds = [int(self.options.seed) + s for s in range(first, first + k) for _ in range(b)]
                ys = yy.repeat(k, 1, 1, 1) if k > 1 else yy
                xs = xi.repeat(k, 1, 1, 1) if xi is not None and k > 1 else xi
                ctx = SolveContext(ys, operator, pv, xs, self.options, callback, self.name, shared=shared,
                                   seeds=seeds, copies=k)
                nfe0 = pv.nfe if pv is not None else 0
                try:
                    with torch.inference_mode(False), _FrozenPrior(pv):
                        x = self._solve(ctx)
                except (OverflowError, ZeroDivisionError, FloatingPointError) as e:
                    raise CTFlowError(f"{self.name} diverged ({type(e).__name__}: {e}); lower the guidance / step size "
                                      "or check the noise level") from None
                if not torch.isfinite(x).all():
                    raise CTFlowError(
                        f"{self.name} diverged (NaN/Inf in the result); lower the step size / weights or check the noise level"
                    )
                if pv is not None:  # a batched network call counts once per sample in it: NFE per sample
                    nfe += (pv.nfe - nfe0) * k
                x = x.detach()
                samples.extend(x[j * b : (j + 1) * b] for j in range(k))
                if first == 0:
                    history = ctx.history
        wall = time.perf_counter() - t0
        stack = torch.stack(samples)
        mean = stack.mean(0)
        std = stack.std(0, unbiased=True) if len(samples) > 1 else None
        options = self.options.to_dict()
        if "noise_std" in shared:
            sig = [float(v) for v in shared["noise_std"].reshape(-1).double().cpu()]
            if shared["noise_std_source"] == "given":  # the values as given, not their float32 copies
                given = self.options.noise_std
                sig = list(given) if isinstance(given, (list, tuple)) else [float(given)] * yy.shape[0]
            options["noise_std"] = sig[0] if yy.shape[0] == 1 else sig
            options["noise_std_source"] = shared["noise_std_source"]
        if "stopped" in shared:
            options["stopped"] = shared["stopped"]
        rec = Reconstruction(
            image=restore(mean),
            method=self.name,
            options=options,
            history=history,
            nfe=nfe,
            wall_time=wall,
            peak_memory=mem.bytes,
            peak_memory_kind=mem.kind,
            std=restore(std) if std is not None else None,
            samples=torch.stack([restore(s) for s in samples]) if len(samples) > 1 else None,
        )
        return rec

    def _solve(self, ctx: SolveContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
