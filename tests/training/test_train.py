"""Training: the noise synthesis, the config, and a tiny real train-then-denoise run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_diffdenoise import TrainingConfig, denoise, load_model, train_model
from napari_diffdenoise.diffusion.impulses import IMPULSE_TIME, fill_missing
from napari_diffdenoise.training.data import corrupt


def _cfg(**kw):
    return TrainingConfig(**kw)


def test_gaussian_corruption_matches_its_time_map():
    cfg = _cfg(p_gaussian=1, p_spatially_variant=0, p_poisson=0, p_salt_and_pepper=0)
    x0 = torch.rand(8, 1, 64, 64)
    y, tau = corrupt(x0, cfg, torch.Generator().manual_seed(0))
    for i in range(8):
        expected = float(tau[i].mean()) * cfg.sigma_max
        assert float((y[i] - x0[i]).std()) == pytest.approx(expected, rel=0.1, abs=2e-3)
        assert float(tau[i].std()) < 1e-6  # constant σ


def test_correlated_noise_keeps_its_variance_and_reports_what_the_estimator_reads():
    """The 3-tap filter keeps white noise's variance and gives the expected lag-1 correlation;
    the two readings it reports are what ``estimate_noise`` (the global PCA σ) and the DCT
    band energy measure on such noise; white noise passes unchanged, reading 1."""
    from napari_diffdenoise import estimate_noise
    from napari_diffdenoise.noise.bands import band_energies, bands_for
    from napari_diffdenoise.noise.patches import sample_patches
    from napari_diffdenoise.training.data import correlate_noise

    w = torch.randn(3, 1, 384, 384, generator=torch.Generator().manual_seed(0))
    a_rows, a_cols = torch.tensor([0.0, 0.15, 0.3]), torch.tensor([0.0, 0.07, 0.0])
    n, band, pca = correlate_noise(w, a_rows, a_cols)
    torch.testing.assert_close(n[0], w[0])
    assert float(band[0]) == pytest.approx(1.0, abs=1e-6) and float(pca[0]) == pytest.approx(
        1.0, abs=1e-3
    )
    for i in (1, 2):
        assert float(n[i].var()) == pytest.approx(1.0, rel=0.03)
        a = float(a_rows[i])
        lag1 = float((n[i, 0, 1:] * n[i, 0, :-1]).mean())  # along the filtered axis
        assert lag1 == pytest.approx(2 * a / (1 + 2 * a * a), abs=0.02)
        assert float(band[i]) < 0.95 and float(pca[i]) < 0.99
        field = n[i, 0].double().numpy() * 20.0 + 100.0
        energy, _ = band_energies(sample_patches(field), bands_for(7))
        assert float(np.mean(energy)) / 400.0 == pytest.approx(float(band[i]), rel=0.05)
        if i == 1:  # (mild correlation; under strong correlation along one axis the
            # estimator's weak-texture selection wanders: 13-18.4 against 18.8 over seeds)
            sigma = estimate_noise(field.astype(np.float32)).sigma
            assert sigma == pytest.approx(20.0 * float(pca[i]) ** 0.5, rel=0.08)


def test_correlated_corruption_time_map_is_the_reading():
    """With ``p_correlated`` 1 the noise is correlated and the time map is the reading (below
    the noise's own std); with 0 nothing changes and no random number is drawn."""
    base = dict(
        p_gaussian=1,
        p_spatially_variant=0,
        p_poisson=0,
        p_salt_and_pepper=0,
        sigma_range=(0.05, 0.2),
    )
    x0 = torch.full((8, 1, 64, 64), 0.5)
    y0, tau0 = corrupt(x0, _cfg(**base), torch.Generator().manual_seed(5))
    y1, tau1 = corrupt(x0, _cfg(**base, p_correlated=0.0), torch.Generator().manual_seed(5))
    torch.testing.assert_close(y0, y1)
    torch.testing.assert_close(tau0, tau1)
    y, tau = corrupt(
        x0, _cfg(**base, p_correlated=1.0, correlation_max=0.3), torch.Generator().manual_seed(5)
    )
    assert float(tau.flatten(1).std(1).max()) < 1e-6  # still one σ per image
    ratio = (tau / tau0).flatten(1)[:, 0]
    assert float(ratio.max()) <= 1.0 + 1e-6 and float(ratio.min()) < 0.95
    std = (y - x0).flatten(1).std(1)
    expected = tau0.flatten(1)[:, 0] * 0.5  # the noise keeps the level it was drawn with
    torch.testing.assert_close(std, expected, rtol=0.1, atol=2e-3)


def test_black_clipping_corruption():
    """With ``p_clip_black`` 1 the Gaussian and Poisson observations are clamped at a floor
    near the patch's darkest signal (a pile-up there, nothing below it), the Poisson time map
    is computed from the clamped data and the Gaussian σ is unchanged; with 0 nothing changes
    and no random number is drawn."""
    x0 = torch.linspace(0.0, 1.0, 64).view(1, 1, 1, 64).expand(16, 1, 64, 64).contiguous()
    for kind in ("gaussian", "poisson"):
        probs = dict(
            p_gaussian=float(kind == "gaussian"),
            p_spatially_variant=0,
            p_poisson=float(kind == "poisson"),
            p_salt_and_pepper=0,
        )
        base = dict(**probs, sigma_range=(0.05, 0.1), photons_range=(20, 20), read_noise_max=0.02)
        y0, tau0 = corrupt(x0, _cfg(**base), torch.Generator().manual_seed(3))
        y1, tau1 = corrupt(x0, _cfg(**base, p_clip_black=0.0), torch.Generator().manual_seed(3))
        torch.testing.assert_close(y0, y1)
        torch.testing.assert_close(tau0, tau1)
        y, tau = corrupt(
            x0,
            _cfg(**base, p_clip_black=1.0, clip_black_range=(0.0, 0.5)),
            torch.Generator().manual_seed(3),
        )
        floor = y.flatten(1).amin(1)
        at_floor = (y.flatten(1) == floor[:, None]).float().mean(1)
        assert float(at_floor.min()) > 0.01  # a pile-up at the floor in every sample
        # the floor: the darkest signal (2nd percentile) plus 0-0.5 noise stds there
        dark = float(torch.quantile(x0[0].flatten(), 0.02))
        s_dark = (
            tau0.flatten(1)[:, 0] * 0.5
            if kind == "gaussian"
            else torch.full((16,), (dark / 20 + 0.02**2) ** 0.5)
        )
        assert bool(((floor >= dark - 1e-6) & (floor <= dark + 0.5 * s_dark + 1e-6)).all())
        bright = (slice(None), 0, slice(None), slice(40, None))
        # far above the floor: untouched (but for a rare deep Poisson dip at 20 photons)
        assert float((y[bright] != y0[bright]).float().mean()) < 1e-3
        if kind == "gaussian":
            torch.testing.assert_close(tau, tau0)
        else:
            dark_px = (slice(None), 0, slice(8, -8), slice(0, 8))
            assert float(tau[dark_px].mean()) > float(tau0[dark_px].mean())  # clamped: brighter
            torch.testing.assert_close(tau[bright], tau0[bright], rtol=0.02, atol=1e-4)


def test_black_level_shift():
    """``p_black_shift`` lowers a share of the clean patches by ``u`` times their 1st
    percentile (floored at 0; the result is both the target and what the noise is drawn on),
    leaves the others and the input alone, and draws no random number when it is 0."""
    from napari_diffdenoise.training.data import shift_black_level

    x0 = 0.2 + 0.6 * torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    before = x0.clone()
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert shift_black_level(x0, _cfg(), g) is x0
    assert torch.equal(g.get_state(), state)  # nothing drawn: older recipes unchanged
    out = shift_black_level(x0, _cfg(p_black_shift=0.5, black_shift_range=(0.7, 1.0)), g)
    torch.testing.assert_close(x0, before)  # input untouched
    changed = (out != x0).flatten(1).any(1)
    assert 16 < int(changed.sum()) < 48  # about half of the 64 patches
    q_in = torch.quantile(x0.flatten(1), 0.01, dim=1)
    q_out = torch.quantile(out.flatten(1), 0.01, dim=1)
    assert bool((q_out[changed] <= 0.3 * q_in[changed] + 1e-4).all())  # lowered 70-100 %
    shift = (x0 - out)[changed]
    assert float(shift.amin()) >= -1e-7 and float(out.amin()) >= 0.0
    # the same shift for every pixel of a patch (above the floor at 0)
    lifted = out[changed].flatten(1) > 0
    per_patch = (x0 - out)[changed].flatten(1)
    spread = torch.where(lifted, per_patch, per_patch.amax(1, keepdim=True)).amax(1) - torch.where(
        lifted, per_patch, per_patch.amax(1, keepdim=True)
    ).amin(1)
    assert float(spread.max()) < 1e-6
    torch.testing.assert_close(out[~changed], x0[~changed])
    everything = shift_black_level(x0, _cfg(p_black_shift=1.0), torch.Generator().manual_seed(1))
    assert bool((everything != x0).flatten(1).any(1).all())


def test_spatially_variant_corruption_varies_in_space():
    cfg = _cfg(
        p_gaussian=0,
        p_spatially_variant=1,
        p_poisson=0,
        p_salt_and_pepper=0,
        sigma_range=(0.01, 0.3),
    )
    x0 = torch.full((16, 1, 64, 64), 0.5)
    y, tau = corrupt(x0, cfg, torch.Generator().manual_seed(1))
    z = (y - x0) / (tau * cfg.sigma_max).clamp_min(1e-6)
    assert float(z.std()) == pytest.approx(1.0, rel=0.05)
    assert float(tau.flatten(1).std(1).max()) > 0.05


def test_poisson_corruption_variance_follows_signal():
    cfg = _cfg(
        p_gaussian=0,
        p_spatially_variant=0,
        p_poisson=1,
        p_salt_and_pepper=0,
        read_noise_max=0.0,
        photons_range=(50, 50),
    )
    x0 = torch.linspace(0.05, 1, 64).view(1, 1, 1, 64).expand(64, 1, 64, 64).contiguous()
    y, tau = corrupt(x0, cfg, torch.Generator().manual_seed(2))
    var = (y - x0).pow(2).mean((0, 1, 2))
    torch.testing.assert_close(var, x0[0, 0, 0] / 50, rtol=0.15, atol=2e-4)
    # the time map follows the signal, as estimated from the noisy observation (away from the
    # reflected borders of the ramp)
    inner = (slice(None), 0, slice(8, -8), slice(8, -8))
    expected = torch.sqrt(x0 / 50)[inner] / cfg.sigma_max
    torch.testing.assert_close(tau[inner].mean(0), expected.mean(0), rtol=0.03, atol=1e-3)
    torch.testing.assert_close(tau[inner], expected, rtol=0.15, atol=1e-3)


def test_poisson_time_map_comes_from_the_observation_not_the_clean_image():
    # A σ map computed from the clean signal hands the network the clean image (a leak it learns
    # to exploit; at inference it only gets a map estimated from the noisy data).
    from napari_diffdenoise.training.data import observed_poisson_sigma

    cfg = _cfg(
        p_gaussian=0,
        p_spatially_variant=0,
        p_poisson=1,
        p_salt_and_pepper=0,
        read_noise_max=0.0,
        photons_range=(50, 50),
    )
    x0 = torch.full((8, 1, 64, 64), 0.2)
    x0[..., ::2, ::2] = 0.9  # pixel-level structure the clean-signal map would copy
    y, tau = corrupt(x0, cfg, torch.Generator().manual_seed(4))
    zero = torch.zeros(8, 1, 1, 1)
    same = observed_poisson_sigma(y, torch.full((8, 1, 1, 1), 50.0), zero) / cfg.sigma_max
    torch.testing.assert_close(tau, same.clamp(0, 1))
    on, off = tau[..., ::2, ::2].mean(), tau[..., 1::2, 1::2].mean()
    clean_contrast = (np.sqrt(0.9 / 50) - np.sqrt(0.2 / 50)) / cfg.sigma_max
    assert float(on - off) < 0.1 * clean_contrast
    # dark regions keep a positive noise level (τ = 0 would leave those pixels untouched)
    dark = observed_poisson_sigma(
        torch.zeros(2, 1, 32, 32), torch.full((2, 1, 1, 1), 50.0), torch.zeros(2, 1, 1, 1)
    )
    assert float(dark.min()) > 0


def test_photon_floor_of_the_poisson_time_map():
    """``photon_floor`` lifts the Poisson σ to at least ``photon_floor / photons`` (one count's
    step, as the inference's start map) and leaves it where it is above that."""
    from napari_diffdenoise.training.data import observed_poisson_sigma

    photons = torch.tensor([20.0, 200.0]).view(2, 1, 1, 1)
    x = torch.linspace(0.0, 1.0, 64).view(1, 1, 1, 64).expand(2, 1, 64, 64)
    y = torch.poisson(x * photons, generator=torch.Generator().manual_seed(0)) / photons
    read = torch.zeros(2, 1, 1, 1)
    bare = observed_poisson_sigma(y, photons, read)
    lifted = observed_poisson_sigma(y, photons, read, photon_floor=1.0)
    torch.testing.assert_close(lifted, torch.maximum(bare, 1.0 / photons))
    assert float((lifted > bare).float().mean()) > 0.01  # the dark end is lifted
    cfg = _cfg(
        p_gaussian=0,
        p_spatially_variant=0,
        p_poisson=1,
        p_salt_and_pepper=0,
        photons_range=(20, 20),
        read_noise_max=0.0,
        photon_floor=1.0,
    )
    _, tau = corrupt(x.contiguous(), cfg, torch.Generator().manual_seed(1))
    assert float(tau.min()) >= 1.0 / 20 / cfg.sigma_max - 1e-6


def test_impulses_are_filled_and_get_their_own_time():
    cfg = _cfg(
        p_gaussian=0,
        p_spatially_variant=0,
        p_poisson=0,
        p_salt_and_pepper=1,
        impulse_range=(0.3, 0.3),
    )
    x0 = torch.full((4, 1, 32, 32), 0.5)
    y, tau = corrupt(x0, cfg, torch.Generator().manual_seed(3))
    hit = tau == IMPULSE_TIME
    assert 0.2 < float(hit.float().mean()) < 0.4
    assert float(y.min()) > 0.2 and float(y.max()) < 0.8  # no 0/1 impulses left


def test_fill_missing_interpolates_from_neighbours():
    y = torch.full((1, 1, 16, 16), 0.25)
    miss = torch.zeros_like(y, dtype=torch.bool)
    miss[..., 4:12, 4:12] = True
    y[miss] = 1.0
    out = fill_missing(y, miss)
    torch.testing.assert_close(out, torch.full_like(y, 0.25))


#: bad values for every field of TrainingConfig (the test below checks that none is missing)
BAD_VALUES: dict[str, list] = {
    "name": ["", "a/b", 3],
    "output": ["", None],
    "channels": [(32,), (32, 2), (32.5, 64), "32,64"],
    "blocks_per_level": [0, 1.5],
    "sigma_max": [0.0, -1.0, float("nan")],
    "steps": [0, -5, 2.5, "10"],
    "max_minutes": [0, -1.0, float("inf")],
    "batch_size": [0, True],
    "patch_size": [8, 20, 100],
    "lr": [0.0, -1e-4, float("nan")],
    "lr_min": [-1e-6, 1.0],  # 1.0: above lr
    "weight_decay": [-0.1],
    "warmup_steps": [-1],
    "ema_decay": [1.0, -0.1],
    "charbonnier_eps": [0.0],
    "grad_clip": [-1.0],
    "train_dir": ["", 3],
    "holdout": [-1],
    "synthetic_images": [-1],
    "synthetic_size": [8, 32],  # 32: below the default patch size
    "p_synthetic": [1.5, -0.1],
    "texture_images": [-1],
    "p_texture": [1.5],
    "p_gaussian": [-1.0],
    "p_spatially_variant": [-0.5],
    "p_poisson": [-0.5],
    "p_salt_and_pepper": [-0.5],
    "sigma_range": [(0.1, 0.9), (0.2, 0.1), (-0.1, 0.1), (0.1,)],
    "photons_range": [(0.0, 10.0), (100.0, 10.0)],
    "read_noise_max": [-0.1, 0.9],
    "impulse_range": [(0.5, 0.1), (0.1, 1.5)],
    "p_correlated": [1.5],
    "correlation_max": [0.6, -0.1],
    "p_clip_black": [-0.5],
    "clip_black_range": [(1.0, 0.0)],
    "photon_floor": [-1.0, 11.0],
    "p_black_shift": [1.5],
    "black_shift_range": [(0.5, 1.2), (0.9, 0.1)],
    "p_at_observation": [1.5],
    "p_smooth_time": [-0.1],
    "p_fresh_noise": [-0.1],
    "init_from": [""],
    "resume_from": [""],
    "precision": ["float16"],
    "seed": [-1, 1.5],
    "threads": [0],
    "device": ["tpu", "cuda:x", ""],
    "log_every": [0],
    "val_every": [0],
    "checkpoint_every": [0],
}


def test_every_field_has_bad_values():
    assert set(BAD_VALUES) == set(TrainingConfig.model_fields)


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in BAD_VALUES.items() for v in vs])
def test_bad_config(field, value):
    """A bad value is refused at construction, in from_dict and on assignment, naming the
    field."""
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})
    with pytest.raises(ValueError, match=field):
        TrainingConfig.from_dict({field: value})
    cfg = TrainingConfig()
    with pytest.raises(ValueError, match=field):
        setattr(cfg, field, value)


