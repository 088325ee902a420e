"""The command line reads a time map saved by the Time map widget with its own σ scale."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_diffdenoise import add_noise, denoise, synthetic_fluorescence
from napari_diffdenoise.cli import main
from napari_diffdenoise.noise.timemap import load_time_map, new_time_map, save_time_map


def test_a_saved_time_map_keeps_its_sigma_scale(tmp_path):
    clean = 20 + 200 * synthetic_fluorescence((64, 96), kind="cells", seed=0)
    noisy = add_noise(clean, "gaussian", sigma=15.0, seed=1).astype(np.float32)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy)
    # σ 15 on the right two thirds, "leave alone" on the left third; σ_max 60 (not the 255
    # levels / the model's σ_max a plain integer map would be read with)
    levels = new_time_map(noisy.shape, sigma=15.0, sigma_max=60.0, levels=100)
    levels[:, :32] = 0
    save_time_map(tmp_path / "map.tif", levels, levels=100, sigma_max=60.0, units="counts")

    out = tmp_path / "out.tif"
    assert main(["denoise", str(tmp_path / "noisy.tif"), "-o", str(out), "--time-map",
                 str(tmp_path / "map.tif")]) == 0  # fmt: skip
    result = tifffile.imread(out)
    expected = denoise(noisy, time_map=load_time_map(tmp_path / "map.tif"))
    np.testing.assert_allclose(result, expected, atol=1e-4)
    np.testing.assert_array_equal(result[:, :32], noisy[:, :32])  # level 0: untouched
    np.testing.assert_allclose(result, denoise(noisy, sigma=np.where(levels > 0, 15.0, 0.0)),
                               atol=1e-4)  # fmt: skip
