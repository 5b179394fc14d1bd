"""ctflow.units: the window map against its definition (L40/W400 ↔ [0, 1]) and HU ↔ μ."""

from __future__ import annotations

import numpy as np
import torch

from ctflow.units import MU_WATER, hu_to_mu, hu_to_window, mu_to_hu, window_to_hu


def test_window_end_points_and_inverse():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 1000.0])
    np.testing.assert_allclose(hu_to_window(hu), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)  # clipped outside the window
    inside = np.linspace(-160.0, 240.0, 9)
    np.testing.assert_allclose(window_to_hu(hu_to_window(inside)), inside, atol=1e-4)
    t = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(window_to_hu(t), torch.tensor([-160.0, -60.0, 240.0]))


def test_hu_mu_water_and_air():
    assert hu_to_mu(0.0) == MU_WATER and hu_to_mu(-1000.0) == 0.0
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(np.array([-500.0, 60.0]))), [-500.0, 60.0])