def test_config_cross_field_checks():
    with pytest.raises(ValueError, match="p_synthetic"):
        TrainingConfig(p_synthetic=0.7, p_texture=0.5)
    with pytest.raises(ValueError, match="noise mixture"):
        TrainingConfig(p_gaussian=0, p_spatially_variant=0, p_poisson=0, p_salt_and_pepper=0)
    with pytest.raises(ValueError, match="init_from and resume_from"):
        TrainingConfig(init_from="default", resume_from="recipe:x")
    with pytest.raises(ValueError, match="patch_size"):  # 5 levels: a multiple of 16
        TrainingConfig(channels=(8, 8, 8, 8, 8), patch_size=40)


def test_config_round_trip():
    cfg = TrainingConfig(channels=[8, 16], sigma_range=[0.01, 0.2], init_from="default")
    assert cfg.channels == (8, 16) and cfg.sigma_range == (0.01, 0.2)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert TrainingConfig.from_dict(data) == cfg
    assert cfg.replace(steps=5).steps == 5 and cfg.steps == 10000


def test_patch_sampler_weights():
    from napari_diffdenoise.training.data import PatchSampler

    images = [
        np.zeros((32, 32), np.float32),
        np.ones((32, 32), np.float32),
        np.full((8, 8), 5, np.float32),
    ]  # too small: dropped, its weight with it
    never_ones = PatchSampler(images, 16, seed=0, weights=[1.0, 0.0, 1.0])
    mostly_ones = PatchSampler(images, 16, seed=0, weights=[1.0, 9.0, 1.0])

    def ones_share(sampler):
        # the intensity augmentation maps a constant patch to a constant: 0 stays at the offset,
        # 1 becomes gain + offset; tell them apart by the source image instead
        picks = [sampler.rng.choice(len(sampler.images), p=sampler.p) for _ in range(2000)]
        return np.mean(picks)

    assert ones_share(never_ones) == 0.0
    assert 0.85 < ones_share(mostly_ones) < 0.95
    assert never_ones.batch(4).shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="weights"):
        PatchSampler(images, 16, weights=[1.0])
    with pytest.raises(ValueError, match="weights"):
        PatchSampler(images, 16, weights=[0.0, 0.0, 1.0])


