"""Options every solver has, the one option vocabulary, and the shared validators each method's options call.

**Vocabulary** (the same name means the same thing in every method):

* ``box=(lo, hi)``: keep the image in [lo, hi] (either end may be ``None``: unbounded; ``box=(0, None)``
  is x ≥ 0; ``None``: no constraint). Replaces ``clip``, ``clip_negative`` and ``nonnegative``.
* ``jacobian_free``: ``True`` drops the network Jacobian from a gradient (no backpropagation through the
  prior); replaces MS-Flow's ``jacobian="free"|"vjp"``.
* ``step_size``: the method's (relative) gradient step; replaces ``lr``.
* ``init``: the starting image, one of :data:`INITS` (``fbp``, ``tikhonov``, ``adjoint``, ``pinv``,
  ``zeros``, ``noise``; see :func:`ctflow.solvers.initial.initial_image`).
* ``noise_std``: the sinogram noise σ, a number or one per sinogram; ``None`` estimates it per sinogram
  (:mod:`ctflow.solvers.noise_estimate`).
* ``time_limit``: seconds; a solver stops at the end of the iteration in which it is exceeded (with a warning).

Old names raise a :class:`ConfigError` that names the new one (:data:`RENAMED`).

**Validation**: every numeric option must be finite (NaN/Inf raise a ``ConfigError`` naming the option);
iteration and step counts are integers in [1, :data:`MAX_COUNT`] (use ``time_limit`` to bound a long run).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import ClassVar

from ..errors import ConfigError

#: the cap on every iteration / step count option (a run this long should use ``time_limit``)
MAX_COUNT = 100_000
#: the cap on ``n_samples``
MAX_SAMPLES = 10_000

#: old option name → how to say it now
RENAMED = {
    "clip": "box=(lo, hi)",
    "clip_negative": "box=(0, None)",
    "nonnegative": "box=(0, None) (or box=None for no constraint)",
    "jacobian": "jacobian_free=True|False (jacobian='free' → jacobian_free=True, 'vjp' → False)",
    "lr": "step_size",
}

#: the one init vocabulary (each method documents what it does with each)
INITS = ("fbp", "tikhonov", "adjoint", "pinv", "zeros", "noise")

#: options that are not method settings (a preset never sets them; passing them keeps the preset)
GENERIC_OPTIONS = ("seed", "progress", "n_samples", "time_limit", "noise_std")


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Options every solver has. ``seed`` fixes every random draw; ``progress`` shows tqdm bars;
    ``time_limit`` (seconds) stops the solver after the iteration in which it is exceeded.

    Subclasses declare ``search_space`` (a class variable): ``{option: spec}`` with spec
    ``("float", lo, hi)``, ``("logfloat", lo, hi)``, ``("int", lo, hi)`` or ``("choice", [values])`` —
    the hyper-parameters ``ctflow tune`` searches — ``tune_fixed``, options held fixed while tuning, and
    ``tune_start``, documented good settings the study evaluates first (after the defaults)."""

    search_space: ClassVar[dict] = {}
    tune_fixed: ClassVar[dict] = {}
    tune_start: ClassVar[list] = []

    seed: int = 0
    progress: bool = False
    n_samples: int = 1
    time_limit: float | None = None

    def __post_init__(self):
        check_finite_fields(self)
        check_integer(self, "seed")
        check_bool(self, "progress")
        check_count(self, "n_samples", cap=MAX_SAMPLES)
        check_positive(self, "time_limit")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def renamed_error(method: str, names) -> ConfigError | None:
    """A ConfigError for old option names among ``names`` (None if there are none)."""
    old = [n for n in names if n in RENAMED]
    if not old:
        return None
    how = "; ".join(f"{n!r} → {RENAMED[n]}" for n in old)
    return ConfigError(f"method {method!r}: option(s) {old} were renamed in the common vocabulary: {how}")


