r"""ODL interop: a ctflow ray transform inside ODL's solvers, an ODL operator inside ctflow's.

* :func:`as_odl_operator` wraps a :class:`~ctflow.RayTransform` (or anything with ``forward``/``adjoint``)
  as a linear ``odl.Operator`` with its adjoint, so ODL's solvers (``odl.solvers.pdhg``,
  ``conjugate_gradient_normal``, …), functionals and diagnostics work on it.
* :func:`from_odl_operator` wraps a linear ``odl.Operator`` between 2D spaces (typically
  ``odl.applications.tomo.RayTransform``) as a ctflow operator — a ``torch.nn.Module`` with ``forward``,
  ``adjoint``/``T``, ``domain_shape``/``range_shape``, ``operator_norm()``, ``adjointness_test()`` and
  autograd — that every ctflow solver accepts; for a 2D parallel-beam ODL ray transform it also derives
  the equivalent ctflow ``geometry``, so FBP-initialised methods and ``fbp`` work too.

**Image layout.** ODL indexes images ``[x, y]`` (first axis along x, y increasing with the second
index); ctflow's images are ``[row from the top, column]`` (ASTRA's convention). With the default
``image_layout="ctflow"`` the wrappers convert between the two, ``ctflow_image = flipud(odl_array.T)``,
so an ODL parallel-beam ray transform and ctflow's ``RayTransform`` of the same geometry give the same
sinogram for the same picture (checked in ``tests/test_odl_interop.py``). Sinograms are
``(n_angles, n_detectors)`` in both libraries. ``image_layout="odl"`` passes arrays through unchanged.

**Adjoints and inner products.** ctflow's adjoint is the transpose with respect to plain sums.
ODL's adjoint is taken with respect to the spaces' inner products, which are weighted by a
constant (``space.weighting.const``: ``uniform_discr`` uses the cell volume, and ODL's ray transform
weights its range by Δθ·Δs). The wrappers scale by :math:`w_\text{range}/w_\text{domain}` (ctflow → ODL)
and its inverse (ODL → ctflow), so both adjoints are exact in their own library's sense. Spaces with
non-constant weights are refused. Note what this means for ODL's functionals: on the default
(physical) spaces ``L2NormSquared`` and ``GroupL1Norm`` are weighted sums; pass spaces with
``weighting=1.0`` to get the plain sums ctflow's solvers use (``tests/test_odl_interop.py`` does, to
compare ODL's PDHG-TV with ctflow's ``tv``).

ODL is a required dependency of ctflow; this module imports it only when called.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, GeometryError, ShapeError

__all__ = ["OdlOperator", "as_odl_operator", "from_odl_operator"]

LAYOUTS = ("ctflow", "odl")


def _check_layout(image_layout: str) -> None:
    if image_layout not in LAYOUTS:
        raise ConfigError(f"image_layout must be one of {LAYOUTS}, got {image_layout!r}")


def _const_weight(space) -> float:
    """The constant weight of an ODL space's inner product (1 for unweighted spaces)."""
    w = getattr(space, "weighting", None)
    if w is None:
        return 1.0
    const = getattr(w, "const", None)
    if const is None:
        raise ConfigError(f"ctflow.interop.odl supports spaces with a constant inner-product weight, not {w!r}")
    try:
        return float(const)
    except (TypeError, ValueError):
        raise ConfigError(f"ctflow.interop.odl: non-scalar weighting {w!r}") from None


