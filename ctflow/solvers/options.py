"""Options every solver has, and the shared validators each method's options call."""

from __future__ import annotations

import dataclasses
import math

from ..errors import ConfigError


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
