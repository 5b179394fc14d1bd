"""Reconstruction methods behind one contract (see :mod:`ctflow.solvers.base`).

Rooms: ``base`` (the :class:`Solver` call), ``options`` (shared options and validators), ``context``
(what ``_solve`` works with), ``result`` (:class:`Reconstruction`), ``registry``, ``api``
(``reconstruct``); shared maths in ``linalg``, ``tv_ops`` and ``initial``. The methods live in three
families: ``classical/`` (fbp, sirt, cgls, tikhonov, tv), ``latent/`` (dflow, msflow: optimise the
prior's latent noise) and ``guided/`` (pigfm, cpigfm, otode, pnpflow, dps: guide the flow's sampling).

``ctflow.reconstruct(sinogram, geometry, method=..., prior=..., **options)`` is the one-call API;
``get_solver(name, **options)`` returns a solver object ``solver(y, operator, prior, x_init, callback)``;
``list_methods()`` names them all (also ``ctflow methods``).
"""

from __future__ import annotations

from . import classical, guided, latent  # noqa: F401  (importing a family registers its methods)
from .api import reconstruct
from .base import Solver
from .context import SolveContext
from .options import SolverOptions
from .registry import SOLVERS, get_solver, list_methods, register
from .result import Reconstruction

__all__ = ["SOLVERS", "Reconstruction", "SolveContext", "Solver", "SolverOptions", "get_solver", "list_methods", "reconstruct", "register"]
