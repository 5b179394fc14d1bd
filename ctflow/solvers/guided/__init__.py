"""Guided flow samplers: ΠGFM, C-ΠGFM, OT-ODE, PnP-Flow and DPS steer the prior's sampling towards the data."""

from . import cpigfm, dps, otode, pigfm, pnpflow  # noqa: F401  (registration)
