"""Latent-optimisation flow methods: D-Flow and MS-Flow optimise the noise the prior's ODE starts from."""

from . import dflow, msflow  # noqa: F401  (registration)