def test_unknown_config_key():
    with pytest.raises(ValueError, match="unknown"):
        TrainingConfig.from_dict({"stepz": 3})


def test_missing_training_folder(tmp_path):
    cfg = TrainingConfig(
        output=str(tmp_path / "out"), train_dir=str(tmp_path / "none"), steps=2, synthetic_images=0
    )
    with pytest.raises(OSError, match="not found"):
        train_model(cfg)


def _tiny_model_file(tmp_path, channels=(8, 16)):
    from napari_diffdenoise.model.unet import TimeUNet, UNetConfig
    from napari_diffdenoise.model.weights import ModelInfo, save_model

    arch = UNetConfig(channels=channels)
    torch.manual_seed(0)
    net = TimeUNet(arch)
    torch.nn.init.normal_(net.tail.weight, std=0.01)
    return net, save_model(net, tmp_path / "base", ModelInfo("base", arch, 0.5))


def test_init_weights_from_a_model_file(tmp_path):
    from napari_diffdenoise.model.unet import TimeUNet, UNetConfig
    from napari_diffdenoise.training.checkpoint import init_weights

    net, path = _tiny_model_file(tmp_path)
    model, ema = TimeUNet(UNetConfig(channels=(8, 16))), TimeUNet(UNetConfig(channels=(8, 16)))
    init_weights(path, model, ema)
    for other in (model, ema):
        for a, b in zip(net.state_dict().values(), other.state_dict().values()):
            torch.testing.assert_close(a, b)
    wrong = TimeUNet(UNetConfig(channels=(8, 24)))
    with pytest.raises(ValueError, match="does not fit"):
        init_weights(path, wrong, TimeUNet(UNetConfig(channels=(8, 24))))
    with pytest.raises(OSError, match="not found"):
        init_weights(tmp_path / "missing.safetensors", model, ema)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04not a safetensors file")
    before = junk.read_bytes()
    with pytest.raises(OSError, match="not a valid safetensors"):
        init_weights(junk, model, ema)
    assert junk.read_bytes() == before
    with torch.no_grad():
        net.tail.weight[0, 0, 0, 0] = float("inf")
    from napari_diffdenoise.model.weights import ModelInfo, save_model

    bad = save_model(net, tmp_path / "inf", ModelInfo("inf", UNetConfig(channels=(8, 16)), 0.5))
    with pytest.raises(OSError, match="non-finite"):
        init_weights(bad, model, ema)
    with pytest.raises(LookupError, match="default"):
        init_weights("no-such-model", model, ema)


