"""``ctflow.reconstruct``: one call from a sinogram and a geometry to a :class:`Reconstruction`."""

from __future__ import annotations

from ..geometry import load_geometry
from .options import GENERIC_OPTIONS
from .registry import get_solver
from .result import Reconstruction


def reconstruct(
    sinogram,
    geometry,
    method: str,
    prior="default",
    x_init=None,
    callback=None,
    operator=None,
    preset="auto",
    units: str = "window",
    **options,
) -> Reconstruction:
    """Reconstruct ``sinogram`` ``(…, n_angles, n_detectors)`` acquired with ``geometry`` (a geometry
    object, preset name or YAML/JSON file) by ``method`` (required; see :func:`ctflow.list_methods`).

    **Presets.** With ``preset="auto"`` (the default) and no method options given, the method runs with
    the nearest shipped preset (:mod:`ctflow.solvers.presets`: options tuned by ``ctflow tune`` for this
    method, prior, geometry and noise level; the noise level σ is estimated from the sinogram unless
    ``noise_std`` is given); ``rec.preset`` and ``rec.options["preset"]`` say which. Passing any method
    option (e.g. ``rho=100``) uses the method's defaults plus those options instead; ``seed``,
    ``progress``, ``n_samples``, ``time_limit`` and ``noise_std`` keep the preset. ``preset=None`` never
    uses one; ``preset="NAME"`` or a YAML path uses that one.

    ``prior`` (a shipped name such as ``"default"``, a prior folder, or any ``v(x, t)`` callable) is
    used by the flow methods and ignored by the classical ones. Unknown options raise an error listing
    the valid ones. Pass ``operator`` to reuse a :class:`~ctflow.RayTransform` across calls.

    ``units``: ``"window"`` (default) — the sinogram is in the priors' units; ``"mu"`` — line integrals of
    μ (1/mm, e.g. DICOM-CT-PD): flow methods then reconstruct on a grid of the prior's size covering the field
    of view and return μ (:mod:`ctflow.solvers.units_bridge`); classical methods reconstruct μ directly.

    >>> rec = ctflow.reconstruct(y, "parallel-64-sparse30", method="tv")                 # doctest: +SKIP
    >>> rec.preset["name"], rec.options["noise_std"], rec.metrics(truth)                 # doctest: +SKIP
    """
    from ..operators import RayTransform
    from .presets import use_preset
    from .registry import SOLVERS, _load_methods

    _load_methods()
    get_solver(method)  # unknown method → ConfigError listing the available ones
    if units not in ("window", "mu"):
        from ..errors import ConfigError

        raise ConfigError(f"units must be 'window' (the priors' [0, 1] window) or 'mu' (line integrals of μ), got {units!r}")
    geom = load_geometry(geometry) if geometry is not None else getattr(operator, "geometry", None)
    if operator is None:
        operator = RayTransform(geom)
    elif geometry is not None and geom != operator.geometry:
        from ..errors import GeometryError

        raise GeometryError("reconstruct: the operator was built for a different geometry than the one passed")
    needs_prior = SOLVERS[method].needs_prior
    method_options = [k for k in options if k not in GENERIC_OPTIONS]
    chosen = None
    if preset is not None and preset is not False and (preset != "auto" or not method_options):
        chosen = use_preset(method, geom, sinogram, prior=prior if needs_prior else None, preset=preset,
                            noise_std=options.get("noise_std"))
    opts = dict(options)
    if chosen is not None:
        if chosen["method"] != method:
            from ..errors import ConfigError

            raise ConfigError(f"preset {chosen['name']!r} is for method {chosen['method']!r}, not {method!r}")
        opts = chosen.solver_options() | opts  # the caller's options win
    solver = get_solver(method, **opts)
    if units == "mu" and solver.needs_prior:  # μ line integrals → the prior's window units and back
        from .units_bridge import reconstruct_mu

        rec = reconstruct_mu(solver, sinogram, geom, prior=prior, x_init=x_init, callback=callback)
    else:
        rec = solver(sinogram, operator, prior=prior if solver.needs_prior else None, x_init=x_init, callback=callback)
    if chosen is not None:
        rec.preset = chosen.summary() | {"match": chosen.get("_match")}
        rec.options["preset"] = chosen["name"]
    else:
        rec.options["preset"] = None
    return rec
