r"""Unit conversions: Hounsfield units (HU) ↔ linear attenuation μ (1/mm) ↔ the priors' window units.

.. math:: μ = μ_\text{water}\,(1 + \text{HU}/1000), \qquad
          \text{HU} = 1000\,(μ - μ_\text{water})/μ_\text{water},

so water is 0 HU and air (μ = 0) is −1000 HU; :data:`MU_WATER` = 0.0192 mm⁻¹ by default. The flow priors
work in *window units*: the abdominal window L40/W400 (``[-160, 240]`` HU) mapped linearly onto ``[0, 1]``,
:math:`w = (\text{HU} - (L - W/2))/W`; :func:`hu_to_window` also clips to ``[0, 1]`` (not invertible
outside the window), :func:`window_to_hu` is the linear inverse. Composed, window units and μ are
affine, :math:`μ = a\,w + b` with :math:`a = μ_w W/1000` and :math:`b = μ_w (1 + (L - W/2)/1000)`
(:func:`window_affine`; 0.00768 and 0.016128 mm⁻¹ for L40/W400): :func:`window_to_mu` /
:func:`mu_to_window` (no clipping). Sinograms of line integrals of μ reach the priors' units through
:mod:`ctflow.operators.window_bridge` (the offset b enters as :math:`b\,A\mathbf 1`). The
functions work on floats, numpy arrays and torch tensors alike (the type is kept) and import
neither numpy nor torch.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "MU_WATER", "WINDOW_LEVEL", "WINDOW_WIDTH", "hu_to_mu", "hu_to_window", "mu_to_hu", "mu_to_window", "window_affine",
    "window_to_hu", "window_to_mu",
]

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


#: The priors' window (HU): level and width of the abdominal window that maps onto [0, 1].
WINDOW_LEVEL = 40.0
WINDOW_WIDTH = 400.0


def hu_to_window(hu, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH):
    """Map HU linearly so that ``[level - width/2, level + width/2]`` becomes ``[0, 1]``; clip; float32 array."""
    import numpy as np

    lo = level - width / 2.0
    out = (np.asarray(hu, np.float32) - np.float32(lo)) * np.float32(1.0 / width)
    return np.clip(out, 0.0, 1.0, out=out)


def window_to_hu(w: Any, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> Any:
    """The linear inverse of the window map, ``HU = w·W + (L − W/2)`` (no clipping; type kept)."""
    return w * width + (level - width / 2.0)


def window_affine(mu_water: float = MU_WATER, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> tuple[float, float]:
    r"""``(a, b)`` with :math:`μ = a\,w + b` for window units ``w`` (unclipped):
    :math:`a = μ_w W/1000` (1/mm per window unit) and :math:`b = μ_w (1 + (L - W/2)/1000)` (the μ of ``w = 0``)."""
    mw = _check_mu_water(mu_water)
    if not (math.isfinite(float(width)) and float(width) > 0 and math.isfinite(float(level))):
        raise ValueError(f"the window needs a finite level and a positive width, got L={level!r}, W={width!r}")
    return mw * float(width) / 1000.0, mw * (1.0 + (float(level) - float(width) / 2.0) / 1000.0)


def window_to_mu(w: Any, mu_water: float = MU_WATER, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> Any:
    """Window units → μ (1/mm), ``μ = a·w + b`` (:func:`window_affine`); no clipping, type kept."""
    a, b = window_affine(mu_water, level, width)
    return w * a + b


def mu_to_window(mu: Any, mu_water: float = MU_WATER, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> Any:
    """μ (1/mm) → window units, ``w = (μ − b)/a``: the linear inverse of :func:`window_to_mu`. Unlike
    :func:`hu_to_window` it does **not** clip (air is ≈ −2.1, dense bone > 1), type kept."""
    a, b = window_affine(mu_water, level, width)
    return (mu - b) / a
