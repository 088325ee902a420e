"""The collaborative Wiener filter and hard thresholding (the non-local step) and their use by
``denoise(wiener=…)``."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import denoise
from napari_diffdenoise._progress import run_to_end
from napari_diffdenoise.engine import collaborative as cw
from napari_diffdenoise.engine.collaborative import (
    collaborative_threshold,
    collaborative_wiener,
    iter_collaborative_threshold,
    iter_collaborative_wiener,
    wiener_bands,
)
from napari_diffdenoise.engine.denoise import FINE_PATCH


def _drive(gen):
    """Run a progress generator to its end: (the steps it yielded, its value)."""
    steps = []
    return steps, run_to_end(gen, steps.append)


def _psnr(a, b, peak=1.0):
    return 10 * np.log10(peak**2 / np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))


@pytest.fixture(scope="module")
def texture():
    """A periodic texture (a 6-px tile of random levels repeated: 49 copies of each patch in
    the search window), what the non-local step is for; its noisy version (σ 0.1) and a pilot
    with errors of its own (σ 0.05, independent of the noise)."""
    tile = np.random.default_rng(3).random((6, 6))
    clean = np.tile(tile, (15, 17))[:90, :101].astype(np.float32)
    noisy = clean + np.random.default_rng(4).normal(0, 0.1, clean.shape).astype(np.float32)
    pilot = clean + np.random.default_rng(9).normal(0, 0.05, clean.shape).astype(np.float32)
    return clean, noisy, pilot


def test_repeated_structure_beats_the_pilot_and_the_noisy_image(texture):
    """16 true copies per group average the noise down: 20.0 dB noisy, 26.0 dB pilot, 32.9 dB
    out (a plain local filter could not beat the pilot by much)."""
    clean, noisy, pilot = texture
    out = collaborative_wiener(noisy, pilot, 0.1)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert _psnr(out, clean) > _psnr(pilot, clean) + 5
    assert _psnr(out, clean) > _psnr(noisy, clean) + 10


def test_the_noisy_image_as_its_own_pilot_still_gains(texture):
    clean, noisy, _ = texture
    assert _psnr(collaborative_wiener(noisy, noisy, 0.1), clean) > _psnr(noisy, clean) + 2


def test_inputs_are_not_modified(texture):
    clean, noisy, pilot = texture
    n0, p0 = noisy.copy(), pilot.copy()
    sig = np.full(noisy.shape, 0.1, np.float32)
    s0 = sig.copy()
    collaborative_wiener(noisy, pilot, sig)
    np.testing.assert_array_equal(noisy, n0)
    np.testing.assert_array_equal(pilot, p0)
    np.testing.assert_array_equal(sig, s0)


def test_zero_noise_keeps_the_observation(texture):
    """σ = 0: every Wiener gain is 1, so the filter returns the observation itself."""
    _, noisy, pilot = texture
    np.testing.assert_allclose(collaborative_wiener(noisy, pilot, 0.0), noisy, atol=1e-3)


def test_a_constant_image_stays_constant():
    img = np.full((40, 33), 0.25, np.float32)
    # (the DC gain is P² / (P² + σ²) = 0.99996 here, not exactly 1)
    np.testing.assert_allclose(collaborative_wiener(img, img, 0.05), img, atol=2e-5)


def test_sigma_map_equals_the_scalar_when_constant(texture):
    _, noisy, pilot = texture
    a = collaborative_wiener(noisy, pilot, 0.1)
    b = collaborative_wiener(noisy, pilot, np.full(noisy.shape, 0.1, np.float32))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bands_give_the_same_result_as_one_pass(texture, monkeypatch):
    """Large planes are matched in bands of reference rows; the split must not change the
    result, and the generator yields one step per band, as ``wiener_bands`` says."""
    _, noisy, pilot = texture
    whole = collaborative_wiener(noisy, pilot, 0.1)
    assert wiener_bands(*noisy.shape) == 1
    monkeypatch.setattr(cw, "_BAND_ELEMENTS", 39 * 39 * 32 * 4)  # 4 reference rows per band
    n = wiener_bands(*noisy.shape)
    assert n == int(np.ceil(len(cw._grid(90, 8, 3)) / 4)) > 3
    steps, banded = _drive(iter_collaborative_wiener(noisy, pilot, 0.1))
    assert steps == [(k, n) for k in range(1, n + 1)]
    np.testing.assert_allclose(banded, whole, atol=1e-5)


def test_every_pixel_is_covered_on_odd_sizes():
    """The reference grid ends on the last patch, so no border pixel is left to the pilot."""
    rng = np.random.default_rng(0)
    clean = np.zeros((29, 37), np.float32)
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    pilot = np.full_like(clean, 5.0)  # far from everything: a pixel left to it would show
    out = collaborative_wiener(noisy, pilot, 0.1)
    assert np.abs(out).max() < 5.0 - 1e-3


def test_images_smaller_than_a_patch_return_the_pilot():
    img = np.arange(30, dtype=np.float32).reshape(5, 6)
    pilot = img + 1
    out = collaborative_wiener(img, pilot, 0.1)
    np.testing.assert_array_equal(out, pilot)
    assert out is not pilot


def test_few_candidates_on_a_narrow_image():
    """A 10-pixel-wide strip has 3 candidate columns per reference; the group shrinks to fit."""
    rng = np.random.default_rng(1)
    noisy = rng.normal(0.5, 0.1, (10, 60)).astype(np.float32)
    out = collaborative_wiener(noisy, np.full_like(noisy, 0.5), 0.1, group=64)
    assert np.isfinite(out).all() and np.abs(out - 0.5).max() < 0.3


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.zeros((16, 16)), np.zeros((16, 17)), 0.1), {}, "one shape"),
        ((np.zeros((2, 16, 16)), np.zeros((2, 16, 16)), 0.1), {}, "2D"),
        ((np.full((16, 16), np.nan), np.zeros((16, 16)), 0.1), {}, "finite"),
        ((np.zeros((16, 16)), np.zeros((16, 16)), -0.1), {}, ">= 0"),
        ((np.zeros((16, 16)), np.zeros((16, 16)), np.nan), {}, "finite"),
        ((np.zeros((16, 16)), np.zeros((16, 16)), 0.1), {"patch": 1}, "patch"),
        ((np.zeros((16, 16)), np.zeros((16, 16)), 0.1), {"group": 2.5}, "group"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        collaborative_wiener(*args, **kwargs)


# ------------------------------------------------------------------ hard thresholding
def test_thresholding_averages_the_repeats(texture):
    """BM3D's first stage on its own (groups matched on the noisy image): the 49 true copies
    of each patch give far more than a local filter could (20.0 dB noisy, 34.5 dB out)."""
    clean, noisy, _ = texture
    before = noisy.copy()
    out = collaborative_threshold(noisy, 0.1)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert _psnr(out, clean) > _psnr(noisy, clean) + 10
    np.testing.assert_array_equal(noisy, before)


def test_thresholding_is_scale_equivariant(texture):
    """Matching, threshold and weights all scale with the image and σ together."""
    _, noisy, _ = texture
    np.testing.assert_allclose(
        collaborative_threshold(4.0 * noisy, 0.4),
        4.0 * collaborative_threshold(noisy, 0.1),
        rtol=1e-4,
        atol=1e-4,
    )


def test_threshold_zero_or_no_noise_keeps_the_observation(texture):
    """Nothing falls under a zero threshold: every group comes back as it went in."""
    _, noisy, _ = texture
    np.testing.assert_allclose(collaborative_threshold(noisy, 0.1, threshold=0.0), noisy, atol=1e-5)
    np.testing.assert_allclose(collaborative_threshold(noisy, 0.0), noisy, atol=1e-5)


def test_a_higher_threshold_smooths_more(texture):
    _, noisy, _ = texture
    lo = collaborative_threshold(noisy, 0.1, threshold=1.0)
    hi = collaborative_threshold(noisy, 0.1, threshold=6.0)
    assert np.std(hi - noisy) > np.std(lo - noisy)


def test_thresholding_bands_match_one_pass(texture, monkeypatch):
    _, noisy, _ = texture
    whole = collaborative_threshold(noisy, 0.1)
    monkeypatch.setattr(cw, "_BAND_ELEMENTS", 1)
    steps, banded = _drive(iter_collaborative_threshold(noisy, 0.1))
    n = wiener_bands(*noisy.shape)
    assert n > 1 and steps == [(k, n) for k in range(1, n + 1)]
    np.testing.assert_allclose(banded, whole, atol=1e-5)


@pytest.mark.parametrize("threshold", [-1.0, float("nan"), "2.7", True])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        collaborative_threshold(np.zeros((16, 16)), 0.1, threshold=threshold)


def test_thresholding_rejects_non_finite_input():
    with pytest.raises(ValueError, match="noisy must be finite"):
        collaborative_threshold(np.full((16, 16), np.inf), 0.1)


# ------------------------------------------------------------------ through denoise
@pytest.fixture(scope="module")
def stripes():
    yy, xx = np.mgrid[0:96, 0:112]
    clean = (120 + 80 * np.sin(xx / 2.2) * np.cos(yy / 7.0)).astype(np.float32)
    noisy = clean + np.random.default_rng(5).normal(0, 20, clean.shape).astype(np.float32)
    return clean, noisy


def test_denoise_blends_the_wiener_estimate(stripes):
    clean, noisy = stripes
    before = noisy.copy()
    plain = denoise(noisy, sigma=20)
    np.testing.assert_array_equal(denoise(noisy, sigma=20, wiener=0.0), plain)
    half = denoise(noisy, sigma=20, wiener=0.5)
    full = denoise(noisy, sigma=20, wiener=1.0)
    np.testing.assert_allclose(half, 0.5 * (plain + full), atol=0.02)
    assert _psnr(half, clean, 255) > _psnr(plain, clean, 255) + 0.3  # fine stripes repeat
    np.testing.assert_array_equal(noisy, before)


def test_quality_preset_uses_the_wiener_step(stripes):
    from napari_diffdenoise import load_model

    assert load_model("quality").wiener == "auto" and load_model("default").wiener == 0.0
    _, noisy = stripes
    np.testing.assert_allclose(
        denoise(noisy, sigma=20, model="quality"),
        denoise(noisy, sigma=20, ensemble=8, wiener="auto"),
        atol=1e-4,
    )


def test_sure_weight_prefers_the_better_estimate():
    """SURE needs no clean image: with f the noisy image itself and g the clean one it picks g
    (a ≈ 1), the other way round f (a ≈ 0), from the observation and one probe alone, and
    its jackknife variance is small on an image this size."""
    from napari_diffdenoise.engine.denoise import sure_blend_weight

    rng = np.random.default_rng(0)
    x = np.tile(np.linspace(0, 1, 64), (64, 1))
    y = x + rng.normal(0, 0.1, x.shape)
    probe = rng.choice([-1.0, 1.0], x.shape)
    eps = 1e-3
    yp = y + eps * probe
    a, var = sure_blend_weight(y, y, x, yp, x, probe, eps, 0.1)
    assert abs(a - 1) < 0.05 and var < 0.01
    a, var = sure_blend_weight(y, x, y, x, yp, probe, eps, 0.1)
    assert abs(a) < 0.05 and var < 0.01
    half = 0.5 * (x + y)  # halfway: (1 − a)·y + a·half is the clean image at a = 2 (unclipped)
    assert abs(sure_blend_weight(y, y, half, yp, 0.5 * (x + yp), probe, eps, 0.1)[0] - 2) < 0.1
    assert sure_blend_weight(y, y, y, yp, yp, probe, eps, 0.1) == (0.0, 0.0)  # nothing to choose
    # pixels without noise are left out of every sum
    sig = np.full(x.shape, 0.1)
    sig[:, :32] = 0.0
    a_half, _ = sure_blend_weight(
        y[:, 32:], y[:, 32:], x[:, 32:], yp[:, 32:], x[:, 32:], probe[:, 32:], eps, 0.1
    )
    assert sure_blend_weight(y, y, x, yp, x, probe, eps, sig)[0] == pytest.approx(a_half)


def test_auto_weight_shrinks_uncertain_estimates():
    from napari_diffdenoise.engine.denoise import AUTO_MIN, AUTO_PRIOR, auto_wiener_weight

    assert auto_wiener_weight(0.9, 0.001) == pytest.approx(0.9 - 2 * 0.001 / 0.4)
    assert auto_wiener_weight(1.6, 0.001) == 1.0
    assert auto_wiener_weight(0.9, 0.1) == AUTO_PRIOR  # within √2 standard errors: the prior
    assert auto_wiener_weight(-0.5, 0.001) == AUTO_MIN
    assert auto_wiener_weight(0.9, float("inf")) == AUTO_PRIOR
    assert auto_wiener_weight(AUTO_PRIOR, 0.0) == AUTO_PRIOR


def test_auto_weight_is_the_blend_it_reports(stripes):
    """``wiener="auto"``: the pilot is the network's estimate blended with the hard-thresholding
    one at the reported weight, the image that pilot blended with its Wiener estimate; both
    weights are high on fine stripes (their repeats carry the signal), and the result beats
    the fixed-weight blend guided by the network alone."""
    clean, noisy = stripes
    res = denoise(noisy, sigma=20, wiener="auto", return_details=True)
    (a,), (b,), (c,) = res.wiener_weights, res.threshold_weights, res.fine_weights
    assert 0.5 < a <= 1.0 and 0.5 < b <= 1.0 and 0.0 <= c <= 1.0
    plain = denoise(noisy, sigma=20)
    pilot = (1 - b) * plain + b * collaborative_threshold(noisy, 20.0)
    wien = (1 - c) * collaborative_wiener(noisy, pilot, 20.0) + c * collaborative_wiener(
        noisy, pilot, 20.0, patch=FINE_PATCH
    )
    expect = (1 - a) * pilot + a * wien
    np.testing.assert_allclose(res.image, expect, atol=0.02)
    best_fixed = max(_psnr(denoise(noisy, sigma=20, wiener=w), clean, 255) for w in (0.5, 1.0))
    assert _psnr(res.image, clean, 255) > best_fixed + 0.3  # 34.65 against 34.11 dB
    # the probe is seeded: the same weights every run
    again = denoise(noisy, sigma=20, wiener="auto", return_details=True)
    assert again.wiener_weights == [a] and again.threshold_weights == [b]
    assert again.fine_weights == [c]


def test_fine_patch_share_shrinks_uncertain_shares():
    from napari_diffdenoise.engine.denoise import AUTO_SHRINK, fine_patch_share

    assert fine_patch_share(0.6, 0.001) == pytest.approx(0.6 - AUTO_SHRINK * 0.001 / 0.6)
    assert fine_patch_share(1.7, 0.001) == 1.0
    assert fine_patch_share(0.6, 0.5) == 0.0  # within √2 standard errors of 0: none
    assert fine_patch_share(-0.4, 0.001) == 0.0
    assert fine_patch_share(0.0, 0.0) == 0.0 and fine_patch_share(0.5, float("inf")) == 0.0
    assert str(fine_patch_share(-0.4, 1.0)) == "0.0"  # not -0.0


def test_auto_adds_fine_patches_on_a_natural_image_at_low_noise(shared_data, monkeypatch):
    """Set12's cameraman, σ 15: SURE gives the 4 × 4 Wiener estimate a share, and it pays
    against the 8 × 8-only pipeline (``FINE_PATCH`` 8: the two estimates agree, share 0)."""
    from skimage import io

    from napari_diffdenoise import add_noise
    from napari_diffdenoise.engine import denoise as dn

    clean = io.imread(shared_data / "set12" / "01.png").astype(np.float32)[64:192, 64:192]
    noisy = add_noise(clean, "gaussian", sigma=15, seed=0).astype(np.float32)
    res = denoise(noisy, sigma=15, wiener="auto", return_details=True)
    (a,), (b,), (c,) = res.wiener_weights, res.threshold_weights, res.fine_weights
    # the blend it reports
    pilot = (1 - b) * denoise(noisy, sigma=15) + b * collaborative_threshold(noisy, 15.0)
    wien = (1 - c) * collaborative_wiener(noisy, pilot, 15.0) + c * collaborative_wiener(
        noisy, pilot, 15.0, patch=FINE_PATCH
    )
    # (denoise works in normalised float32 units, where block matching breaks some ties on
    # the flat sky differently: 0.005 grey levels on average, up to 0.1; a share off by 0.1
    # moves the mean to 0.12)
    diff = np.abs(res.image - ((1 - a) * pilot + a * wien))
    assert diff.mean() < 0.02 and diff.max() < 0.5
    monkeypatch.setattr(dn, "FINE_PATCH", cw.PATCH)
    coarse = denoise(noisy, sigma=15, wiener="auto", return_details=True)
    assert coarse.fine_weights == [0.0] and c > 0.2
    assert _psnr(res.image, clean, 255) > _psnr(coarse.image, clean, 255)


def test_auto_leaves_out_thresholding_where_it_does_not_help():
    """A smooth blob with no repeats: the thresholding estimate is worse than the network's,
    and SURE gives it little weight."""
    yy, xx = np.mgrid[0:96, 0:96]
    clean = (60 + 120 * np.exp(-((yy - 40) ** 2 + (xx - 55) ** 2) / 600.0)).astype(np.float32)
    noisy = clean + np.random.default_rng(8).normal(0, 15, clean.shape).astype(np.float32)
    res = denoise(noisy, sigma=15, wiener="auto", return_details=True)
    (b,) = res.threshold_weights
    assert b < 0.3
    assert _psnr(res.image, clean, 255) > _psnr(collaborative_threshold(noisy, 15.0), clean, 255)


def test_auto_weight_without_noise_leaves_the_image(stripes):
    _, noisy = stripes
    res = denoise(noisy, sigma=0.0, wiener="auto", return_details=True)
    assert res.wiener_weights == [0.0] and res.threshold_weights == [0.0]
    assert res.fine_weights == [0.0]
    np.testing.assert_array_equal(res.image, noisy)


def test_planes_smaller_than_a_patch_are_refused():
    """A 6×6 plane is below the package's one size rule (8 × 8, _validation.MIN_IMAGE_SIZE, the
    same message as estimate_noise): refused before any work, Wiener or not."""
    y = (100 + np.random.default_rng(0).normal(0, 10, (6, 6))).astype(np.float32)
    with pytest.raises(ValueError, match="at least 8 × 8 pixels"):
        denoise(y, sigma=10, wiener="auto", return_details=True)


def test_auto_weight_falls_back_with_stochastic_sampling(stripes):
    _, noisy = stripes
    kw = dict(sigma=20, sampler="indi", steps=2, eta=0.5, samples=2, seed=3)
    res = denoise(noisy, wiener="auto", return_details=True, **kw)
    assert res.wiener_weights is None and res.threshold_weights is None
    assert res.fine_weights is None
    np.testing.assert_array_equal(res.image, denoise(noisy, wiener=0.5, **kw))


@pytest.mark.parametrize("wiener, passes, filters", [(0.5, 1, 1), ("auto", 2, 4)])
def test_progress_counts_the_wiener_bands(stripes, wiener, passes, filters):
    """Every network pass and band of a non-local filter is one step; ``"auto"`` adds the
    thresholding, the 4 × 4-patch Wiener step, and the probe's network pass, thresholding
    and both Wiener steps."""
    _, noisy = stripes
    seen = []
    denoise(
        noisy[None].repeat(2, 0), sigma=20, wiener=wiener, progress=lambda d, t: seen.append((d, t))
    )
    per_plane = passes + filters * wiener_bands(*noisy.shape)
    if wiener == "auto":
        per_plane += 2 * wiener_bands(*noisy.shape, patch=FINE_PATCH)
    assert seen[-1] == (2 * per_plane, 2 * per_plane)
    # (the planes' tiles share batches: a batched network call counts its tiles at once)
    done = [d for d, _ in seen]
    assert done == sorted(set(done)) and done[0] <= 2


def test_salt_and_pepper_planes_skip_the_wiener_step():
    """The observation under impulse noise is not Gaussian-like: the step is left out."""
    from napari_diffdenoise import add_noise

    yy, xx = np.mgrid[0:80, 0:80]
    clean = (100 + 60 * np.sin(xx / 5.0)).astype(np.float64)
    noisy = add_noise(clean, "salt_and_pepper", amount=0.1, seed=0)
    res = denoise(noisy, wiener=1.0, return_details=True)
    assert res.report.kind == "salt_and_pepper"
    np.testing.assert_array_equal(res.image, denoise(noisy, wiener=0.0))
    auto = denoise(noisy, wiener="auto", return_details=True)
    assert auto.wiener_weights == [] and auto.threshold_weights == [] and auto.fine_weights == []
    np.testing.assert_array_equal(auto.image, res.image)


@pytest.mark.parametrize("w", [-0.1, 1.5, True, "half", "Auto", np.nan])
def test_bad_wiener_weight(stripes, w):
    _, noisy = stripes
    with pytest.raises(ValueError, match="wiener"):
        denoise(noisy, sigma=20, wiener=w)


@pytest.mark.gpu("cuda")
def test_cuda_matches_cpu(texture):
    _, noisy, pilot = texture
    np.testing.assert_allclose(
        collaborative_wiener(noisy, pilot, 0.1, device="cuda"),
        collaborative_wiener(noisy, pilot, 0.1),
        atol=1e-4,
    )
    # (a coefficient at the threshold may fall either side on another device)
    gpu = collaborative_threshold(noisy, 0.1, device="cuda")
    cpu = collaborative_threshold(noisy, 0.1)
    assert np.mean(np.abs(gpu - cpu) > 1e-3) < 0.01
