"""The Time map dock widget in a real viewer: new maps, the brush in σ units, the tools, files,
and a painted map that controls where and how strongly the denoiser works."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import add_noise, denoise, levels_to_time_map, synthetic_fluorescence
from napari_diffdenoise._validation import is_time_map_layer, time_map_info

PLUGIN = "napari-diffdenoise"
WIDGET = "Time map"
TIMEOUT_MS = 60_000


@pytest.fixture
def widget(open_widget):
    from napari_diffdenoise._widgets.timemap import TimeMapWidget

    return open_widget(WIDGET, TimeMapWidget)


def noisy_image(shape=(64, 64), sigma=20.0, seed=0):
    clean = 30.0 + 180.0 * synthetic_fluorescence(shape, kind="cells", seed=seed)
    return add_noise(np.round(clean).astype(np.uint8), "gaussian", sigma=sigma, seed=seed + 1)


def place(layer):
    return (tuple(layer.scale), tuple(layer.translate), tuple(str(u) for u in layer.units))


def test_new_blank_map_is_a_time_map_in_sigma_units(viewer, widget):
    from napari.utils.colormaps import DirectLabelColormap

    assert widget.new_time_map("blank") is None  # no image yet: a clear error
    assert "no image layer" in widget.last_error
    image = viewer.add_image(
        noisy_image(), name="img", scale=(0.5, 0.5), translate=(3.0, 4.0), units=("µm", "µm")
    )
    layer = widget.new_time_map("blank", sigma_max=51.0)
    assert layer.name == "img time map" and widget.time_map_layer == layer
    assert layer.data.shape == (64, 64) and layer.data.dtype == np.uint8 and not layer.data.any()
    assert place(layer) == place(image)
    info = layer.metadata["napari_diffdenoise"]["time_map"]  # the one documented key
    assert info == {"levels": 255, "sigma_max": 51.0, "units": "counts", "source": "img"}
    assert is_time_map_layer(layer)
    # level 0 ("leave alone") is transparent; the legend is in σ units
    assert isinstance(layer.colormap, DirectLabelColormap)
    assert layer.colormap.color_dict[0][3] == 0
    assert widget.legend.tick_labels() == ["0: leave alone", "25.5", "σ 51 counts"]

    # the brush: a σ in counts sets the label; napari's status bar shows the σ of a label
    assert widget.set_brush_sigma(12.0) == 60  # round(12 / 51 * 255)
    assert layer.selected_label == 60
    assert widget.brush_label.text() == "σ ≈ 12 counts → label 60 (τ = 0.235)"
    widget.brush_spin.setValue(25.5)  # the spin box is the same control
    assert layer.selected_label == 128
    layer.selected_label = 20  # picked in the layer controls: shown in σ
    assert widget.brush_sigma == pytest.approx(4.0)
    assert widget.brush_spin.value() == pytest.approx(4.0)
    assert "σ ≈ 4 counts → label 20" in widget.brush_label.text()
    widget.set_brush_sigma(0.0)
    assert layer.selected_label == 0 and "leave these pixels alone" in widget.brush_label.text()

    layer.data_setitem((np.array([5]), np.array([7])), 60)
    status = layer.get_status((5, 7), world=False)
    assert "σ (counts): 12" in status["coordinates"]


def test_new_maps_for_a_stack_constant_and_estimate(qtbot, viewer, widget):
    stack = np.stack([noisy_image(seed=s) for s in range(3)]).astype(np.float32)
    image = viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5), units=("µm",) * 3)
    assert widget.extent_combo.isEnabled()

    flat = widget.new_time_map("constant", sigma=10.0, extent="plane", sigma_max=100.0)
    assert flat.data.shape == (64, 64)  # one 2D map applied to every plane
    assert place(flat) == ((0.5, 0.5), (0.0, 0.0), ("micrometer", "micrometer"))
    assert np.all(flat.data == 26)  # round(10 / 100 * 255)
    assert time_map_info(flat)["units"] == "intensity units"  # float image
    assert widget.brush_sigma == pytest.approx(26 / 255 * 100)  # the brush starts at that σ

    full = widget.new_time_map("constant", sigma=10.0, extent="stack", sigma_max=100.0)
    assert full.data.shape == stack.shape and place(full) == place(image)

    viewer.dims.set_current_step(0, 1)
    with qtbot.waitSignal(widget.time_map_added, timeout=TIMEOUT_MS) as added:
        worker = widget.new_time_map("estimate", extent="plane")
        assert worker is not None
    est = added.args[0]
    assert est.data.shape == (64, 64) and est.metadata["plane"] == (1,)
    info = time_map_info(est)
    sigma = levels_to_time_map(est.data, info["levels"]) * info["sigma_max"]
    assert np.median(sigma) == pytest.approx(20.0, rel=0.2)  # the noise added
    assert widget.time_map_layer == est
    widget.wait()  # (the worker ends just after the map is added)
    with qtbot.waitSignal(widget.time_map_added, timeout=TIMEOUT_MS) as added:
        widget.new_time_map("estimate", extent="stack")
    assert added.args[0].data.shape == stack.shape
    np.testing.assert_array_equal(image.data, stack)  # the image is never modified


def test_tools_smooth_scale_reset_save_load(qtbot, viewer, widget, tmp_path):
    noisy = noisy_image()
    viewer.add_image(noisy, name="img")
    with qtbot.waitSignal(widget.time_map_added, timeout=TIMEOUT_MS) as added:
        widget.new_time_map("estimate")
    layer = added.args[0]
    estimate = layer.data.copy()
    widget.wait()  # (the worker ends just after the map is added)

    # scale by 2, then undo with napari's own history
    widget.scale(2.0)
    np.testing.assert_array_equal(layer.data, np.clip(estimate.astype(int) * 2, 0, 255))
    layer.undo()
    np.testing.assert_array_equal(layer.data, estimate)

    # paint a square, smooth (the blank corner stays "leave alone")
    layer.data_setitem(tuple(np.mgrid[20:30, 20:30].reshape(2, -1)), 200)
    layer.data_setitem(tuple(np.mgrid[0:10, 0:10].reshape(2, -1)), 0)
    widget.smooth(2.0, keep_zero=True)  # in a worker
    assert widget.wait(60)
    assert not layer.data[:10, :10].any()
    assert 0 < layer.data[25, 25] < 200  # softened

    # reset the square to the estimate inside a rectangle (a Shapes layer), then everything
    rect = np.array([[18, 18], [18, 32], [32, 32], [32, 18]], float)
    viewer.add_shapes([rect], shape_type="rectangle", name="region")
    assert widget.reset_to_estimate("region") is None  # the cached estimate: at once
    np.testing.assert_array_equal(layer.data[20:30, 20:30], estimate[20:30, 20:30])
    assert not layer.data[:10, :10].any()  # outside the region: as painted
    widget.region_picker.pick_data(None)
    widget.reset_to_estimate()
    np.testing.assert_array_equal(layer.data, estimate)

    # save and load as TIFF: levels, σ_max and units survive
    layer.data_setitem(tuple(np.mgrid[0:8, 0:8].reshape(2, -1)), 3)
    path = tmp_path / "painted.tif"
    widget.save(str(path))
    loaded = widget.load(str(path))
    np.testing.assert_array_equal(loaded.data, layer.data)
    assert time_map_info(loaded) == {**time_map_info(layer), "source": "img"}
    assert widget.time_map_layer == loaded

    # a map of another shape is refused with a clear message, nothing added
    viewer.add_image(noisy[:40], name="smaller")
    widget.set_image_layer("smaller")
    n_layers = len(viewer.layers)
    widget._guard(widget.load, str(path))
    assert "has shape (64, 64), the image (40, 64)" in widget.last_error
    assert len(viewer.layers) == n_layers


def test_plain_labels_are_not_time_maps(viewer, widget):
    image = viewer.add_image(noisy_image(), name="img")
    seg = viewer.add_labels(np.ones((64, 64), np.uint8), name="cells")
    items = [widget.map_picker.itemText(i) for i in range(widget.map_picker.count())]
    assert "cells" not in items
    with pytest.raises(ValueError, match="'cells' is not a time map"):
        widget.set_time_map_layer(seg)
    with pytest.raises(ValueError, match="is not a time map.*Time map"):
        denoise(image, time_map=seg, model="fast", steps=1)


def test_painted_sigma_controls_where_and_how_strongly(viewer, widget):
    """Paint σ 40 on the left third, σ 10 in the middle, leave the right third alone: the
    denoiser changes the left most, the middle less, the right not at all."""
    noisy = noisy_image(sigma=20.0, seed=4)
    image = viewer.add_image(noisy, name="img")
    layer = widget.new_time_map("blank", sigma_max=80.0)
    cols = {"strong": slice(0, 21), "light": slice(21, 42), "alone": slice(42, 64)}
    for name, sigma in (("strong", 40.0), ("light", 10.0)):
        label = widget.set_brush_sigma(sigma)
        rows, cc = np.mgrid[0:64, cols[name]]
        layer.data_setitem((rows.ravel(), cc.ravel()), label)
    assert widget.set_brush_sigma(40.0) == 128

    out = denoise(image, time_map=layer, model="fast", steps=1)
    change = np.abs(out.astype(float) - noisy.astype(float))
    inner = slice(4, 60)
    strong = change[inner, 3:18].mean()
    light = change[inner, 24:39].mean()
    np.testing.assert_array_equal(out[:, cols["alone"]], noisy[:, cols["alone"]])
    assert light > 1.0  # it did denoise there
    assert strong > 2.0 * light
    # the painted σ is what the denoiser used: the same as passing the σ map itself
    sigma_map = np.zeros(noisy.shape, np.float32)
    sigma_map[:, cols["strong"]] = 128 / 255 * 80.0
    sigma_map[:, cols["light"]] = 32 / 255 * 80.0
    np.testing.assert_array_equal(out, denoise(noisy, sigma=sigma_map, model="fast", steps=1))


def test_console_methods_wait_and_close(viewer, widget):
    """From the console: an estimate made here and now (wait=True), a blank map reset to it, the
    inspector's time map picked and edited here; closing the widget disconnects it."""
    noisy = noisy_image(seed=7)
    viewer.add_image(noisy, name="img")
    est = widget.new_time_map("estimate", wait=True)
    blank = widget.new_time_map("blank", sigma_max=time_map_info(est)["sigma_max"])
    assert widget.time_map_layer == blank
    assert widget.reset_to_estimate(wait=True) is None
    np.testing.assert_array_equal(blank.data, est.data)

    _, inspector = viewer.window.add_plugin_dock_widget(PLUGIN, "Noise inspector")
    inspector.set_image_layer("img")
    assert inspector.inspect(wait=True) is None and inspector.report is not None
    from_inspector = inspector.add_time_map_layer()
    widget.set_time_map_layer(from_inspector)  # the inspector's maps are time maps too
    widget.set_brush_sigma(20.0)
    assert from_inspector.selected_label == round(20.0 / inspector.sigma_max * 255)

    widget.shutdown()
    from_inspector.selected_label = 3  # no longer followed
    assert widget.closed


