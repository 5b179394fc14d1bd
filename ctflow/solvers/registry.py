"""The method registry: ``register`` (class decorator), ``get_solver``, ``list_methods``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Solver

SOLVERS: dict[str, type[Solver]] = {}


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: make a solver available by ``cls.name`` (``ctflow methods``, ``reconstruct``)."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no name")
    SOLVERS[cls.name] = cls
    return cls


def list_methods() -> dict[str, str]:
    """``{name: one-line description}`` of every registered method, sorted by name."""
    _load_methods()
    return {k: SOLVERS[k].description for k in sorted(SOLVERS)}


def get_solver(method: str, **options) -> Solver:
    """Instantiate the registered solver ``method`` with ``options`` (unknown method/option → error)."""
    _load_methods()
    if method not in SOLVERS:
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(sorted(SOLVERS))} (see `ctflow methods`)")
    return SOLVERS[method](**options)


def _load_methods() -> None:
    """Import the method families (registration happens on import)."""
    from . import classical, guided, latent  # noqa: F401
