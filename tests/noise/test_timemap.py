"""Time maps: from σ maps, to and from paintable integer levels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import levels_to_time_map, time_map_from_sigma, time_map_to_levels
from napari_diffdenoise.noise.timemap import DEFAULT_TIME_LEVELS


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
