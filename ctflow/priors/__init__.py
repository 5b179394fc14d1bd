"""Flow-matching priors: the velocity-model contract, networks, exact Gaussian priors, ODE solvers."""

from ..errors import ConfigError
from .adapters import DiffusersVelocity
from .gaussian import GaussianMixturePrior, GaussianPrior
from .ode import NFE_PER_STEP, odeint, sample_euler, sample_heun, sample_midpoint, sample_rk4, time_grid
from .unet import UNet, UNetConfig
from .velocity import NetworkPrior, VelocityModel, as_velocity

__all__ = [
    "NFE_PER_STEP",
    "ConfigError",
    "DiffusersVelocity",
    "NetworkPrior",
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

from .store import PRIOR_ALIASES, load_prior, prior_folder  # noqa: E402

__all__ += ["PRIOR_ALIASES", "load_prior", "prior_folder"]