@pytest.mark.slow
def test_tiny_train_then_denoise(tmp_path):
    from skimage import data, io

    cam = data.camera()
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    for i, (r, c) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
        io.imsave(train_dir / f"{i}.png", cam[r : r + 192, c : c + 192], check_contrast=False)
    cfg = TrainingConfig(
        name="tiny",
        output=str(tmp_path / "run"),
        train_dir=str(train_dir),
        holdout=1,
        channels=(16, 32),
        steps=120,
        batch_size=8,
        patch_size=32,
        lr=2e-3,
        warmup_steps=10,
        synthetic_images=0,
        p_gaussian=1,
        p_spatially_variant=0,
        p_poisson=0,
        p_salt_and_pepper=0,
        sigma_range=(0.1, 0.2),
        log_every=20,
        val_every=60,
        checkpoint_every=60,
        seed=0,
        p_fresh_noise=0.5,
    )
    seen = []
    train_model(cfg, progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 121))
    assert seen[-1].loss < seen[0].loss
    assert any(p.val_psnr for p in seen)
    model_path = tmp_path / "run" / "tiny.safetensors"
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert meta["training"]["steps"] == 120 and meta["sigma_max"] == cfg.sigma_max

    clean = cam[400:496, 100:228].astype(np.float32)
    noisy = clean + np.random.default_rng(0).normal(0, 40, clean.shape).astype(np.float32)
    out = denoise(noisy, sigma=40, model=model_path)
    mse = lambda a: np.mean((a - clean) ** 2)  # noqa: E731
    assert mse(out) < 0.6 * mse(noisy)
    assert load_model(str(model_path)).name == "tiny"

    # resuming continues from the checkpoint instead of starting again
    cfg2 = TrainingConfig.from_dict({**cfg.to_dict(), "steps": 130})
    more = []
    train_model(cfg2, stop_at_step=125, progress=more.append)  # a pause, not an end
    assert [p.step for p in more] == list(range(121, 126))
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 125
    from napari_diffdenoise.training.loop import _lr_at

    assert more[-1].lr == pytest.approx(_lr_at(124, cfg2))  # the 130-step schedule, not 125
    train_model(cfg2, progress=more.append)
    assert [p.step for p in more] == list(range(121, 131))

    # a warm restart: new run, weights (raw and EMA) from that checkpoint, a fresh schedule
    ckpt = tmp_path / "run" / "checkpoint.safetensors"
    cfg3 = TrainingConfig.from_dict(
        {
            **cfg.to_dict(),
            "output": str(tmp_path / "warm"),
            "steps": 4,
            "init_from": str(ckpt),
            "val_every": 4,
        }
    )
    warm = []
    train_model(cfg3, progress=warm.append)
    assert [p.step for p in warm] == [1, 2, 3, 4]
    assert warm[0].lr == pytest.approx(cfg.lr / cfg.warmup_steps)  # warm-up starts again
    # the EMA went on from the base model's: the same validation to within what 4 tiny steps do
    assert warm[-1].val_psnr["gaussian25"] == pytest.approx(
        seen[-1].val_psnr["gaussian25"], abs=0.5
    )
    meta3 = json.loads((tmp_path / "warm" / "tiny.json").read_text())["training"]
    assert meta3["steps"] == 4 and meta3["total_steps"] == 134
    assert meta3["init_from"]["steps"] == 130

    # a warm restart into a deeper network of the same widths: the shallow model's function
    # (extra blocks start as the identity), then trained on
    cfg4 = TrainingConfig.from_dict(
        {
            **cfg3.to_dict(),
            "output": str(tmp_path / "deep"),
            "blocks_per_level": 2,
            "steps": 1,
            "lr": 1e-12,
            "lr_min": 0.0,
            "warmup_steps": 1,
            "val_every": 1,
        }
    )
    deep = []
    train_model(cfg4, progress=deep.append)
    assert deep[0].val_psnr["gaussian25"] == pytest.approx(
        seen[-1].val_psnr["gaussian25"], abs=0.05
    )
    meta4 = json.loads((tmp_path / "deep" / "tiny.json").read_text())
    assert meta4["architecture"]["blocks_per_level"] == 2
    assert meta4["training"]["init_from"]["deepened"] is True
    with pytest.raises(ValueError, match="does not fit"):  # the other way round: refused
        train_model(
            TrainingConfig.from_dict(
                {
                    **cfg3.to_dict(),
                    "output": str(tmp_path / "x"),
                    "init_from": str(tmp_path / "deep" / "tiny.safetensors"),
                }
            )
        )


