"""add_noise and sigma_profile: statistics, dtypes, reproducibility, validation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import add_noise
from napari_diffdenoise.noise.simulate import NOISE_KINDS, sigma_profile

PARAMS = {
    "gaussian": {"sigma": 10.0},
    "poisson": {"gain": 2.0},
    "poisson_gaussian": {"gain": 2.0, "read_noise": 3.0, "offset": 5.0},
    "salt_and_pepper": {"amount": 0.1},
    "spatially_variant": {"profile": "ramp", "sigma_min": 2.0, "sigma_max": 20.0},
}


def ramp_image(shape=(64, 80), dtype=np.float64, high=200.0):
    img = np.linspace(20.0, high, int(np.prod(shape))).reshape(shape)
    return img.astype(dtype)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_reproducible_with_seed(kind):
    img = ramp_image()
    a = add_noise(img, kind, seed=3, **PARAMS[kind])
    b = add_noise(img, kind, seed=3, **PARAMS[kind])
    c = add_noise(img, kind, seed=4, **PARAMS[kind])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gen = add_noise(img, kind, seed=np.random.default_rng(3), **PARAMS[kind])
    np.testing.assert_array_equal(a, gen)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_shape_and_dtype_preserved(kind, dtype):
    img = ramp_image((3, 20, 24), dtype=dtype)
    out = add_noise(img, kind, seed=0, **PARAMS[kind])
    assert out.shape == img.shape
    assert out.dtype == img.dtype
    assert not np.array_equal(out, img)  # noise everywhere in the stack ...
    for plane_in, plane_out in zip(img, out):
        assert not np.array_equal(plane_in, plane_out)  # ... including every plane


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_input_never_modified(kind):
    for dtype in (np.uint8, np.float32):
        img = ramp_image(dtype=dtype)
        img.setflags(write=False)  # a read-only input must work too
        before = img.copy()
        add_noise(img, kind, seed=0, **PARAMS[kind])
        np.testing.assert_array_equal(img, before)


def test_integer_results_rounded_and_clipped():
    img = np.full((64, 64), 128, dtype=np.uint8)
    out = add_noise(img, "gaussian", sigma=200.0, seed=0)
    assert out.min() == 0 and out.max() == 255  # clipped at both ends, not wrapped
    u16 = add_noise(np.full((32, 32), 65000, dtype=np.uint16), "gaussian", sigma=2000, seed=0)
    assert u16.max() == 65535 and u16.dtype == np.uint16
    # rounding, not truncation: the mean of small noise stays at the input value
    small = add_noise(np.full((256, 256), 100, dtype=np.uint8), "gaussian", sigma=0.6, seed=1)
    assert abs(small.astype(float).mean() - 100) < 0.02


def test_float_results_not_clipped():
    img = np.full((64, 64), 0.5, dtype=np.float32)
    out = add_noise(img, "gaussian", sigma=1.0, seed=0)
    assert out.min() < 0 and out.max() > 1


def test_gaussian_statistics():
    img = ramp_image((256, 256))
    out = add_noise(img, "gaussian", sigma=7.0, seed=0)
    assert np.std(out - img) == pytest.approx(7.0, rel=0.02)
    assert abs(np.mean(out - img)) < 0.1
    np.testing.assert_array_equal(add_noise(img, "gaussian", sigma=0.0, seed=0), img)


def test_poisson_statistics():
    x = np.full((256, 256), 50.0)
    y = add_noise(x, "poisson", gain=2.0, seed=0)
    assert y.mean() == pytest.approx(50.0, rel=0.01)
    assert y.var() == pytest.approx(2.0 * 50.0, rel=0.03)
    assert np.allclose(y / 2.0, np.round(y / 2.0))  # multiples of the gain
    negative = add_noise(np.full((16, 16), -5.0), "poisson", gain=1.0, seed=0)
    assert (negative == 0).all()  # negative signal counts as zero photons


def test_poisson_gaussian_statistics_with_offset():
    x = np.full((256, 256), 200.0)
    y = add_noise(x, "poisson_gaussian", gain=3.0, read_noise=4.0, offset=100.0, seed=0)
    assert y.mean() == pytest.approx(300.0, rel=0.005)
    assert y.var() == pytest.approx(3.0 * 200.0 + 16.0, rel=0.03)


def test_salt_and_pepper_integer_and_float():
    img = np.full((200, 200), 100, dtype=np.uint8)
    out = add_noise(img, "salt_and_pepper", amount=0.2, salt_vs_pepper=0.25, seed=0)
    salt, pepper = (out == 255).mean(), (out == 0).mean()
    assert salt == pytest.approx(0.05, abs=0.006)
    assert pepper == pytest.approx(0.15, abs=0.01)
    assert set(np.unique(out)) == {0, 100, 255}

    flt = ramp_image((100, 100))
    out = add_noise(flt, "salt_and_pepper", amount=0.1, seed=0)
    assert out.max() == flt.max() and out.min() == flt.min()
    hit = out != flt
    assert hit.mean() == pytest.approx(0.1, abs=0.015)
    custom = add_noise(flt, "salt_and_pepper", amount=0.1, low=-1.0, high=999.0, seed=0)
    assert set(np.unique(custom[custom != flt])) <= {-1.0, 999.0}


def test_spatially_variant_profile_and_map():
    shape = (200, 240)
    img = np.zeros(shape)
    out = add_noise(img, "spatially_variant", profile="ramp", sigma_min=2.0, sigma_max=30.0, seed=0)
    col_std = out.std(axis=0)
    truth = sigma_profile(shape, "ramp", 2.0, 30.0)[0]
    assert np.corrcoef(col_std, truth)[0, 1] > 0.97
    assert col_std[:20].mean() == pytest.approx(truth[:20].mean(), rel=0.15)
    # an explicit map, broadcast from one row
    row = np.linspace(1.0, 10.0, shape[1])
    out2 = add_noise(img, "spatially_variant", sigma=row, seed=0)
    assert np.corrcoef(out2.std(axis=0), row)[0, 1] > 0.95


@pytest.mark.parametrize("profile", ["ramp", "vignette", "patches"])
def test_sigma_profile(profile):
    prof = sigma_profile((2, 40, 50), profile, 3.0, 12.0, seed=5)
    assert prof.shape == (2, 40, 50)
    assert prof.min() >= 3.0 - 1e-9 and prof.max() <= 12.0 + 1e-9
    assert prof.max() - prof.min() > 4.0
    np.testing.assert_array_equal(prof[0], prof[1])
    np.testing.assert_array_equal(prof, sigma_profile((2, 40, 50), profile, 3.0, 12.0, seed=5))
    # add_noise with a profile uses exactly this map
    img = np.zeros((40, 50))
    y = add_noise(img, "spatially_variant", profile=profile, sigma_min=3.0, sigma_max=12.0, seed=5)
    eps = np.random.default_rng(5)
    np.testing.assert_allclose(
        y, eps.normal(0, 1, img.shape) * sigma_profile((40, 50), profile, 3.0, 12.0, seed=5)
    )


def test_unknown_kind_lists_kinds():
    with pytest.raises(ValueError, match="gaussian.*poisson.*salt_and_pepper"):
        add_noise(ramp_image(), "speckle", sigma=1.0)


@pytest.mark.parametrize(
    ("kind", "params", "error", "match"),
    [
        ("gaussian", {}, TypeError, "sigma"),
        ("gaussian", {"sigma": 1.0, "gain": 2.0}, TypeError, "unexpected"),
        ("gaussian", {"sigma": -1.0}, ValueError, ">= 0"),
        ("gaussian", {"sigma": float("nan")}, ValueError, "finite"),
        ("gaussian", {"sigma": "big"}, TypeError, "number"),
        ("poisson", {"gain": 0.0}, ValueError, "> 0"),
        ("poisson_gaussian", {"gain": 1.0}, TypeError, "read_noise"),
        ("salt_and_pepper", {"amount": 1.5}, ValueError, "<= 1"),
        ("salt_and_pepper", {"amount": 0.1, "salt_vs_pepper": -0.1}, ValueError, ">= 0"),
        ("spatially_variant", {}, TypeError, "either sigma"),
        ("spatially_variant", {"sigma": 1.0, "profile": "ramp"}, TypeError, "either sigma"),
        ("spatially_variant", {"profile": "ramp", "sigma_min": 1.0}, TypeError, "sigma_max"),
        (
            "spatially_variant",
            {"profile": "swirl", "sigma_min": 1.0, "sigma_max": 2.0},
            ValueError,
            "ramp",
        ),
        (
            "spatially_variant",
            {"profile": "ramp", "sigma_min": 5.0, "sigma_max": 2.0},
            ValueError,
            "sigma_max",
        ),
        ("spatially_variant", {"sigma": -np.ones((64, 80))}, ValueError, ">= 0"),
        ("spatially_variant", {"sigma": np.ones((3, 3))}, ValueError, "broadcast"),
        ("spatially_variant", {"sigma": np.array([np.nan])}, ValueError, "NaN"),
    ],
)
def test_bad_parameters(kind, params, error, match):
    with pytest.raises(error, match=match):
        add_noise(ramp_image(), kind, seed=0, **params)


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros(10), ValueError),  # 1-D
        (np.zeros((0, 5)), ValueError),  # empty
        (np.full((8, 8), np.nan), ValueError),
        (np.full((8, 8), np.inf), ValueError),
        (np.zeros((8, 8), dtype=complex), TypeError),
        (np.zeros((8, 8), dtype=object), TypeError),
        (np.zeros((8, 8), dtype=bool), TypeError),
        (None, TypeError),
        ("image", TypeError),
    ],
)
def test_bad_images(image, error):
    with pytest.raises(error):
        add_noise(image, "gaussian", sigma=1.0)