def _numbers(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return []
    if isinstance(v, numbers.Number):
        return [v]
    if isinstance(v, (tuple, list)):
        return [x for e in v for x in _numbers(e)]
    return []


def check_finite_fields(opts) -> None:
    """Every numeric option (scalars and sequences) must be finite."""
    for f in dataclasses.fields(opts):
        v = getattr(opts, f.name)
        for x in _numbers(v):
            try:
                ok = math.isfinite(complex(x).real) and complex(x).imag == 0
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise ConfigError(f"option {f.name}={v!r} must be finite (got NaN/Inf or a non-real number)")


def _real(name, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ConfigError(f"option {name}={v!r} must be a number")
    if not math.isfinite(float(v)):
        raise ConfigError(f"option {name}={v!r} must be finite")
    return float(v)


def check_positive(opts, *names: str, allow_zero: bool = False, maximum: float | None = None) -> None:
    """Raise a :class:`ConfigError` naming the option if any of ``names`` is not a finite number > 0
    (≥ 0 with ``allow_zero``; ≤ ``maximum`` when given). ``None`` values are skipped."""
    for n in names:
        v = getattr(opts, n)
        if v is None:
            continue
        vals = v if isinstance(v, (tuple, list)) else [v]
        for x in vals:
            x = _real(n, x)
            bad = (x < 0) if allow_zero else (x <= 0)
            if bad:
                rel = "≥ 0" if allow_zero else "> 0"
                raise ConfigError(f"option {n}={v!r} must be {rel}")
            if maximum is not None and x > maximum:
                raise ConfigError(f"option {n}={v!r} is beyond the supported range (≤ {maximum:g})")


def check_range(opts, name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
    """Option ``name`` is a finite number in the interval (open ends as given)."""
    v = getattr(opts, name)
    x = _real(name, v)
    ok = (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not ok:
        raise ConfigError(f"option {name}={v!r} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")


def check_choice(opts, name: str, choices) -> None:
    v = getattr(opts, name)
    if not isinstance(v, str) or v not in choices:
        raise ConfigError(f"option {name}={v!r} must be one of {sorted(choices)}")


def check_integer(opts, *names: str) -> None:
    """Raise a :class:`ConfigError` naming the option unless each of ``names`` is an integer."""
    for n in names:
        v = getattr(opts, n)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) or not float(v).is_integer():
            raise ConfigError(f"option {n}={v!r} must be an integer")


def check_count(opts, *names: str, cap: int = MAX_COUNT) -> None:
    """Iteration / step counts: integers in [1, cap] (``None`` skipped). Longer runs: use ``time_limit``."""
    check_integer(opts, *names)
    for n in names:
        v = getattr(opts, n)
        if v is None:
            continue
        if int(v) < 1:
            raise ConfigError(f"option {n}={v!r} must be ≥ 1")
        if int(v) > cap:
            raise ConfigError(f"option {n}={v!r} exceeds the cap {cap}; to bound a long run use time_limit=SECONDS")


def check_bool(opts, *names: str) -> None:
    """Raise a :class:`ConfigError` naming the option unless each of ``names`` is True/False."""
    for n in names:
        v = getattr(opts, n)
        if v is not True and v is not False:
            raise ConfigError(f"option {n}={v!r} must be True or False")


def check_box(opts, name: str = "box") -> None:
    """Option ``box`` is ``None`` or ``(lo, hi)``; either end may be ``None`` (unbounded), lo < hi.
    Normalised in place to a tuple of floats / None."""
    b = getattr(opts, name)
    if b is None:
        return
    if isinstance(b, str) or not hasattr(b, "__len__") or len(b) != 2:
        raise ConfigError(f"option {name}={b!r} must be None or a (lo, hi) pair (an end may be None)")
    ends = []
    for v in b:
        if v is None:
            ends.append(None)
            continue
        ends.append(_real(name, v))
    lo, hi = ends
    if lo is None and hi is None:
        ends = None
    elif lo is not None and hi is not None and not lo < hi:
        raise ConfigError(f"option {name}={b!r} needs lo < hi")
    object.__setattr__(opts, name, tuple(ends) if ends is not None else None)


def apply_box(x, box):
    """Clamp ``x`` into ``box`` (``None`` or ``(lo, hi)`` with optional ends)."""
    if box is None:
        return x
    lo, hi = box
    return x.clamp(min=lo, max=hi)


def check_interval(opts, name: str) -> None:
    """Option ``name`` (a range) is ``None`` or a ``(lo, hi)`` pair with lo < hi."""
    check_box(opts, name)


def check_unit_interval(opts, name: str, allow_zero: bool) -> None:
    """Option ``name`` lies in [0, 1) (``allow_zero``) or (0, 1)."""
    v = getattr(opts, name)
    x = _real(name, v)
    lo_ok = x >= 0.0 if allow_zero else x > 0.0
    if not (lo_ok and x < 1.0):
        raise ConfigError(f"option {name}={v!r} must be in {'[0' if allow_zero else '(0'}, 1)")


def check_noise_std(opts, name: str = "noise_std") -> None:
    """``noise_std`` is None, a number > 0, or a sequence of numbers > 0 (one per sinogram)."""
    v = getattr(opts, name)
    if v is None:
        return
    if hasattr(v, "tolist"):  # numpy / torch
        v = v.tolist()
        object.__setattr__(opts, name, v)
    if isinstance(v, (list, tuple)):
        if len(v) == 0:
            raise ConfigError(f"option {name}=[] must not be empty")
        object.__setattr__(opts, name, tuple(float(_real(name, x)) for x in v))
    check_positive(opts, name)
