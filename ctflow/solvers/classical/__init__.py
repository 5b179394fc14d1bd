"""Classical baselines: filtered back-projection, SIRT, CGLS, Tikhonov and TV (no prior)."""

from . import fbp, iterative, tv  # noqa: F401  (registration)
