"""``ctflow.reconstruct``: one call from a sinogram and a geometry to a :class:`Reconstruction`."""

from __future__ import annotations

from ..geometry import load_geometry
from .registry import get_solver
from .result import Reconstruction


def reconstruct(
    sinogram,
    geometry,
    method: str = "msflow",
    prior="default",
    x_init=None,
    callback=None,
    operator=None,
    **options,
) -> Reconstruction:
    """Reconstruct ``sinogram`` ``(…, n_angles, n_detectors)`` acquired with ``geometry`` (a geometry
    object, preset name or YAML/JSON file) by ``method`` (see :func:`ctflow.list_methods`).

    ``prior`` (a shipped name such as ``"default"``, a prior folder, or any ``v(x, t)`` callable) is
    used by the flow methods and ignored by the classical ones. ``options`` are the method's options
    (e.g. ``seed=0``, ``progress=True``, ``n_samples=8``); unknown options raise an error listing the
    valid ones. Pass ``operator`` to reuse a :class:`~ctflow.RayTransform` across calls.

    >>> rec = ctflow.reconstruct(y, "parallel-64-sparse30", method="tv", weight=2e-3)  # doctest: +SKIP
    >>> rec.image, rec.history["data_misfit"][-1], rec.wall_time                      # doctest: +SKIP
    """
    from ..operators import RayTransform

    solver = get_solver(method, **options)
    if operator is None:
        operator = RayTransform(load_geometry(geometry))
    elif geometry is not None and load_geometry(geometry) != operator.geometry:
        from ..errors import GeometryError

        raise GeometryError("reconstruct: the operator was built for a different geometry than the one passed")
    return solver(sinogram, operator, prior=prior if solver.needs_prior else None, x_init=x_init, callback=callback)
