r"""Unit conversions: Hounsfield units (HU) ↔ linear attenuation μ (1/mm).

.. math:: μ = μ_\text{water}\,(1 + \text{HU}/1000), \qquad
          \text{HU} = 1000\,(μ - μ_\text{water})/μ_\text{water},

so water is 0 HU and air (μ = 0) is −1000 HU; :data:`MU_WATER` = 0.0192 mm⁻¹ by default. The
functions work on floats, numpy arrays and torch tensors alike (the type is kept) and import
neither numpy nor torch.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MU_WATER", "hu_to_mu", "mu_to_hu"]

#: Linear attenuation coefficient of water in 1/mm (0.192 cm⁻¹) at the ~70 keV effective energy of
#: a 120 kVp CT spectrum: the μ that 0 HU maps to. Air (−1000 HU) maps to 0.
MU_WATER = 0.0192


def _check_mu_water(mu_water: float) -> float:
    v = float(mu_water)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"mu_water must be a positive finite attenuation in 1/mm, got {mu_water!r}")
    return v


def hu_to_mu(hu: Any, mu_water: float = MU_WATER) -> Any:
    r"""Hounsfield units to linear attenuation (1/mm): :math:`μ = μ_w (1 + \text{HU}/1000)`.

    Parameters
    ----------
    hu : float, numpy.ndarray or torch.Tensor
        Values in HU (−1000 is air, 0 is water).
    mu_water : float
        Attenuation of water in 1/mm (default :data:`MU_WATER`).

    Returns
    -------
    Same type as ``hu`` (integer inputs become floating point).
    """
    w = _check_mu_water(mu_water)
    return w * (1.0 + hu / 1000.0)


def mu_to_hu(mu: Any, mu_water: float = MU_WATER) -> Any:
    r"""Linear attenuation (1/mm) to Hounsfield units: :math:`\text{HU} = 1000 (μ/μ_w - 1)`.

    Inverse of :func:`hu_to_mu`; works on floats, numpy arrays and torch tensors.
    """
    w = _check_mu_water(mu_water)
    return 1000.0 * (mu / w - 1.0)
