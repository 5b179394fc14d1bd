"""Parker's short-scan weights for fan-beam FBP over less than a full rotation."""

from __future__ import annotations

import numpy as np

from ..geometry import FanBeamGeometry, angle_weights


def parker_weights(geometry: FanBeamGeometry) -> np.ndarray:
    """Parker's short-scan weights ``(n_angles, n_detectors)`` for views over [β₀, β₀ + π + 2δ].

    Conjugate rays (β, γ) and (β + π + 2γ, −γ) get weights summing to 1, which replaces the ½ of a
    full scan. Requires δ ≥ the half fan angle.
    """
    beta = np.asarray(geometry.angles)
    beta = np.unwrap(beta - beta.min())
    span = float(np.sum(angle_weights(geometry.angles)))
    delta = (span - np.pi) / 2.0
    g = -geometry.fan_angles()[None, :]
    b = beta[:, None]
    w = np.ones((beta.size, g.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = b < 2 * (delta - g)
        fall = b > np.pi - 2 * g
        w = np.where(rise, np.sin(np.pi / 4 * b / (delta - g)) ** 2, w)
        w = np.where(fall, np.sin(np.pi / 4 * (np.pi + 2 * delta - b) / (delta + g)) ** 2, w)
    w = np.where(b > np.pi + 2 * delta, 0.0, w)
    return np.nan_to_num(np.clip(w, 0.0, 1.0))