def _to_ctflow_image(arr: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(np.flipud(arr.T)) if layout == "ctflow" else np.ascontiguousarray(arr)


def _to_odl_image(img: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(np.flipud(img).T) if layout == "ctflow" else np.ascontiguousarray(img)


# --------------------------------------------------------------------------------------------------
# ctflow → ODL
# --------------------------------------------------------------------------------------------------
def _default_spaces(op, dtype: str):
    import odl

    h, w = op.domain_shape
    geom = getattr(op, "geometry", None)
    p = float(getattr(geom, "pixel_size", 1.0))
    domain = odl.uniform_discr([-w * p / 2, -h * p / 2], [w * p / 2, h * p / 2], (w, h), dtype=dtype)
    n_a, n_d = op.range_shape
    if geom is not None:
        angles = np.asarray(geom.angles, dtype=np.float64)
        step = float(np.mean(np.diff(angles))) if angles.size > 1 else 1.0
        a0, a1 = float(angles.min()), float(angles.min()) + step * n_a
        s = float(geom.detector_spacing)
        u0 = float(geom.detector_offset) - n_d * s / 2
        rng = odl.uniform_discr([a0, u0], [a1, u0 + n_d * s], (n_a, n_d), dtype=dtype)
    else:
        rng = odl.uniform_discr([0.0, 0.0], [float(n_a), float(n_d)], (n_a, n_d), dtype=dtype)
    return domain, rng


def as_odl_operator(ray_transform, domain=None, range=None, image_layout: str = "ctflow", dtype: str = "float32"):
    """Wrap a ctflow operator (``RayTransform`` or any ``forward``/``adjoint`` pair with ``domain_shape`` and
    ``range_shape``) as a linear ``odl.Operator`` whose ``.adjoint`` is exact in ODL's inner products.

    ``domain``/``range``: ODL spaces of shape ``(W, H)`` (``image_layout="ctflow"``; ``(H, W)`` for ``"odl"``)
    and ``(n_angles, n_detectors)``; by default ``uniform_discr`` spaces in physical units (mm, radians),
    weighted by their cell volumes like ODL's own ``RayTransform``. ``dtype`` of the default spaces:
    ``"float32"`` or ``"float64"``.

    >>> R = as_odl_operator(ctflow.RayTransform("parallel-64-sparse30"))          # doctest: +SKIP
    >>> odl.diagnostics.OperatorTest(R).adjoint()                                   # doctest: +SKIP
    """
    import odl

    _check_layout(image_layout)
    if domain is None or range is None:
        d0, r0 = _default_spaces(ray_transform, dtype)
        domain = d0 if domain is None else domain
        range = r0 if range is None else range
    h, w = ray_transform.domain_shape
    want = (w, h) if image_layout == "ctflow" else (h, w)
    if tuple(domain.shape) != want:
        raise ShapeError(f"the ODL domain has shape {tuple(domain.shape)}; expected {want} for {h}×{w} images "
                         f"(image_layout={image_layout!r})")
    if tuple(range.shape) != tuple(ray_transform.range_shape):
        raise ShapeError(f"the ODL range has shape {tuple(range.shape)}; expected {tuple(ray_transform.range_shape)}")
    scale = _const_weight(range) / _const_weight(domain)

    class CtflowOperator(odl.Operator):
        """A ctflow operator as a linear ODL operator (see :func:`ctflow.interop.odl.as_odl_operator`)."""

        def __init__(self):
            super().__init__(domain, range, linear=True)
            self.ctflow_operator = ray_transform
            self._adj = _Adjoint(self)

        def _call(self, x):
            img = _to_ctflow_image(np.asarray(x.asarray()), image_layout)
            out = ray_transform(torch.from_numpy(img))
            return out.detach().cpu().numpy().astype(self.range.dtype, copy=False)

        @property
        def adjoint(self):
            return self._adj

        def __repr__(self) -> str:
            return f"as_odl_operator({ray_transform!r})"

    class _Adjoint(odl.Operator):
        def __init__(self, fwd):
            super().__init__(range, domain, linear=True)
            self._fwd = fwd

        def _call(self, y):
            sino = np.ascontiguousarray(np.asarray(y.asarray()))
            img = ray_transform.adjoint(torch.from_numpy(sino)).detach().cpu().numpy()
            return (_to_odl_image(img, image_layout) * scale).astype(self.range.dtype, copy=False)

        @property
        def adjoint(self):
            return self._fwd

        def __repr__(self) -> str:
            return f"{self._fwd!r}.adjoint"

    return CtflowOperator()


# --------------------------------------------------------------------------------------------------
# ODL → ctflow
# --------------------------------------------------------------------------------------------------
class _Apply(torch.autograd.Function):
    """y = A x through ODL; the gradient is Aᵀ (itself differentiable)."""

    @staticmethod
    def forward(ctx, x, op, adjoint):  # type: ignore[override]
        ctx.op, ctx.adjoint = op, adjoint
        return op._run(x, adjoint)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _Apply.apply(grad.contiguous(), ctx.op, not ctx.adjoint), None, None


def _parallel_geometry_of(op, image_layout: str):
    """The ctflow ParallelBeamGeometry equivalent to an ODL 2D parallel-beam ray transform, or None."""
    try:
        from odl.applications import tomo
    except ImportError:  # pragma: no cover
        return None
    geo = getattr(op, "geometry", None)
    space = op.domain
    if image_layout != "ctflow" or not isinstance(geo, tomo.Parallel2dGeometry):
        return None
    if not getattr(space, "is_uniform", False) or space.ndim != 2:
        return None
    cell = np.asarray(space.cell_sides, dtype=np.float64)
    centre = (np.asarray(space.min_pt) + np.asarray(space.max_pt)) / 2
    dpart = geo.det_partition
    if not math.isclose(cell[0], cell[1], rel_tol=1e-9) or np.any(np.abs(centre) > 1e-9 * cell[0]) or not dpart.is_uniform:
        return None
    if np.any(np.abs(np.asarray(geo.translation)) > 0) or not np.allclose(geo.det_pos_init, (0, 1)):
        return None
    from ..geometry import ParallelBeamGeometry

    (lo,), (hi,) = dpart.min_pt, dpart.max_pt
    n_det = int(dpart.shape[0])
    try:
        return ParallelBeamGeometry(
            image_shape=(int(space.shape[1]), int(space.shape[0])),
            angles=[float(a) for a in np.asarray(geo.angles)],
            n_detectors=n_det,
            pixel_size=float(cell[0]),
            detector_spacing=float((hi - lo) / n_det),
            detector_offset=float((hi + lo) / 2),
        )
    except (GeometryError, ValueError, TypeError):  # a geometry ctflow cannot express: leave it out
        return None


class OdlOperator(torch.nn.Module):
    """A linear ODL operator as a ctflow operator (made by :func:`from_odl_operator`).

    Maps ``(..., H, W)`` images to ``(..., n_angles, n_detectors)`` sinograms like
    :class:`~ctflow.RayTransform` (torch or numpy, float32/float64 kept, any leading dims, autograd both
    ways); each image is one ODL call on the CPU. ``geometry`` is the equivalent ctflow geometry when one
    could be derived (2D parallel beam), else ``None`` (then ``fbp`` is unavailable and FBP-initialised
    solvers start from a scaled adjoint instead).
    """

    backend_name = "odl"

    def __init__(self, odl_op, geometry=None, image_layout: str = "ctflow"):
        super().__init__()
        _check_layout(image_layout)
        if not getattr(odl_op, "is_linear", False):
            raise ConfigError("from_odl_operator needs a linear odl.Operator (a ray transform or similar)")
        dshape, rshape = tuple(odl_op.domain.shape), tuple(odl_op.range.shape)
        if len(dshape) != 2 or len(rshape) != 2:
            raise ShapeError(f"from_odl_operator needs 2D domain and range spaces, got {dshape} → {rshape}")
        self.odl_operator = odl_op
        self.image_layout = image_layout
        self._domain = (dshape[1], dshape[0]) if image_layout == "ctflow" else dshape
        self._range = rshape
        self._scale = _const_weight(odl_op.domain) / _const_weight(odl_op.range)  # Euclidean Aᵀ = (w_D/w_R) A*
        self._dtype = np.dtype(getattr(odl_op.domain, "dtype", np.float32))
        self.geometry = geometry if geometry is not None else _parallel_geometry_of(odl_op, image_layout)
        impl = getattr(odl_op, "impl", None)
        self.projector = f"odl:{type(odl_op).__name__}:{impl}" if impl else f"odl:{type(odl_op).__name__}"
        self.check_finite = True
        self._norm: float | None = None
        self._adj = None

    @property
    def domain_shape(self) -> tuple[int, int]:
        return self._domain

    @property
    def range_shape(self) -> tuple[int, int]:
        return self._range

    def _run(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        if adjoint and self._adj is None:
            self._adj = self.odl_operator.adjoint  # ODL builds a new back projection per access: keep one
        op = self._adj if adjoint else self.odl_operator
        space = op.domain
        flat = x.detach().reshape(-1, *x.shape[-2:]).to("cpu", torch.float64).numpy()
        outs = []
        for item in flat:
            arr = item if adjoint else _to_odl_image(item, self.image_layout)
            res = np.asarray(op(space.element(arr.astype(space.dtype, copy=False))).asarray(), dtype=np.float64)
            outs.append(self._scale * _to_ctflow_image(res, self.image_layout) if adjoint else res)
        out = torch.from_numpy(np.stack(outs)) if outs else torch.zeros((0, *(self._domain if adjoint else self._range)), dtype=torch.float64)
        shape = (*x.shape[:-2], *(self._domain if adjoint else self._range))
        return out.reshape(shape).to(device=x.device, dtype=x.dtype)

    def _apply_op(self, x: Any, adjoint: bool):
        expected = self._range if adjoint else self._domain
        is_numpy = isinstance(x, np.ndarray)
        t = torch.from_numpy(np.ascontiguousarray(x)) if is_numpy else x
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ShapeError(f"expects a floating-point torch tensor or numpy array, got {type(x).__name__}")
        if t.ndim < 2 or tuple(t.shape[-2:]) != tuple(expected):
            what = "sinogram" if adjoint else "image"
            raise ShapeError(f"the ODL operator expects {what}s of shape (..., {expected[0]}, {expected[1]}), got {tuple(t.shape)}")
        if self.check_finite and not bool(torch.isfinite(t).all()):
            raise ShapeError("the input contains NaN/Inf values")
        out = _Apply.apply(t, self, adjoint)
        return out.detach().numpy() if is_numpy else out

    def forward(self, x):
        """:math:`A x`: images ``(..., H, W)`` → sinograms ``(..., n_angles, n_detectors)``."""
        return self._apply_op(x, adjoint=False)

    def adjoint(self, y):
        """:math:`A^\\top y` (the transpose for plain sums)."""
        return self._apply_op(y, adjoint=True)

    @property
    def T(self):
        from ..operators.ray_transform import AdjointRayTransform

        return AdjointRayTransform(self)

    # the same diagnostics as RayTransform (they use only forward/adjoint and the shapes)
    from ..operators.ray_transform import RayTransform as _RT

    operator_norm = _RT.operator_norm
    adjointness_test = _RT.adjointness_test
    del _RT

    def extra_repr(self) -> str:
        return f"odl_operator={self.odl_operator!r}, image_layout={self.image_layout!r}, geometry={self.geometry!r}"


def from_odl_operator(op, geometry=None, image_layout: str = "ctflow") -> OdlOperator:
    """Wrap a linear ``odl.Operator`` (2D domain → 2D range, e.g. ``odl.applications.tomo.RayTransform``)
    as a ctflow operator usable by every solver (:class:`OdlOperator`). ``geometry``: the equivalent ctflow
    geometry, if you know it (derived automatically for 2D parallel-beam ray transforms).

    >>> A = from_odl_operator(tomo.RayTransform(space, tomo.parallel_beam_geometry(space, 30)))  # doctest: +SKIP
    >>> ctflow.get_solver("tv")(y, A).image                                                      # doctest: +SKIP
    """
    return OdlOperator(op, geometry=geometry, image_layout=image_layout)
