"""The whole napari workflow as a newcomer runs it from the menus, in one real viewer:
sample data → Noise inspector → time map → paint in σ units → preview → run on the image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import denoise

PLUGIN = "napari-diffdenoise"


@pytest.mark.slow
def test_sample_inspect_time_map_paint_preview_run(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "poisson")
    noisy = viewer.layers["blobs poisson (noisy)"]
    original = noisy.data.copy()
    _, inspector = viewer.window.add_plugin_dock_widget(PLUGIN, "Noise inspector")
    _, tool = viewer.window.add_plugin_dock_widget(PLUGIN, "Time map")
    _, denoiser = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoiser")

    # 1. what noise is this?
    inspector.set_image_layer(noisy)
    inspector.inspect(wait=True)
    assert inspector.report.kind == "poisson", inspector.report.summary()
    # 2. the estimate as a time map, which the Time map widget and the Denoiser take up
    tmap = inspector.add_time_map_layer()
    tool.set_time_map_layer(tmap)
    denoiser.set_image_layer(noisy)
    denoiser.set_noise_source(tmap)
    # 3. paint: a block left alone, a block at a high σ (the brush in the image's units)
    top = tool.set_brush_sigma(3 * inspector.report.sigma_map.max())
    rows, cols = np.mgrid[0:48, 0:48]
    tmap.data_setitem((rows.ravel(), cols.ravel()), tool.set_brush_sigma(0.0))
    rows, cols = np.mgrid[100:160, 100:160]
    tmap.data_setitem((rows.ravel(), cols.ravel()), top)
    # 4. the preview shows what is on screen with the painted map
    denoiser.preview()
    assert denoiser.wait(120), "the preview did not finish"
    preview = viewer.layers[f"{noisy.name} preview"]
    np.testing.assert_array_equal(preview.data[:48, :48], original[:48, :48])
    # 5. the whole image, then the same from the API with the recorded parameters
    denoiser.run()
    assert denoiser.wait(300), "the run did not finish"
    result = viewer.layers[-1]
    assert result.name == f"{noisy.name} denoised"
    meta = result.metadata["napari_diffdenoise"]
    again = denoise(noisy, viewer.layers[meta["time_map"]], **meta["parameters"])
    np.testing.assert_array_equal(result.data, again)
    np.testing.assert_array_equal(result.data[:48, :48], original[:48, :48])  # left alone
    change = np.abs(result.data.astype(float) - original.astype(float))
    assert change[100:160, 100:160].mean() > change[48:100, 48:100].mean()  # worked harder
    assert preview.data.shape == result.data.shape  # the sample plane fits on screen whole
    np.testing.assert_array_equal(preview.data, result.data)  # what was previewed is what ran
    assert tuple(result.scale) == tuple(noisy.scale) and tuple(result.units) == tuple(noisy.units)
    np.testing.assert_array_equal(noisy.data, original)  # the input is never modified
