r"""Fixed-grid ODE solvers for :math:`dx/dt = v(x, t)`, shared by sampling and every flow solver.

Each solver is a plain function ``x = solve(velocity, x, ts, callback=None)`` over a time grid
``ts`` (increasing for noise → image, decreasing for image → noise, i.e. reverse integration), in the
spirit of k-diffusion's uniform sampler signatures. ``callback`` receives a dict
``{"i", "t", "t_next", "x"}`` after every step. Costs per step (NFE): Euler 1, midpoint 2, Heun 2, RK4 4.

:func:`odeint` and the ``sample_*`` functions run under :func:`torch.no_grad` unless called with
``grad=True``: sampling keeps one state in memory, not the activations of every step. Pass
``grad=True`` to differentiate through the whole trajectory (D-Flow-style; memory ∝ steps);
:func:`ode_step` itself never changes the grad mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def time_grid(steps: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """``steps + 1`` uniform times from ``t0`` to ``t1`` (float64)."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64)


def ode_step(method: str, v: Callable, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    """One step of ``method`` from time ``t`` with step ``h`` (negative h integrates backwards)."""
    if method == "euler":
        return x + h * v(x, t)
    if method == "midpoint":
        return x + h * v(x + 0.5 * h * v(x, t), t + 0.5 * h)
    if method == "heun":
        k1 = v(x, t)
        k2 = v(x + h * k1, t + h)
        return x + 0.5 * h * (k1 + k2)
    if method == "rk4":
        k1 = v(x, t)
        k2 = v(x + 0.5 * h * k1, t + 0.5 * h)
        k3 = v(x + 0.5 * h * k2, t + 0.5 * h)
        k4 = v(x + h * k3, t + h)
        return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    raise ValueError(f"unknown ODE method {method!r}; choose one of {sorted(NFE_PER_STEP)}")


def odeint(
    velocity: Callable,
    x: torch.Tensor,
    ts: torch.Tensor | None = None,
    method: str = "euler",
    steps: int | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    grad: bool = False,
) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` over the grid ``ts`` (or ``steps`` uniform steps 0 → 1).

    Runs under :func:`torch.no_grad` (no graph, constant memory in the number of steps) unless
    ``grad=True``, which keeps the autograd graph of every step so the result can be differentiated
    with respect to ``x`` (or trainable parameters of ``velocity``).
    """
    if method not in NFE_PER_STEP:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {sorted(NFE_PER_STEP)}")
    if ts is None:
        ts = time_grid(steps if steps is not None else 50)
    ts = [float(t) for t in torch.as_tensor(ts)]
    with torch.set_grad_enabled(bool(grad) and torch.is_grad_enabled()):
        for i in tqdm(range(len(ts) - 1), disable=not progress, desc=f"ODE ({method})", leave=False):
            t, t_next = ts[i], ts[i + 1]
            x = ode_step(method, velocity, x, t, t_next - t)
            if callback is not None:
                callback({"i": i, "t": t, "t_next": t_next, "x": x})
    return x


def sample_euler(velocity, x, ts, callback=None, progress=False, grad=False):
    return odeint(velocity, x, ts, "euler", callback=callback, progress=progress, grad=grad)


def sample_midpoint(velocity, x, ts, callback=None, progress=False, grad=False):
    return odeint(velocity, x, ts, "midpoint", callback=callback, progress=progress, grad=grad)


def sample_heun(velocity, x, ts, callback=None, progress=False, grad=False):
    return odeint(velocity, x, ts, "heun", callback=callback, progress=progress, grad=grad)


def sample_rk4(velocity, x, ts, callback=None, progress=False, grad=False):
    return odeint(velocity, x, ts, "rk4", callback=callback, progress=progress, grad=grad)
