"""The UNet's shortcuts must not change its output: the once-per-image time embedding for
spatially uniform time maps, and channels-last weights."""

from __future__ import annotations

import pytest
import torch

import napari_diffdenoise.model.unet as unet
from napari_diffdenoise.model.unet import TimeUNet, UNetConfig
from napari_diffdenoise.model.weights import ModelInfo, load_weights, save_model

CFG = UNetConfig(channels=(8, 16, 24), time_dim=8, time_features=4)


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = TimeUNet(CFG).eval()
    # the tail starts at zero (the untrained network is the identity): give it weights so the
    # time embedding reaches the output
    torch.nn.init.normal_(m.tail.weight, std=0.1)
    return m


def _inputs(batch=3, size=32):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 1, size, size, generator=g)
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    return x, y


def test_uniform_time_shortcut_matches_per_pixel_embedding(net, monkeypatch):
    x, y = _inputs()
    # one constant time per image, different between images of the batch
    t = torch.tensor([0.1, 0.4, 0.9]).view(3, 1, 1, 1).expand_as(y).clone()
    assert unet._spatially_uniform(t)
    with torch.no_grad():
        fast = net(y, y, t)
        singles = torch.cat([net(y[i : i + 1], y[i : i + 1], t[i : i + 1]) for i in range(3)])
        monkeypatch.setattr(unet, "_spatially_uniform", lambda t: False)
        slow = net(y, y, t)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast, singles, atol=1e-6, rtol=0)
    # and the time matters: the images would not agree with the same time
    with torch.no_grad():
        other = net(y, y, torch.full_like(t, 0.4))
    assert (other[0] - fast[0]).abs().max() > 1e-4


def test_varying_time_map_takes_the_per_pixel_path(net):
    x, y = _inputs(batch=1)
    t = torch.full_like(y, 0.3)
    t[..., :, 16:] = 0.6
    assert not unet._spatially_uniform(t)
    with torch.no_grad():
        out = net(y, y, t)
        left = net(y, y, torch.full_like(y, 0.3))
    # pixels far from the boundary on the left side see (almost) the uniform-0.3 result; the
    # right side does not
    assert (out[..., :, :4] - left[..., :, :4]).abs().mean() < (
        out[..., :, -4:] - left[..., :, -4:]
    ).abs().mean()


def test_loaded_weights_are_channels_last_and_agree(net, tmp_path):
    path = save_model(net, tmp_path / "m", ModelInfo(name="m", architecture=CFG, sigma_max=0.5))
    loaded, _ = load_weights(path)
    assert loaded.head.weight.is_contiguous(memory_format=torch.channels_last)
    x, y = _inputs()
    t = torch.rand(y.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(y, y, t), net(y, y, t), atol=1e-5, rtol=0)


def test_deepening_keeps_the_function_and_grows_from_identity():
    """A shallow model's weights in a deeper one (extra blocks zeroed at their second conv) give
    the same output; the extra blocks still get gradients, so training can grow them."""
    from napari_diffdenoise.model.unet import deepen_state_dict

    torch.manual_seed(0)
    shallow = TimeUNet(UNetConfig(channels=(8, 16, 24), blocks_per_level=1))
    for p in shallow.parameters():  # a trained-looking model: the tail is not zero
        torch.nn.init.normal_(p, std=0.05)
    deep = TimeUNet(UNetConfig(channels=(8, 16, 24), blocks_per_level=2))
    deep.load_state_dict(deepen_state_dict(shallow.state_dict(), deep))
    x = torch.rand(2, 1, 16, 16)
    t = torch.rand(2, 1, 16, 16) * 0.5
    assert not torch.allclose(shallow(x, x, t), x)  # (the check below is not vacuous)
    torch.testing.assert_close(deep(x, x, t), shallow(x, x, t), atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(deep.enc[0][1].conv2.weight) == 0
    assert torch.count_nonzero(deep.enc[0][1].conv1.weight) > 0
    (deep(x, x, t) - x).pow(2).mean().backward()
    assert deep.enc[0][1].conv2.weight.grad.abs().sum() > 0
    assert deep.mid[3].conv2.weight.grad.abs().sum() > 0


def test_deepening_refuses_other_widths_and_foreign_tensors():
    from napari_diffdenoise.model.unet import deepen_state_dict

    deep = TimeUNet(UNetConfig(channels=(8, 16, 24), blocks_per_level=2))
    narrow = TimeUNet(UNetConfig(channels=(8, 12, 24), blocks_per_level=1)).state_dict()
    with pytest.raises(ValueError, match="shape"):
        deepen_state_dict(narrow, deep)
    fewer_levels = TimeUNet(UNetConfig(channels=(8, 16), blocks_per_level=1)).state_dict()
    with pytest.raises(ValueError):
        deepen_state_dict(fewer_levels, deep)
    state = TimeUNet(UNetConfig(channels=(8, 16, 24))).state_dict()
    state["stray.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="lacks"):
        deepen_state_dict(state, deep)