def _camera_crops(folder, n=3, size=96):
    from skimage import data, io

    cam = data.camera()
    folder.mkdir()
    for i in range(n):
        io.imsave(
            folder / f"{i}.png",
            cam[i * 128 : i * 128 + size, 100 : 100 + size],
            check_contrast=False,
        )
    return folder


def _short_run(tmp_path, **kw):
    return TrainingConfig(
        **{
            "name": "short",
            "output": str(tmp_path / "run"),
            "train_dir": str(_camera_crops(tmp_path / "train")),
            "holdout": 1,
            "channels": (8, 16),
            "steps": 6,
            "batch_size": 4,
            "patch_size": 32,
            "warmup_steps": 2,
            "synthetic_images": 2,
            "synthetic_size": 64,
            "log_every": 2,
            "val_every": 3,
            "checkpoint_every": 3,
            "p_fresh_noise": 0.5,
            **kw,
        }
    )


def test_precision_setting_is_checked():
    with pytest.raises(ValueError, match="precision"):
        TrainingConfig(precision="float16")


def test_bfloat16_training_keeps_float32_weights(tmp_path):
    """bfloat16 autocast (for GPUs and AMX CPUs) runs on any CPU; weights, EMA and the saved
    model stay float32 and finite, and the run resumes like a float32 one."""
    from safetensors.torch import load_file

    cfg = _short_run(tmp_path, precision="bfloat16")
    seen = []
    train_model(cfg, progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 7)) and all(np.isfinite(p.loss) for p in seen)
    weights = load_file(str(tmp_path / "run" / "short.safetensors"))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())
    cfg.steps = 8
    train_model(cfg, progress=seen.append)
    assert [p.step for p in seen[6:]] == [7, 8]


