"""Reconstruction methods behind one contract (see :mod:`ctflow.solvers.base`).

``ctflow.reconstruct(sinogram, geometry, method=..., prior=..., **options)`` is the one-call API;
``get_solver(name, **options)`` returns a solver object ``solver(y, operator, prior, x_init, callback)``;
``list_methods()`` names them all (also ``ctflow methods``).
"""

from __future__ import annotations

import importlib

from .base import SOLVERS, Reconstruction, SolveContext, Solver, SolverOptions, get_solver, list_methods, register

# one module per method; importing registers it
_METHOD_MODULES = ("fbp_solver", "classical", "tv", "dflow", "msflow", "pigfm", "cpigfm", "otode", "pnpflow", "dps")


def _import_methods() -> None:
    for m in _METHOD_MODULES:
        try:
            importlib.import_module(f"{__name__}.{m}")
        except ModuleNotFoundError as e:  # a method module not written yet must not break the others
            if e.name != f"{__name__}.{m}":
                raise


_import_methods()
_load_all = True

from .api import reconstruct  # noqa: E402

__all__ = ["SOLVERS", "Reconstruction", "SolveContext", "Solver", "SolverOptions", "get_solver", "list_methods", "reconstruct", "register"]
