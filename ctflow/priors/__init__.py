"""Flow-matching priors: the velocity-model contract, networks, exact Gaussian priors, ODE solvers."""

from .ode import NFE_PER_STEP, odeint, sample_euler, sample_heun, sample_midpoint, sample_rk4, time_grid
from .unet import ConfigError, UNet, UNetConfig
from .velocity import GaussianMixturePrior, GaussianPrior, VelocityModel, as_velocity

__all__ = [
    "NFE_PER_STEP",
    "ConfigError",
    "GaussianMixturePrior",
    "GaussianPrior",
    "UNet",
    "UNetConfig",
    "VelocityModel",
    "as_velocity",
    "odeint",
    "sample_euler",
    "sample_heun",
    "sample_midpoint",
    "sample_rk4",
    "time_grid",
]
