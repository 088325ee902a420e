"""Time maps: from σ maps, to and from paintable integer levels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import levels_to_time_map, time_map_from_sigma, time_map_to_levels
from napari_diffdenoise.noise.timemap import DEFAULT_TIME_LEVELS, NotATimeMapFile


def test_time_map_from_sigma_scales_and_clips():
    sigma = np.array([[0.0, 5.0], [10.0, 50.0]])
    tau = time_map_from_sigma(sigma, 20.0)
    assert tau.dtype == np.float32
    np.testing.assert_allclose(tau, [[0.0, 0.25], [0.5, 1.0]])
    assert time_map_from_sigma(np.float64(4.0), 8.0) == pytest.approx(0.5)
    ints = time_map_from_sigma(np.array([[1, 2]], dtype=np.uint16), 4)
    np.testing.assert_allclose(ints, [[0.25, 0.5]])


@pytest.mark.parametrize(
    ("sigma", "sigma_max", "error"),
    [
        (np.array([-1.0, 1.0]), 1.0, ValueError),
        (np.array([np.nan]), 1.0, ValueError),
        (np.array([np.inf]), 1.0, ValueError),
        (np.ones(3), 0.0, ValueError),
        (np.ones(3), -2.0, ValueError),
        (np.ones(3), float("nan"), ValueError),
        (np.ones(3), "one", TypeError),
        (np.array(["a"]), 1.0, TypeError),
    ],
)
def test_time_map_from_sigma_validation(sigma, sigma_max, error):
    with pytest.raises(error):
        time_map_from_sigma(sigma, sigma_max)


def test_levels_dtype_and_rounding():
    tau = np.array([0.0, 0.5 / 255 - 1e-6, 0.5 / 255 + 1e-6, 0.5, 1.0], dtype=np.float32)
    lv = time_map_to_levels(tau)
    assert lv.dtype == np.uint8
    np.testing.assert_array_equal(lv, [0, 0, 1, 128, 255])
    lv16 = time_map_to_levels(tau, levels=1000)
    assert lv16.dtype == np.uint16
    np.testing.assert_array_equal(lv16, [0, 2, 2, 500, 1000])
    assert DEFAULT_TIME_LEVELS == 255


@pytest.mark.parametrize("levels", [1, 7, 255, 256, 1000, 65535])
def test_round_trip(levels):
    rng = np.random.default_rng(0)
    tau = rng.random((32, 40)).astype(np.float32)
    back = levels_to_time_map(time_map_to_levels(tau, levels), levels)
    assert back.dtype == np.float32
    assert np.abs(back - tau).max() <= 0.5 / levels + 1e-6
    lv = rng.integers(0, levels + 1, size=(16, 16))
    np.testing.assert_array_equal(time_map_to_levels(levels_to_time_map(lv, levels), levels), lv)


def test_level_zero_means_leave_alone():
    assert levels_to_time_map(np.zeros((3, 3), dtype=np.uint8)).max() == 0.0
    assert levels_to_time_map(np.array([255], dtype=np.int64))[0] == 1.0


@pytest.mark.parametrize(
    ("tau", "levels", "error"),
    [
        (np.array([1.5]), 255, ValueError),
        (np.array([-0.1]), 255, ValueError),
        (np.array([np.nan]), 255, ValueError),
        (np.array([0.5]), 0, ValueError),
        (np.array([0.5]), 2.5, TypeError),
        (np.array([0.5]), True, TypeError),
        (np.array([0.5]), 70000, ValueError),
        (np.array(["x"]), 255, TypeError),
    ],
)
def test_time_map_to_levels_validation(tau, levels, error):
    with pytest.raises(error):
        time_map_to_levels(tau, levels)


@pytest.mark.parametrize(
    ("lv", "levels", "error"),
    [
        (np.array([0.5]), 255, TypeError),  # float levels
        (np.array([True]), 255, TypeError),
        (np.array([256]), 255, ValueError),
        (np.array([-1]), 255, ValueError),
        (np.array([1]), 0, ValueError),
    ],
)
def test_levels_to_time_map_validation(lv, levels, error):
    with pytest.raises(error):
        levels_to_time_map(lv, levels)


# ------------------------------------------------------------------ the time-map tools
def test_metadata_and_sigma_levels():
    from napari_diffdenoise._validation import METADATA_KEY, TIME_MAP_KEY
    from napari_diffdenoise.noise.timemap import (
        intensity_units,
        level_to_sigma,
        sigma_to_level,
        time_map_metadata,
    )

    meta = time_map_metadata(255, 40.0, units="counts", source="img")
    assert meta == {
        METADATA_KEY: {
            TIME_MAP_KEY: {"levels": 255, "sigma_max": 40.0, "units": "counts", "source": "img"}
        }
    }
    assert (METADATA_KEY, TIME_MAP_KEY) == ("napari_diffdenoise", "time_map")
    with pytest.raises(ValueError):
        time_map_metadata(0, 40.0)
    with pytest.raises(ValueError):
        time_map_metadata(255, 0.0)
    assert sigma_to_level(10.0, 40.0, 255) == 64  # round(10 / 40 * 255 = 63.75)
    assert sigma_to_level(0.0, 40.0) == 0  # leave alone
    assert sigma_to_level(0.01, 40.0) == 1  # a σ > 0 never means "leave alone"
    assert sigma_to_level(100.0, 40.0) == 255  # clipped at the top level
    assert level_to_sigma(64, 40.0, 255) == pytest.approx(64 / 255 * 40.0)
    assert intensity_units(np.uint16) == "counts"
    assert intensity_units(np.float32) == "intensity units"
    assert intensity_units(np.uint8, {"intensity_units": "photons"}) == "photons"


def test_new_time_map_blank_constant_and_from_a_sigma_map():
    from napari_diffdenoise.noise.timemap import new_time_map

    blank = new_time_map((3, 16, 20), sigma_max=40.0)
    assert blank.shape == (3, 16, 20) and blank.dtype == np.uint8 and not blank.any()
    const = new_time_map((16, 20), sigma=10.0, sigma_max=40.0, levels=1000)
    assert const.dtype == np.uint16 and np.all(const == 250)
    smap = np.linspace(0, 40, 20, dtype=np.float32)[None, :].repeat(16, axis=0)
    stack = new_time_map((3, 16, 20), sigma=smap, sigma_max=40.0)  # a 2D σ map, every plane
    assert stack.shape == (3, 16, 20) and stack.flags.writeable
    np.testing.assert_array_equal(stack[2], time_map_to_levels(smap / 40.0))
    with pytest.raises(ValueError, match="does not fit"):
        new_time_map((16, 21), sigma=smap, sigma_max=40.0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        new_time_map((16,), sigma_max=40.0)


def test_smooth_keeps_leave_alone_and_never_modifies_the_input():
    from napari_diffdenoise.noise.timemap import smooth_time_map

    rng = np.random.default_rng(0)
    lv = rng.integers(1, 200, size=(2, 32, 32)).astype(np.uint8)
    lv[:, :, :8] = 0  # painted "leave alone"
    before = lv.copy()
    out = smooth_time_map(lv, 3.0)
    np.testing.assert_array_equal(lv, before)
    assert out.dtype == np.uint8 and out.shape == lv.shape
    assert not out[:, :, :8].any()  # still left alone
    assert out[:, :, 8:].min() >= 1  # painted stays painted
    assert out[:, :, 12:].std() < 0.3 * lv[:, :, 12:].std()  # smoother
    # planes are smoothed separately: a plane of zeros stays zeros
    lv[1] = 0
    assert not smooth_time_map(lv, 3.0)[1].any()
    # without keep_zero the painted region bleeds into the zeros
    assert smooth_time_map(before, 3.0, keep_zero=False)[:, :, 6].min() > 0
    np.testing.assert_array_equal(smooth_time_map(before, 0.0), before)
    with pytest.raises(ValueError, match="levels must lie"):
        smooth_time_map(np.full((8, 8), 9, np.uint8), 1.0, levels=8)


def test_scale():
    from napari_diffdenoise.noise.timemap import scale_time_map

    lv = np.array([[0, 1, 10, 100, 200]], dtype=np.uint8)
    np.testing.assert_array_equal(scale_time_map(lv, 2.0), [[0, 2, 20, 200, 255]])  # clipped
    np.testing.assert_array_equal(scale_time_map(lv, 0.1), [[0, 1, 1, 10, 20]])  # 1 stays 1
    np.testing.assert_array_equal(scale_time_map(lv, 0.0), np.zeros_like(lv))
    assert lv[0, 4] == 200  # input untouched
    with pytest.raises(ValueError):
        scale_time_map(lv, -1.0)


def test_reset_a_region_or_the_whole_map():
    from napari_diffdenoise.noise.timemap import reset_time_map

    painted = np.full((2, 8, 8), 200, np.uint8)
    estimate = np.full((8, 8), 30, np.uint8)  # a plane estimate applies to every plane
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:5] = True
    out = reset_time_map(painted, estimate, mask)
    assert (out[:, mask] == 30).all() and (out[:, ~mask] == 200).all()
    assert (painted == 200).all()
    assert (reset_time_map(painted, estimate) == 30).all()
    with pytest.raises(ValueError, match="mask of shape"):
        reset_time_map(painted, estimate, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="estimate of shape"):
        reset_time_map(painted, np.zeros((7, 8), np.uint8))
    with pytest.raises(TypeError, match="boolean"):
        reset_time_map(painted, estimate, mask.astype(np.uint8))


@pytest.mark.parametrize("levels", [255, 1000])
def test_tiff_round_trip_keeps_levels_sigma_max_and_units(tmp_path, levels):
    import tifffile

    from napari_diffdenoise.noise.timemap import load_time_map, save_time_map

    rng = np.random.default_rng(1)
    lv = rng.integers(0, levels + 1, size=(3, 24, 32)).astype(
        np.uint16 if levels > 255 else np.uint8
    )
    path = tmp_path / "map.tif"
    save_time_map(path, lv, levels=levels, sigma_max=37.5, units="counts")
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]  # no temporary file left
    loaded = load_time_map(path, image_shape=(3, 24, 32))
    np.testing.assert_array_equal(loaded.data, lv)
    assert loaded.data.dtype == lv.dtype
    assert (loaded.levels, loaded.sigma_max, loaded.units) == (levels, 37.5, "counts")
    assert loaded.metadata("img")["napari_diffdenoise"]["time_map"]["source"] == "img"
    # a 2D map is accepted for a stack (it applies to every plane)
    save_time_map(tmp_path / "plane.tif", lv[0], levels=levels, sigma_max=37.5)
    assert load_time_map(tmp_path / "plane.tif", image_shape=(5, 24, 32)).units is None

    with pytest.raises(ValueError, match=r"has shape \(3, 24, 32\), the image \(3, 24, 33\)"):
        load_time_map(path, image_shape=(3, 24, 33))
    tifffile.imwrite(tmp_path / "plain.tif", lv)
    with pytest.raises(NotATimeMapFile, match="not a time map saved by napari-diffdenoise"):
        load_time_map(tmp_path / "plain.tif")
    # another tool's JSON description with keys of the same names is not ours either
    tifffile.imwrite(tmp_path / "other.tif", lv, metadata={"kind": "x", "time_levels": 9,
                                                        "sigma_max": 1.0})  # fmt: skip
    with pytest.raises(NotATimeMapFile):
        load_time_map(tmp_path / "other.tif")
    with pytest.raises(ValueError, match="levels must lie"):
        save_time_map(tmp_path / "bad.tif", lv, levels=10, sigma_max=1.0)
    assert not (tmp_path / "bad.tif").exists()


def test_time_map_layers_are_recognised_by_their_metadata():
    pytest.importorskip("napari")
    from napari.layers import Image, Labels

    from napari_diffdenoise._validation import is_time_map_layer, time_map_info
    from napari_diffdenoise.noise.timemap import time_map_metadata

    lv = np.full((16, 16), 40, np.uint8)
    good = Labels(lv, metadata=time_map_metadata(255, 80.0))
    assert is_time_map_layer(good)
    assert time_map_info(good)["sigma_max"] == 80.0
    segmentation = Labels(np.zeros((16, 16), np.uint8), name="cells")
    old_style = Labels(lv, metadata={"time_levels": 255, "sigma_max": 80.0})
    broken = Labels(lv, metadata={"napari_diffdenoise": {"time_map": {"levels": 0}}})
    for layer in (segmentation, old_style, broken, Image(lv.astype(float)), lv):
        assert not is_time_map_layer(layer)
    with pytest.raises(ValueError, match="'cells' is not a time map.*Time map"):
        time_map_info(segmentation)
    with pytest.raises(ValueError, match="broken metadata"):
        time_map_info(broken)


def test_denoise_reads_a_saved_time_map_with_its_sigma_max(tmp_path):
    """A map loaded from a TIFF stands for the σ it was painted with (its own sigma_max), not
    for levels out of 255 of the model's default σ_max."""
    from napari_diffdenoise import add_noise, denoise, synthetic_fluorescence
    from napari_diffdenoise.noise.timemap import load_time_map, save_time_map

    clean = (30 + 180 * synthetic_fluorescence((48, 48), kind="cells", seed=0)).astype(np.uint8)
    noisy = add_noise(clean, "gaussian", sigma=15.0, seed=1)
    lv = np.zeros((48, 48), np.uint8)
    lv[:, :24] = 51  # σ = 51 / 255 · 75 = 15
    save_time_map(tmp_path / "m.tif", lv, levels=255, sigma_max=75.0, units="counts")
    loaded = load_time_map(tmp_path / "m.tif", image_shape=noisy.shape)
    out = denoise(noisy, time_map=loaded, model="fast", steps=1)
    sigma = np.where(lv > 0, 15.0, 0.0).astype(np.float32)
    np.testing.assert_array_equal(out, denoise(noisy, sigma=sigma, model="fast", steps=1))
    np.testing.assert_array_equal(out[:, 24:], noisy[:, 24:])
