"""Sampler invariants on a real (tiny, randomly initialised) TimeUNet and on analytic networks."""

from __future__ import annotations

import pytest
import torch

from napari_diffdenoise.diffusion.forward import mixed_path, sample_train_time, straight_path
from napari_diffdenoise.diffusion.samplers import SAMPLERS, iter_sample, sample
from napari_diffdenoise.diffusion.schedule import pixel_schedule
from napari_diffdenoise.model.unet import TimeUNet, UNetConfig


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = TimeUNet(UNetConfig(channels=(8, 16), time_dim=8, time_features=4))
    # the tail starts at zero (identity); perturb it so the network really changes its input
    with torch.no_grad():
        m.tail.weight.normal_(0, 0.05)
    return m.eval()


def _inputs(seed=0, h=16, w=24):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(1, 1, h, w, generator=g)
    tau = torch.rand(1, 1, h, w, generator=g) * 0.8 + 0.1
    tau[..., :4, :] = 0.0  # a band that must stay untouched
    return y, tau


def test_schedule_per_pixel():
    tau = torch.tensor([[[[0.0, 0.5, 1.0]]]])
    ts = pixel_schedule(tau, 4)
    assert len(ts) == 5
    torch.testing.assert_close(ts[0], tau)
    torch.testing.assert_close(ts[2], tau * 0.5)
    assert torch.all(ts[-1] == 0)
    with pytest.raises(ValueError):
        pixel_schedule(tau, 0)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_tau_zero_pixels_untouched(net, sampler):
    y, tau = _inputs()
    eta = 0.5 if sampler == "indi" else 0.0
    with torch.no_grad():
        x = sample(
            net,
            y,
            tau,
            sampler=sampler,
            steps=3,
            eta=eta,
            sigma_max=0.5,
            generator=torch.Generator().manual_seed(1),
        )
    assert torch.equal(x[..., :4, :], y[..., :4, :])
    assert not torch.allclose(x[..., 4:, :], y[..., 4:, :])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_one_step_equals_network_output(net, sampler):
    y, tau = _inputs(1)
    with torch.no_grad():
        x = sample(net, y, tau, sampler=sampler, steps=1)
        expected = torch.where(tau <= 0, y, net(y, y, tau))
    torch.testing.assert_close(x, expected)


