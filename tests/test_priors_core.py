"""Flow-matching prior building blocks: UNet shapes, the exact Gaussian velocity, ODE solvers."""

from __future__ import annotations

import pytest
import torch

from ctflow.priors.ode import NFE_PER_STEP, odeint, time_grid
from ctflow.priors.unet import ConfigError, UNet, UNetConfig
from ctflow.priors.gaussian import GaussianMixturePrior, GaussianPrior
from ctflow.priors.velocity import VelocityModel


def _gaussian(d_side=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = d_side * d_side
    B = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = B @ B.T / d + 0.05 * torch.eye(d, dtype=torch.float64)
    mu = torch.randn(d_side, d_side, generator=g, dtype=torch.float64)
    return GaussianPrior(mu, cov), mu, cov


@pytest.mark.parametrize("size,mults,attn", [(28, (1, 2, 2), (7,)), (64, (1, 2, 4), (16,)), (128, (1, 2, 2, 4), ())])
def test_unet_shapes(size, mults, attn):
    net = UNet(UNetConfig(image_size=size, base_channels=16, channel_mults=mults, attention_resolutions=attn))
    x = torch.randn(2, 1, size, size)
    assert net(x, torch.rand(2)).shape == x.shape
    v = VelocityModel(net)
    assert v(x, 0.3).shape == x.shape and v(x, torch.tensor([0.1, 0.9])).shape == x.shape
    assert torch.count_nonzero(net(x, torch.rand(2))) == 0  # zero-initialised output layer: v ≡ 0 at start


def test_unet_config_errors():
    with pytest.raises(ConfigError, match="divisible"):
        UNetConfig(image_size=30, channel_mults=(1, 2, 4))
    with pytest.raises(ConfigError, match="unknown UNetConfig field"):
        UNetConfig.from_dict({"image_size": 28, "depth": 3})
    net = UNet(UNetConfig(image_size=28, base_channels=16, channel_mults=(1, 2)))
    with pytest.raises(ConfigError, match=r"expects \(B, 1, 28, 28\)"):
        net(torch.zeros(1, 1, 32, 32), torch.zeros(1))
    assert UNetConfig.from_dict(UNetConfig(image_size=28, channel_mults=(1, 2)).to_dict()) == UNetConfig(image_size=28, channel_mults=(1, 2))


def test_gaussian_velocity_matches_regression_oracle():
    # Independent oracle: E[x1 - x0 | x_t] is affine in x_t for Gaussian data; fit it by least
    # squares on joint samples (x0, x1) and compare with the closed form.
    P, mu, cov = _gaussian(3)
    g = torch.Generator().manual_seed(1)
    n, t = 400_000, 0.6
    x1 = P.sample(n, g).reshape(n, -1)
    x0 = torch.randn(n, 9, generator=g, dtype=torch.float64)
    xt = t * x1 + (1 - t) * x0
    feats = torch.cat([xt, torch.ones(n, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(feats, x1 - x0).solution
    probe = torch.randn(5, 9, generator=g, dtype=torch.float64)
    fit = torch.cat([probe, torch.ones(5, 1, dtype=torch.float64)], 1) @ coef
    exact = P(probe.reshape(5, 3, 3), t).reshape(5, 9)
    assert float((fit - exact).abs().max()) < 0.06  # regression noise ~0.02; a wrong formula is off by O(1)


def test_gaussian_ode_maps_noise_to_the_gaussian_and_back():
    P, mu, cov = _gaussian(4)
    g = torch.Generator().manual_seed(2)
    n = 20000
    x0 = torch.randn(n, 4, 4, generator=g, dtype=torch.float64)
    x1 = odeint(P, x0, steps=60, method="rk4")
    se = (torch.diagonal(cov).max() / n).sqrt()
    assert float((x1.mean(0) - mu).abs().max()) < 5 * se  # Monte-Carlo error only
    assert float((torch.cov(x1.reshape(n, -1).T) - cov).abs().max()) < 0.06 * float(cov.abs().max())
    back = odeint(P, x1, time_grid(60, 1.0, 0.0), method="rk4")  # reverse integration
    assert float((back - x0).abs().max()) < 1e-6
    # the denoiser at t = 0 is the prior mean
    assert torch.allclose(P.denoise(torch.zeros(1, 4, 4, dtype=torch.float64), 0.0)[0], mu)


def test_gaussian_mixture_prior():
    a, _, _ = _gaussian(2, seed=3)
    b = GaussianPrior(a.mean + 6.0, a.cov)
    mix = GaussianMixturePrior([0.25, 0.75], [a, b])
    g = torch.Generator().manual_seed(4)
    x1 = odeint(mix, torch.randn(8000, 2, 2, generator=g, dtype=torch.float64), steps=80, method="rk4")
    near_b = ((x1 - b.mean).reshape(8000, -1).norm(dim=1) < (x1 - a.mean).reshape(8000, -1).norm(dim=1)).double().mean()
    assert abs(float(near_b) - 0.75) < 0.03  # mixture weights are preserved by the flow
    one = GaussianMixturePrior([1.0], [a])
    x = torch.randn(3, 2, 2, dtype=torch.float64)
    assert torch.allclose(one(x, 0.4), a(x, 0.4))


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_ode_solver_order(method, order):
    # dx/dt = -x + t, x(0) = 1  →  x(1) = t - 1 + 2 e^{-t} at t = 1
    v = lambda x, t: -x + t  # noqa: E731
    exact = 2.0 * torch.exp(torch.tensor(-1.0, dtype=torch.float64))
    errs = [abs(float(odeint(v, torch.ones(1, dtype=torch.float64), steps=n, method=method)[0]) - float(exact)) for n in (8, 16)]
    assert errs[0] / errs[1] == pytest.approx(2**order, rel=0.25)
    assert NFE_PER_STEP[method] in (1, 2, 4)


def test_ode_callback_and_errors():
    seen = []
    odeint(lambda x, t: x, torch.ones(2), steps=5, callback=seen.append)
    assert [s["i"] for s in seen] == list(range(5)) and seen[-1]["t_next"] == 1.0
    with pytest.raises(ValueError, match="unknown ODE method"):
        odeint(lambda x, t: x, torch.ones(2), steps=2, method="dopri9")
    with pytest.raises(ValueError, match="steps must be"):
        time_grid(0)
    with pytest.raises(ValueError, match="cov must be"):
        GaussianPrior(torch.zeros(2, 2), torch.eye(3))


def test_diffusers_adapter_time_scale_and_range():
    # A stand-in with diffusers' calling convention: net(x, timesteps) → object with `.sample`.
    class Out:
        def __init__(self, s):
            self.sample = s

    calls = {}

    def unet(x, t):
        calls["x"], calls["t"] = x, t
        return Out(x * 0 + t.reshape(-1, 1, 1, 1))

    from ctflow.priors import DiffusersVelocity

    v = DiffusersVelocity(unet, time_scale=999.0, data_range="[-1,1]")
    x = torch.full((2, 1, 4, 4), 0.25)
    out = v(x, torch.tensor([0.5, 1.0]))
    assert torch.allclose(calls["t"], torch.tensor([499.5, 999.0]))
    assert torch.allclose(calls["x"], torch.full_like(x, -0.5))  # [0,1] → [-1,1]
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([249.75, 499.5]))  # velocity halved back
    with pytest.raises(ValueError, match="data_range"):
        DiffusersVelocity(unet, data_range="[0,255]")
