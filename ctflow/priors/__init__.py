"""Flow-matching priors: the velocity-model contract, networks, exact Gaussian priors, ODE solvers."""

from .ode import NFE_PER_STEP, odeint, sample_euler, sample_heun, sample_midpoint, sample_rk4, time_grid
from ..errors import ConfigError
from .unet import UNet, UNetConfig
from .velocity import DiffusersVelocity, GaussianMixturePrior, GaussianPrior, NetworkPrior, VelocityModel, as_velocity

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


#: Names that point at a shipped prior folder in ``data/priors/``.
PRIOR_ALIASES = {"default": "phantom-64"}


def prior_folder(name_or_path) -> "Path":  # noqa: F821  (pathlib imported lazily)
    """The folder of a prior: ``name_or_path`` itself if it is a folder, else the shipped prior of that
    name (or alias, e.g. ``default``) in ``data/priors/``."""
    from pathlib import Path

    from ..errors import DataError

    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = Path(__file__).resolve().parents[2] / "data" / "priors"
    names = sorted(d.name for d in shipped.iterdir() if (d / "prior.json").is_file()) if shipped.is_dir() else []
    name = PRIOR_ALIASES.get(str(name_or_path), str(name_or_path))
    if name not in names:
        alias = f" (= {name})" if name != str(name_or_path) else ""
        raise DataError(f"no prior folder or shipped prior named {str(name_or_path)!r}{alias}; shipped: {names or 'none yet'}")
    return shipped / name


def load_prior(name_or_path) -> "NetworkPrior":
    """Load a prior folder (``prior.json`` + ``prior.safetensors``) or a prior shipped in ``data/priors/``.

    Loading reads JSON and raw tensors only (no pickle): it cannot execute code.
    """
    from .checkpoint import load_prior_folder
    from .velocity import NetworkPrior

    net, meta = load_prior_folder(prior_folder(name_or_path))
    return NetworkPrior(net, meta)


__all__ += ["load_prior", "prior_folder"]