def test_deterministic_with_seed(net):
    y, tau = _inputs(2)
    kw = dict(sampler="indi", steps=4, eta=0.7, sigma_max=0.5)
    with torch.no_grad():
        a = sample(net, y, tau, generator=torch.Generator().manual_seed(5), **kw)
        b = sample(net, y, tau, generator=torch.Generator().manual_seed(5), **kw)
        c = sample(net, y, tau, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_samplers_with_perfect_network_recover_clean_image():
    """With an oracle that returns the clean image, every sampler ends exactly at x0."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(1, 1, 8, 8, generator=g)
    tau = torch.full_like(x0, 0.4)
    y = x0 + 0.4 * 0.5 * torch.randn(x0.shape, generator=g)

    def oracle(x, yy, t):
        return x0

    for sampler in ("origin", "cold", "indi"):
        x = sample(oracle, y, tau, sampler=sampler, steps=5, sigma_max=0.5)
        torch.testing.assert_close(x, x0)


def test_origin_and_cold_stay_on_the_straight_path():
    """With an oracle, the intermediate states sit at x0 + (t_k/τ)(y − x0) for origin and cold."""
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(1, 1, 8, 8, generator=g)
    y = x0 + 0.1 * torch.randn(x0.shape, generator=g)
    tau = torch.full_like(x0, 0.6)
    ts = pixel_schedule(tau, 4)
    for sampler in ("origin", "cold"):
        for k, _, xk in iter_sample(lambda x, yy, t: x0, y, tau, sampler=sampler, steps=4):
            torch.testing.assert_close(xk, straight_path(x0, y, ts[k], tau))


def test_indi_noise_bookkeeping():
    """The stochastic InDI step keeps the residual noise at level t_{k+1}·σ_max."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.zeros(1, 1, 256, 256)
    sigma_max, tau0 = 0.5, 0.8
    tau = torch.full_like(x0, tau0)
    y = x0 + tau0 * sigma_max * torch.randn(x0.shape, generator=g)
    for k, K, xk in iter_sample(
        lambda x, yy, t: x0,
        y,
        tau,
        sampler="indi",
        steps=4,
        eta=1.0,
        sigma_max=sigma_max,
        generator=g,
    ):
        expected = tau0 * (1 - k / K) * sigma_max
        assert float(xk.std()) == pytest.approx(expected, rel=0.03, abs=1e-6)


def test_forward_process_noise_level():
    """x_t = x0 + (t/τ_y)(y − x0) leaves noise of level t·σ_max whatever τ_y is."""
    g = torch.Generator().manual_seed(8)
    sigma_max = 0.5
    x0 = torch.rand(1, 1, 128, 128, generator=g)
    sig_y = torch.linspace(0.05, 0.4, 128).view(1, 1, 1, 128).expand(1, 1, 128, 128)
    y = x0 + sig_y * torch.randn(x0.shape, generator=g)
    tau_y = sig_y / sigma_max
    t = torch.full_like(x0, 0.05)
    resid = straight_path(x0, y, t, tau_y) - x0
    assert float(resid.std()) == pytest.approx(0.05 * sigma_max, rel=0.05)
    torch.testing.assert_close(straight_path(x0, y, tau_y, tau_y), y)
    with pytest.raises(ValueError):
        straight_path(x0, y, tau_y + 0.1, tau_y)


def test_train_time_never_exceeds_observation():
    tau_y = torch.rand(32, 1, 16, 16)
    t = sample_train_time(tau_y, generator=torch.Generator().manual_seed(0))
    assert torch.all(t <= tau_y + 1e-7) and torch.all(t >= 0)
    at_obs = (t == tau_y).flatten(1).all(1).float().mean()
    assert 0.2 < float(at_obs) < 0.8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sampler="nope"), "unknown sampler"),
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(sampler="cold", eta=0.5), "eta"),
        (dict(sampler="indi", eta=1.5), "eta"),
    ],
)
def test_bad_sampler_arguments(net, kwargs, match):
    y, tau = _inputs()
    with pytest.raises(ValueError, match=match):
        sample(net, y, tau, **kwargs)


def test_mixed_path_noise_level_and_share():
    """Partly fresh noise: level t·σ_max, correlation ρ with the observation's own noise."""
    g = torch.Generator().manual_seed(9)
    sigma_max, tau0, t0 = 0.5, 0.6, 0.3
    x0 = torch.rand(3, 1, 128, 128, generator=g)
    tau_y = torch.full_like(x0, tau0)
    y = x0 + tau0 * sigma_max * torch.randn(x0.shape, generator=g)
    t = torch.full_like(x0, t0)
    rho = torch.tensor([1.0, 0.5, 0.0]).view(3, 1, 1, 1)
    x_t = mixed_path(x0, y, t, tau_y, rho, sigma_max, torch.randn(x0.shape, generator=g))
    torch.testing.assert_close(x_t[:1], straight_path(x0, y, t, tau_y)[:1])
    for i, r in enumerate((1.0, 0.5, 0.0)):
        resid, own = (x_t[i] - x0[i]).flatten(), (y[i] - x0[i]).flatten()
        assert float(resid.std()) == pytest.approx(t0 * sigma_max, rel=0.03)
        corr = float(torch.corrcoef(torch.stack([resid, own]))[0, 1])
        assert corr == pytest.approx(r, abs=0.03)
    # at the observation's time the result is y, where τ_y = 0 it is x0, whatever ρ is
    tau_y[..., :8, :] = 0.0
    t = torch.where(tau_y > 0, tau_y, torch.zeros_like(tau_y))
    x_t = mixed_path(x0, y, t, tau_y, rho, sigma_max, torch.randn(x0.shape, generator=g))
    torch.testing.assert_close(x_t[..., 8:, :], y[..., 8:, :])
    torch.testing.assert_close(x_t[..., :8, :], x0[..., :8, :])
    with pytest.raises(ValueError, match="rho"):
        mixed_path(x0, y, t, tau_y, rho + 1, sigma_max, torch.randn(x0.shape))