@pytest.mark.gpu("cuda")
def test_corrupt_refuses_a_generator_on_another_device():
    with pytest.raises(ValueError, match="generator"):
        corrupt(torch.rand(2, 1, 32, 32, device="cuda"), _cfg(), torch.Generator().manual_seed(0))


@pytest.mark.gpu("cuda")
def test_training_on_cuda(tmp_path):
    """The GPU path: noise synthesised on the device, fused AdamW, bfloat16 autocast; the noise
    statistics match the CPU's, the run trains and the model denoises on the CPU."""
    cfg = _cfg(p_gaussian=1, p_spatially_variant=0, p_poisson=0, p_salt_and_pepper=0)
    x0 = torch.rand(8, 1, 64, 64, device="cuda")
    y, tau = corrupt(x0, cfg, torch.Generator(device="cuda").manual_seed(0))
    assert y.device.type == "cuda" and tau.device.type == "cuda"
    z = (y - x0) / (tau * cfg.sigma_max).clamp_min(1e-6)
    assert float(z.std()) == pytest.approx(1.0, rel=0.05)
    for kind in ("p_spatially_variant", "p_poisson", "p_salt_and_pepper"):
        mix = {
            k: 0 for k in ("p_gaussian", "p_spatially_variant", "p_poisson", "p_salt_and_pepper")
        }
        y, tau = corrupt(
            x0, _cfg(**{**mix, kind: 1}), torch.Generator(device="cuda").manual_seed(1)
        )
        assert torch.isfinite(y).all() and bool(((tau >= 0) & (tau <= 1)).all())
    run = _short_run(tmp_path, device="cuda", precision="bfloat16", steps=20, lr=2e-3)
    seen = []
    train_model(run, progress=seen.append)
    assert len(seen) == 20 and all(np.isfinite(p.loss) for p in seen)
    img = np.random.default_rng(0).normal(100, 20, (64, 64)).astype(np.float32)
    out = denoise(img, sigma=20, model=tmp_path / "run" / "short.safetensors", device="cpu")
    assert out.shape == img.shape and np.isfinite(out).all()


