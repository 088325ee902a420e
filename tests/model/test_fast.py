"""The ``fast`` preset: :class:`FastTimeUNet` computes the bundled network's function in bfloat16
on CPUs, keeps the network's call and attributes, and falls back to float32 where bfloat16 does
not pay (or on other devices). Speed is measured by ``benchmarks/bench_fast.py``, not here."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import napari_diffdenoise.model.fast as fast_mod
from napari_diffdenoise import add_noise, denoise, load_model
from napari_diffdenoise.model.fast import CPU_MODES, FastTimeUNet, cpu_mode
from napari_diffdenoise.model.registry import PRESETS, LoadedModel


@pytest.fixture(scope="module")
def default_net():
    return load_model("default").net


def _inputs(batch=1, size=48, uniform=True):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    clean = (0.5 + 0.4 * torch.sin(12 * xx) * torch.cos(9 * yy)).expand(batch, 1, size, size)
    y = clean + 0.1 * torch.randn(batch, 1, size, size, generator=g)
    if uniform:
        t = torch.linspace(0.1, 0.4, batch).view(batch, 1, 1, 1).expand_as(y).contiguous()
    else:
        t = (0.1 + 0.2 * xx).expand(batch, 1, size, size).contiguous()
    return y, t


def _psnr(a, b):
    return float(10 * torch.log10(1.0 / torch.mean((a - b) ** 2)))


def test_load_model_fast_keeps_the_contract():
    fast, default = load_model("fast"), load_model("default")
    assert isinstance(fast, LoadedModel)
    assert isinstance(fast.net, FastTimeUNet)
    assert fast.net.net is default.net  # the same weights, loaded once
    assert load_model("fast").net is fast.net  # cached
    assert fast.net.config == default.net.config
    assert fast.net.config.multiple == default.net.config.multiple
    assert fast.net.parameter_count() == default.net.parameter_count()
    assert sum(p.numel() for p in fast.net.parameters()) == fast.net.parameter_count()
    assert set(fast.net.state_dict()) == {f"net.{k}" for k in default.net.state_dict()}
    assert (fast.sampler, fast.steps, fast.ensemble) == ("direct", 1, 1)
    assert fast.precision == PRESETS["fast"].precision == "bfloat16"  # GPUs: autocast
    assert "fast" in repr(fast)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("uniform", [True, False])
def test_bfloat16_pass_is_close_to_float32(default_net, fused, uniform):
    net = FastTimeUNet(default_net, cpu="bfloat16", fused=fused)
    y, t = _inputs(uniform=uniform)
    with torch.no_grad():
        ref = default_net(y, y, t)
        out = net(y, y, t)
    assert out.dtype == torch.float32 and out.shape == y.shape
    assert _psnr(out, ref) > 45  # bf16 rounding of the residual only
    assert float((out - ref).abs().max()) < 0.02


def test_bfloat16_pass_is_deterministic_and_batch_invariant(default_net):
    net = FastTimeUNet(default_net, cpu="bfloat16")
    y, t = _inputs(batch=3)
    with torch.no_grad():
        batched = net(y, y, t)
        again = net(y, y, t)
        singles = torch.cat([net(y[i : i + 1], y[i : i + 1], t[i : i + 1]) for i in range(3)])
    assert torch.equal(batched, again)
    assert torch.equal(batched, singles)


def test_inputs_are_not_modified(default_net):
    net = FastTimeUNet(default_net, cpu="bfloat16")
    y, t = _inputs()
    y0, t0 = y.clone(), t.clone()
    with torch.no_grad():
        net(y, y, t)
    assert torch.equal(y, y0) and torch.equal(t, t0)


def test_autocast_around_the_call_is_ignored(default_net):
    net = FastTimeUNet(default_net, cpu="bfloat16")
    y, t = _inputs()
    with torch.no_grad():
        plain = net(y, y, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = net(y, y, t)
    assert torch.equal(plain, under.float())


def test_denoise_fast_is_close_to_default():
    clean = 255 * (0.5 + 0.4 * np.sin(np.linspace(0, 20, 96))[None, :] * np.ones((96, 1)))
    noisy = add_noise(clean, "gaussian", sigma=25, seed=0).astype(np.float32)
    a = denoise(noisy, model="default", device="cpu")
    b = denoise(noisy, model="fast", device="cpu")
    c = denoise(noisy, model="fast", device="cpu")
    np.testing.assert_array_equal(b, c)

    def psnr(x):
        return 10 * np.log10(255**2 / np.mean((np.clip(x, 0, 255) - clean) ** 2))

    assert abs(psnr(a) - psnr(b)) < 0.1
    assert 10 * np.log10(255**2 / np.mean((a - b) ** 2)) > 40


def test_float32_mode_and_other_devices_use_the_float_network(default_net):
    net = FastTimeUNet(default_net, cpu="float32")
    y, t = _inputs()
    with torch.no_grad():
        assert torch.equal(net(y, y, t), default_net(y, y, t))
    auto = FastTimeUNet(default_net)
    for dev in ("cuda", "cuda:0", "mps", torch.device("meta")):
        assert not auto.uses_bfloat16(dev)
    assert FastTimeUNet(default_net, cpu="bfloat16").uses_bfloat16("cpu")


def test_auto_mode_follows_the_cpu(default_net, monkeypatch):
    y, t = _inputs()
    monkeypatch.setattr(fast_mod, "cpu_mode", lambda threads: "float32")
    net = FastTimeUNet(default_net)
    assert not net.uses_bfloat16("cpu")
    with torch.no_grad():
        assert torch.equal(net(y, y, t), default_net(y, y, t))
    monkeypatch.setattr(fast_mod, "cpu_mode", lambda threads: "bfloat16")
    assert net.uses_bfloat16("cpu")


def test_cpu_mode_follows_the_cpu_features(monkeypatch):
    threads = torch.get_num_threads()
    cpu_mode.cache_clear()
    try:
        monkeypatch.setattr(fast_mod, "cpu_bfloat16_native", lambda: False)
        assert cpu_mode(threads) == "float32"
        cpu_mode.cache_clear()
        monkeypatch.setattr(fast_mod, "cpu_bfloat16_native", lambda: True)
        monkeypatch.setattr(fast_mod, "_cpu_has_amx", lambda: True)
        assert cpu_mode(threads) == "bfloat16"
        cpu_mode.cache_clear()
        monkeypatch.setattr(fast_mod, "_cpu_has_amx", lambda: False)
        assert cpu_mode(threads) in ("float32", "bfloat16")  # timed
    finally:
        cpu_mode.cache_clear()
    assert cpu_mode(threads) in CPU_MODES


def test_without_fused_ops_the_plain_ops_run(default_net, monkeypatch):
    y, t = _inputs()
    with torch.no_grad():
        fused = FastTimeUNet(default_net, cpu="bfloat16")(y, y, t)
        monkeypatch.setattr(fast_mod, "_fused_ops", lambda: None)
        plain = FastTimeUNet(default_net, cpu="bfloat16")(y, y, t)
    assert _psnr(plain, fused) > 45


def test_deepcopy_and_move_take_the_float_network(default_net):
    """What the engine does for a GPU: ``copy.deepcopy(net).to(device)``."""
    net = FastTimeUNet(default_net, cpu="bfloat16")
    moved = copy.deepcopy(net).to(torch.float64)  # stands in for a device move
    assert moved.net is not default_net
    assert next(moved.net.parameters()).dtype == torch.float64
    assert next(default_net.parameters()).dtype == torch.float32  # the shared net untouched
    assert moved.config == default_net.config


def test_rejects_unknown_cpu_mode(default_net):
    with pytest.raises(ValueError, match="cpu must be one of"):
        FastTimeUNet(default_net, cpu="int8")


@pytest.mark.gpu("cuda")
def test_fast_on_cuda_is_close_to_default():
    clean = 255 * (0.5 + 0.4 * np.sin(np.linspace(0, 20, 96))[None, :] * np.ones((96, 1)))
    noisy = add_noise(clean, "gaussian", sigma=25, seed=0).astype(np.float32)
    a = denoise(noisy, model="default", device="cuda")
    b = denoise(noisy, model="fast", device="cuda")
    assert 10 * np.log10(255**2 / np.mean((a - b) ** 2)) > 40
    assert not load_model("fast").net.uses_bfloat16("cuda")


def test_fast_with_float32_asked_for_is_the_float32_network():
    rng = np.random.default_rng(3)
    noisy = (100 + rng.normal(0, 20, (48, 64))).astype(np.float32)
    np.testing.assert_array_equal(
        denoise(noisy, sigma=20, model="fast", precision="float32"), denoise(noisy, sigma=20)
    )
