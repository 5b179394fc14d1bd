"""``fbp``: filtered back-projection (parallel and fan beam) behind the solver contract."""

from __future__ import annotations

import dataclasses

from ...operators.fbp import FILTERS, fbp
from ..base import Solver
from ..context import SolveContext
from ..options import SolverOptions, check_choice
from ..registry import register


@dataclasses.dataclass(frozen=True)
class FBPOptions(SolverOptions):
    filter: str = "ram-lak"
    frequency_scaling: float = 1.0
    clip_negative: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "filter", FILTERS)
        if not 0.0 < self.frequency_scaling <= 1.0:
            from ...errors import ConfigError

            raise ConfigError(f"option frequency_scaling={self.frequency_scaling} must be in (0, 1]")


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
        if o.clip_negative:
            x = x.clamp_min(0.0)
        ctx.log(x)
        return x