def test_image_shares_with_textures():
    from napari_diffdenoise.training.loop import _image_weights

    cfg = TrainingConfig(synthetic_images=4, texture_images=2, p_synthetic=0.2, p_texture=0.1)
    w = np.array(_image_weights(cfg, 10 + 4 + 2))
    assert w.sum() == pytest.approx(1.0)
    assert w[:10].sum() == pytest.approx(0.7) and w[10:14].sum() == pytest.approx(0.2)
    assert w[14:].sum() == pytest.approx(0.1) and np.ptp(w[:10]) == 0
    # unset shares follow the counts; a share of images the recipe has not got is ignored
    w = np.array(
        _image_weights(TrainingConfig(synthetic_images=4, texture_images=4, p_texture=0.5), 16)
    )
    assert w[8:12].sum() == pytest.approx(0.25) and w[12:].sum() == pytest.approx(0.5)
    assert _image_weights(TrainingConfig(synthetic_images=0, p_synthetic=0.3), 10) is None
    assert _image_weights(TrainingConfig(synthetic_images=4), 14) is None
    for bad in ({"p_texture": 1.5}, {"p_synthetic": 0.7, "p_texture": 0.5}, {"texture_images": -1}):
        with pytest.raises(ValueError):
            TrainingConfig(**bad)


def test_training_with_textures_runs(tmp_path):
    cfg = _short_run(tmp_path, texture_images=2, p_texture=0.5, p_synthetic=0.25)
    train_model(cfg)
    meta = json.loads((tmp_path / "run" / "short.json").read_text())
    assert "2 synthetic textures" in meta["training"]["data"]


def test_training_loop_lowers_black_levels(tmp_path):
    """The loop applies ``p_black_shift`` before drawing the noise: the same seed gives another
    first loss with it than without."""
    losses = []
    for p in (0.0, 1.0):
        seen = []
        (tmp_path / str(p)).mkdir()
        cfg = _short_run(
            tmp_path / str(p),
            steps=1,
            val_every=10,
            checkpoint_every=10,
            p_black_shift=p,
            black_shift_range=(1.0, 1.0),
            seed=3,
        )
        train_model(cfg, progress=seen.append)
        losses.append(seen[0].loss)
    assert losses[0] != losses[1]


RECIPES = Path(__file__).resolve().parents[2] / "recipes"
#: the chain that rebuilt the bundled model, in order (docs/training.md)
BUNDLED_CHAIN = [
    "stage1_gaussian",
    "default",
    "stage3_warm_restart",
    "stage4a_warm_restart",
    "stage4b_textures",
]


def test_every_recipe_is_a_valid_portable_config():
    """The recipes in ``recipes/`` (the commands in docs/training.md run them) parse with known
    settings and valid values, carry no machine settings, and every ``init_from`` /
    ``resume_from`` resolves: a registered model name, an existing path, or a recipe file."""
    from napari_diffdenoise import list_models
    from napari_diffdenoise.training.references import recipe_name, referenced_recipe

    paths = sorted(RECIPES.glob("*.json"))
    assert {p.stem for p in paths} >= set(BUNDLED_CHAIN)
    for path in paths:
        raw = json.loads(path.read_text())
        assert not {"threads", "device", "max_minutes"} & set(raw), path.name
        cfg = TrainingConfig.from_json(path)
        assert cfg.name and cfg.output.startswith("runs/"), path.name
        for start in (cfg.init_from, cfg.resume_from):
            if start is None:
                continue
            if recipe_name(start):
                assert referenced_recipe(start, cfg.recipe_dir).is_file(), path.name
            elif "/" in start or start.endswith(".safetensors"):
                assert Path(start).exists(), (path.name, start)
            else:
                assert start in list_models(), (path.name, start)


