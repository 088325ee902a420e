"""Noisy-only adaptation: the structured noise fit, SURE, a tiny real run, the base-wins rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_diffdenoise import denoise, fine_tune, list_models, synthetic_fluorescence
from napari_diffdenoise.model.registry import model_path
from napari_diffdenoise.model.weights import read_info, read_tensors
from napari_diffdenoise.training.noisemodel import destripe, fit_structured_noise
from napari_diffdenoise.training.selfsup import make_noisy_task, sure_mse

#: small, fast runs
FAST = {"val_every": 10, "batch_size": 4, "patience": 100}


def _clean(seed: int, shape=(256, 256)) -> np.ndarray:
    """A clean image in grey levels (20..220)."""
    image = synthetic_fluorescence(shape, kind="mixed", seed=seed).astype(np.float64)
    return 20.0 + 200.0 * image


def _striped(clean: np.ndarray, seed: int, white=10.0, rows=12.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        clean
        + white * rng.standard_normal(clean.shape)
        + rows * rng.standard_normal((clean.shape[0], 1))
    )


# ---------------------------------------------------------------- the noise model


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fit_recovers_row_stripes_and_the_pixel_noise(seed):
    noisy = _striped(_clean(seed), seed + 10)
    model = fit_structured_noise(noisy)
    assert model.white.kind == "gaussian"
    assert model.white_sigma == pytest.approx(10.0, rel=0.1)
    assert model.row_sigma == pytest.approx(12.0, rel=0.2)
    assert model.col_sigma == 0.0
    # columns are found the same way
    turned = fit_structured_noise(noisy.T)
    assert turned.col_sigma == pytest.approx(12.0, rel=0.2) and turned.row_sigma == 0.0


def test_plain_gaussian_noise_has_no_stripes_and_the_input_is_untouched():
    noisy = _striped(_clean(2), 3, rows=0.0)
    before = noisy.copy()
    model = fit_structured_noise(noisy)
    assert model.row_sigma == 0.0 and model.col_sigma == 0.0
    assert model.white_sigma == pytest.approx(10.0, rel=0.1)
    assert "stripes" not in model.describe()
    assert np.array_equal(noisy, before)


def test_destripe_removes_more_than_half_of_the_row_offsets():
    clean = _clean(4)
    noisy = _striped(clean, 5, white=2.0)
    flat = destripe(noisy, columns=False)
    assert np.std(np.mean(flat - clean, axis=1)) < 0.5 * np.std(np.mean(noisy - clean, axis=1))


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((8, 64)), "too small"),
        (np.zeros((4, 64, 64)), "2D"),
        (np.full((64, 64), np.nan), "NaN"),
    ],
)
def test_the_fit_refuses_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        fit_structured_noise(image)


# ---------------------------------------------------------------- SURE


def test_sure_estimates_the_true_error_of_a_smoother_under_stripe_noise():
    """Averaged over 16 noise draws, SURE with the stripes' covariance (one probe per draw) is
    within 5 % of the true MSE of a 3 × 3 mean filter; the white-noise formula is far off.
    (One draw has only 256 row offsets: single estimates scatter by ~10-20 %.)"""
    import torch
    import torch.nn.functional as F

    def smoother(x, y, t):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def t(a):
        return torch.from_numpy(np.asarray(a, np.float32))[None, None]

    rng = np.random.default_rng(0)
    clean = (_clean(6) / 255.0).astype(np.float32)
    white, rows = 0.04, 0.05
    trace = clean.size * (white**2 + rows**2)
    true, sure, sure_white = [], [], []
    for _ in range(16):
        noisy = clean + white * rng.standard_normal(clean.shape)
        noisy += rows * rng.standard_normal((256, 1))
        y, tau = t(noisy), t(np.zeros_like(clean))
        true.append(float(np.mean((smoother(y, y, tau).numpy()[0, 0] - clean) ** 2)))
        probe = white * rng.standard_normal(clean.shape) + rows * rng.standard_normal((256, 1))
        sure.append(sure_mse(smoother, y, tau, t(probe), trace))
        flat_probe = np.hypot(white, rows) * rng.standard_normal(clean.shape)
        sure_white.append(sure_mse(smoother, y, tau, t(flat_probe), trace))
    assert np.mean(sure) == pytest.approx(np.mean(true), rel=0.05)
    assert abs(np.mean(sure_white) - np.mean(true)) > 0.3 * np.mean(true)


# ---------------------------------------------------------------- the task and real runs


def test_bad_input_is_refused_when_the_task_is_built():
    good = _striped(_clean(7, (64, 64)), 0)
    with pytest.raises(ValueError, match="no data"):
        make_noisy_task([])
    with pytest.raises(ValueError, match="NaN"):
        make_noisy_task([good, np.full((64, 64), np.nan)])
    with pytest.raises(ValueError, match="too small"):
        make_noisy_task([np.zeros((16, 64))])
    with pytest.raises(ValueError, match="colour"):
        make_noisy_task([np.zeros((64, 64, 3))])
    with pytest.raises(TypeError):
        make_noisy_task(42)


def test_a_tiny_noisy_only_adaptation_raises_its_figure_and_the_truth():
    """Stripes on 5 small images: 30 real steps raise the SURE figure on the held-out image,
    the true PSNR rises with it, and the saved model loads and denoises."""
    cleans = [_clean(10 + i, (96, 96)) for i in range(5)]
    noisy = [_striped(c, 20 + i) for i, c in enumerate(cleans)]
    kept = [a.copy() for a in noisy]
    task = make_noisy_task(noisy, validation_fraction=0.2, seed=0, references=cleans)
    assert task.structured and task.min_gain == 0.0
    name = fine_tune(noisy=task, name="stripes", max_steps=30, seed=0, settings=FAST)
    assert name in list_models()
    info = read_info(model_path(name)[0]).training
    val = info["validation"]
    assert not info["kept_base"] and val["best"] > val["base"] + 0.5
    history = val["history"]
    assert history[-1]["true_psnr"] > history[0]["true_psnr"] + 0.5
    assert info["data"]["kind"] == "noisy" and info["data"]["structured_noise"]
    assert all(np.array_equal(a, b) for a, b in zip(noisy, kept))  # inputs untouched
    restored = denoise(noisy[0], model=name)
    assert restored.shape == noisy[0].shape and np.isfinite(restored).all()
    assert np.mean((restored - cleans[0]) ** 2) < np.mean((noisy[0] - cleans[0]) ** 2)


def test_the_base_wins_on_plain_noise_that_it_already_covers():
    """No stripes: the task asks the loop for an infinite gain, the saved weights are the
    base's, bit for bit."""
    noisy = [_striped(_clean(30 + i, (96, 96)), 40 + i, rows=0.0) for i in range(3)]
    task = make_noisy_task(noisy, validation_fraction=0.3, seed=0)
    assert not task.structured and math.isinf(task.min_gain)
    records = []
    name = fine_tune(noisy=task, name="plain", max_steps=10, seed=0, settings=FAST,
                     progress=records.append)  # fmt: skip
    info = read_info(model_path(name)[0]).training
    assert info["kept_base"]
    # no training step spent on it: the run stops after scoring the base
    assert records[-1].stopped == "nothing to learn" and info["steps"] == 0
    saved = read_tensors(model_path(name)[0])
    base = read_tensors(model_path("default")[0])
    assert all(np.array_equal(saved[k].numpy(), base[k].numpy()) for k in base)


def test_one_image_holds_out_its_bottom_rows():
    noisy = _striped(_clean(50, (192, 128)), 51)
    task = make_noisy_task(noisy, validation_fraction=0.1, seed=0)
    assert task.split_rows and task.held_out
    assert task.images[0].train_rows == 192 - 64
    assert task.summary()["validation"] == "bottom rows held out"


def test_a_folder_of_stacks_is_read_plane_by_plane_through_fine_tune(tmp_path):
    """``fine_tune(noisy=folder)``: a TIFF stack's planes are samples; two real steps run."""
    import tifffile

    folder = tmp_path / "noisy"
    folder.mkdir()
    stack = np.stack([_striped(_clean(60 + i, (64, 64)), 70 + i) for i in range(3)])
    tifffile.imwrite(folder / "stack.tif", stack.astype(np.float32))
    task = make_noisy_task(folder, validation_fraction=0.34, seed=0)
    assert len(task.images) == 3 and len(task.val_ids) == 2
    name = fine_tune(noisy=str(folder), name="folder", max_steps=2, seed=0, settings=FAST)
    info = read_info(model_path(name)[0]).training
    assert info["data"]["planes"] == 3 and info["steps"] == 2