def test_one_worker_at_a_time_and_the_buttons_wait_for_it(qtbot, viewer, widget):
    """A double click on New time map started two estimates; now the second is refused and
    the buttons that start or edit wait until the running one has finished."""
    viewer.add_image(noisy_image(), name="img")
    worker = widget.new_time_map("estimate", start=False)
    assert worker is not None and widget.busy
    assert not widget.new_button.isEnabled() and not widget.reset_button.isEnabled()
    assert widget.new_time_map("estimate") is None  # the second click
    assert "Busy" in widget.status_label.text()
    assert widget.workers == [worker]
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert widget.new_button.isEnabled() and widget.reset_button.isEnabled()
    assert [lay.name for lay in viewer.layers] == ["img", "img time map"]


def test_smoothing_and_the_automatic_sigma_max_run_in_a_worker(qtbot, viewer, widget):
    from napari_diffdenoise.intensity import SIGMA_MAX, robust_range

    noisy = noisy_image()
    viewer.add_image(noisy, name="img")
    # σ_max "auto" reads planes of the image: in a worker, the layer added when it is in
    worker = widget.new_time_map("constant", sigma=10.0, start=False)
    assert worker is not None and len(viewer.layers) == 1
    with qtbot.waitSignal(widget.time_map_added, timeout=TIMEOUT_MS) as added:
        worker.start()
    layer = added.args[0]
    sigma_max = float(SIGMA_MAX * robust_range(noisy).scale)
    assert time_map_info(layer)["sigma_max"] == pytest.approx(sigma_max)
    widget.wait()

    layer.data_setitem(tuple(np.mgrid[20:30, 20:30].reshape(2, -1)), 200)
    painted = layer.data.copy()
    worker = widget.smooth(2.0, keep_zero=True, start=False)
    assert worker is not None and not widget.smooth_button.isEnabled()
    np.testing.assert_array_equal(layer.data, painted)  # nothing on the GUI thread yet
    layer.data_setitem((np.array([25]), np.array([25])), 7)  # painted while it smooths
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    widget.wait()
    assert 0 < layer.data[22, 22] < 200  # softened
    assert layer.data[25, 25] == 7  # the stroke made meanwhile stays
    assert widget.smooth_button.isEnabled()
    layer.undo()  # one edit in napari's history
    assert layer.data[22, 22] == 200


def test_the_estimates_kept_follow_their_images(qtbot, viewer, widget):
    """Kept for Reset to estimate, at most two, dropped when the image goes or changes."""
    image = viewer.add_image(noisy_image(seed=1), name="img")
    widget.new_time_map("estimate", wait=True)
    assert widget.reset_to_estimate(wait=False) is None  # the kept estimate: at once
    image.data = noisy_image(seed=2)  # other data: the old estimate no longer holds
    worker = widget.reset_to_estimate(start=False)
    assert worker is not None  # estimated again
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    widget.wait()
    for seed in (3, 4):
        viewer.add_image(noisy_image(seed=seed), name=f"other {seed}")
        widget.new_time_map("estimate", wait=True)
    assert len(widget._estimates) == 2
    viewer.layers.remove("other 4")
    assert len(widget._estimates) == 1
    widget.shutdown()
    assert not widget._estimates