def test_the_bundled_chain_links_up_and_matches_the_bundled_model():
    """Each stage starts from the one before; the last one's settings are those the bundled
    model's sidecar records, but for the schedule and machine fields the recipes changed."""
    cfgs = [TrainingConfig.from_json(RECIPES / f"{n}.json") for n in BUNDLED_CHAIN]
    assert cfgs[0].init_from is None and cfgs[0].resume_from is None
    assert cfgs[1].resume_from == f"recipe:{BUNDLED_CHAIN[0]}"
    for prev, cfg in zip(BUNDLED_CHAIN[1:], cfgs[2:]):
        assert cfg.init_from == f"recipe:{prev}"
    from napari_diffdenoise.model.registry import bundled_dir

    sidecar = json.loads((bundled_dir() / "default.json").read_text())["training"]
    recorded = sidecar["recipe"]
    last = cfgs[-1].to_dict()
    changed = {k for k in recorded if recorded[k] != last[k]}
    assert changed <= {"init_from", "max_minutes", "steps", "threads"}
    assert last["steps"] == sidecar["steps"]


def test_recipe_references_resolve_to_the_run_checkpoint(tmp_path, monkeypatch):
    from napari_diffdenoise.training.references import resolve_start

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.json").write_text(json.dumps({"output": "runs/base"}))
    assert resolve_start("default", "recipes") == "default"  # names and paths pass through
    with pytest.raises(OSError, match=r"train recipes/base.json first"):
        resolve_start("recipe:base", "recipes")
    with pytest.raises(OSError, match="not found"):
        resolve_start("recipe:missing", "recipes")
    with pytest.raises(ValueError, match="recipe:"):
        resolve_start("recipe:", "recipes")
    (tmp_path / "runs" / "base").mkdir(parents=True)
    (tmp_path / "runs" / "base" / "checkpoint.safetensors").write_bytes(b"")
    assert resolve_start("recipe:base", "recipes") == str(Path("runs/base/checkpoint.safetensors"))


def test_schedule_is_a_function_of_the_steps_alone(tmp_path):
    """The learning rate depends on the step only; ``max_minutes`` stops a run early without
    changing it."""
    from napari_diffdenoise.training.loop import _lr_at

    cfg = TrainingConfig(steps=1000, warmup_steps=100, lr=1e-3, lr_min=1e-5, max_minutes=1)
    assert _lr_at(0, cfg) == pytest.approx(1e-5) and _lr_at(99, cfg) == pytest.approx(1e-3)
    assert _lr_at(550, cfg) == pytest.approx(0.5 * (1e-3 + 1e-5), rel=1e-2)
    assert _lr_at(1000, cfg) == pytest.approx(1e-5)
    assert _lr_at(550, cfg) == _lr_at(550, cfg.replace(max_minutes=None))
    run = _short_run(tmp_path, steps=50, max_minutes=1e-9, checkpoint_every=50, val_every=50)
    seen = []
    train_model(run, progress=seen.append)
    assert len(seen) <= 1  # the budget was spent before a second step


def test_resume_from_carries_another_run_on(tmp_path):
    """``resume_from: recipe:<name>`` takes that run's checkpoint with its optimiser and step
    counter and goes on under the new recipe's steps; the sidecar says where it came from."""
    first = _short_run(tmp_path, steps=3)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "first.json").write_text(json.dumps(first.to_dict()))
    (recipes / "second.json").write_text(
        json.dumps(
            first.replace(
                output=str(tmp_path / "second"),
                steps=5,
                p_fresh_noise=0.0,
                resume_from="recipe:first",
            ).to_dict()
        )
    )
    second = TrainingConfig.from_json(recipes / "second.json")
    with pytest.raises(OSError, match="first.json first"):
        train_model(second)
    train_model(first)
    seen = []
    train_model(second, progress=seen.append)
    assert [p.step for p in seen] == [4, 5]
    from napari_diffdenoise.training.loop import _lr_at

    assert seen[0].lr == pytest.approx(_lr_at(3, second))  # the new recipe's schedule
    meta = json.loads((tmp_path / "second" / "short.json").read_text())["training"]
    assert meta["steps"] == 5 and meta["resumed_from"]["step"] == 3
    with pytest.raises(ValueError, match="not below"):
        train_model(
            first.replace(
                output=str(tmp_path / "third"),
                steps=3,
                resume_from=str(tmp_path / "run" / "checkpoint"),
            )
        )
