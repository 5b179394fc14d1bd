"""``fbp``: filtered back-projection (parallel and fan beam) behind the solver contract."""

from __future__ import annotations

import dataclasses

from ...operators.fbp import FILTERS, fbp
from ..base import Solver
from ..context import SolveContext
from ..options import SolverOptions, apply_box, check_box, check_choice, check_range
from ..registry import register


@dataclasses.dataclass(frozen=True)
class FBPOptions(SolverOptions):
    """``filter``, ``frequency_scaling`` ∈ (0, 1] and an optional ``box=(lo, hi)`` clamp of the result."""

    search_space = {"filter": ("choice", ["ram-lak", "shepp-logan", "cosine", "hamming", "hann"]),
                    "frequency_scaling": ("float", 0.3, 1.0)}
    tune_fixed = {"box": (0.0, None)}

    filter: str = "ram-lak"
    frequency_scaling: float = 1.0
    box: tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "filter", FILTERS)
        check_range(self, "frequency_scaling", 0.0, 1.0, lo_open=True)
        check_box(self)


@register
class FBPSolver(Solver):
    name = "fbp"
    description = "filtered back-projection (ram-lak/shepp-logan/cosine/hamming/hann; parallel and fan beam)"
    Options = FBPOptions

    def _solve(self, ctx: SolveContext):
        geom = getattr(ctx.op, "geometry", None)
        if geom is None:
            from ...errors import CTFlowError

            raise CTFlowError("fbp needs a RayTransform with a geometry")
        o = self.options
        x = fbp(ctx.y, geom, filter=o.filter, frequency_scaling=o.frequency_scaling, operator=ctx.op).to(ctx.dtype)
        x = apply_box(x, o.box)
        ctx.log(x)
        return x
