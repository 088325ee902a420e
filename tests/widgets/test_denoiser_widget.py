"""The Denoiser dock widget, opened through the plugin manifest in a real viewer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_diffdenoise import add_noise, denoise, synthetic_fluorescence
from napari_diffdenoise.noise.timemap import time_map_metadata

PLUGIN = "napari-diffdenoise"
TIMEOUT_MS = 120_000
KEY = "napari_diffdenoise"


@pytest.fixture
def widget(open_widget):
    from napari_diffdenoise._widgets.denoiser import DenoiserWidget

    return open_widget("Denoiser", DenoiserWidget)


def _noisy(shape=(96, 96), sigma=20.0, seed=0):
    clean = (20 + 200 * synthetic_fluorescence(shape, kind="cells", seed=seed)).astype(np.float32)
    return clean, add_noise(clean, "gaussian", sigma=sigma, seed=seed)


def _stack(n=3, side=64, seed=3):
    _, noisy = _noisy(shape=(side, side), seed=seed)
    return np.stack([noisy * (0.5 + 0.5 * i) for i in range(n)]).astype(np.float32)


def _run(qtbot, widget, run=None):
    worker = (run or widget.run)(start=False)
    assert worker is not None, widget.last_error
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    return worker


class CountingArray:
    """A zarr array that records every read: a layer whose data is read plane by plane."""

    def __init__(self, array):
        self.array = array
        self.reads: list[tuple[int, ...]] = []
        self.whole = 0

    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    ndim = property(lambda self: self.array.ndim)
    size = property(lambda self: self.array.size)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        out = self.array[index]
        self.reads.append(np.shape(out))
        return out

    def __array__(self, dtype=None, copy=None):
        self.whole += 1
        return np.asarray(self.array[...], dtype=dtype)


# ---------------------------------------------------------------------- single images
def test_denoise_with_sigma_adds_layer_matching_api(qtbot, viewer, widget):
    clean, noisy = _noisy()
    before = noisy.copy()
    layer = viewer.add_image(
        noisy, name="noisy", scale=(0.5, 0.5), units=("µm", "µm"), axis_labels=("y", "x")
    )
    widget.set_image_layer(layer)
    widget.set_noise_source(20.0)
    progress = []
    worker = widget.run(start=False)
    worker.yielded.connect(progress.append)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert widget.last_error is None
    out = viewer.layers["noisy denoised"]
    np.testing.assert_allclose(out.data, denoise(noisy, sigma=20.0), atol=1e-4)
    assert tuple(out.scale) == (0.5, 0.5)
    assert tuple(str(u) for u in out.units) == tuple(str(u) for u in layer.units)
    assert tuple(out.axis_labels) == ("y", "x")
    assert progress and progress[-1][0] == progress[-1][1]
    assert widget.progress.maximum() > 0  # determinate: never the busy bar
    np.testing.assert_array_equal(layer.data, before)
    assert np.mean((out.data - clean) ** 2) < np.mean((noisy - clean) ** 2) / 2


def test_metadata_reproduces_the_result_from_the_console(qtbot, viewer, widget):
    _, noisy = _noisy(shape=(64, 64), seed=5)
    layer = viewer.add_image(noisy, name="n")
    widget.set_noise_source(15.0)
    widget.set_parameters(sampler="cold", steps=2, seed=3)
    _run(qtbot, widget)
    out = viewer.layers["n denoised"]
    meta = out.metadata[KEY]
    assert meta["model"] == "default" and meta["model_hash"].startswith("sha256:")
    assert meta["parameters"]["sigma"] == 15.0 and meta["parameters"]["steps"] == 2
    again = denoise(layer, **meta["parameters"])
    np.testing.assert_array_equal(again, out.data)


def test_non_local_step_setting_reaches_denoise(qtbot, viewer, widget):
    """The 'non-local' choice: the preset's default until set, then the given Wiener weight."""
    _, noisy = _noisy()
    viewer.add_image(noisy, name="noisy")
    widget.set_noise_source(20.0)
    widget.set_parameters(model="quality")
    assert "wiener" not in widget._gather().kwargs
    widget.set_parameters(model="default", wiener=0.5)
    assert widget._gather().kwargs["wiener"] == 0.5
    _run(qtbot, widget)
    np.testing.assert_allclose(
        viewer.layers["noisy denoised"].data, denoise(noisy, sigma=20.0, wiener=0.5), atol=1e-4
    )
    widget.set_parameters(wiener="auto")
    assert widget._gather().kwargs["wiener"] == "auto"
    widget.set_parameters(wiener=None)
    assert "wiener" not in widget._gather().kwargs
    with pytest.raises(ValueError, match="not offered"):
        widget.set_parameters(wiener=0.3)
    with pytest.raises(ValueError, match="unknown parameter"):
        widget.set_parameters(colour="red")


def test_auto_non_local_weights_are_kept_and_the_status_says_what_to_do(qtbot, viewer, widget):
    _, noisy = _noisy()
    viewer.add_image(noisy, name="noisy")
    widget.set_noise_source(20.0)
    widget.set_parameters(model="default", wiener="auto")
    _run(qtbot, widget)
    assert widget.last_error is None
    ref = denoise(noisy, sigma=20.0, wiener="auto", return_details=True)
    meta = viewer.layers["noisy denoised"].metadata[KEY]
    assert meta["wiener_weights"] == ref.wiener_weights
    assert meta["threshold_weights"] == ref.threshold_weights
    assert meta["fine_patch_weights"] == ref.fine_weights
    text = widget.status_label.text()
    assert "non-local filter" in text and "thresholding" not in text
    assert "off" in text or "fixed weight" in text  # something the user can act on
    np.testing.assert_allclose(viewer.layers["noisy denoised"].data, ref.image, atol=1e-4)


def test_advice_for_skipped_and_small_non_local_weights():
    from napari_diffdenoise._widgets.denoiser import _advice
    from napari_diffdenoise.engine.denoise import DenoiseResult

    img = np.zeros((2, 8, 8), np.float32)
    assert _advice(DenoiseResult(img, None, img, None)) == ""
    assert "skipped" in _advice(DenoiseResult(img, None, img, None, [], [], []))
    assert "'off'" in _advice(DenoiseResult(img, None, img, None, [0.25, 0.25], [0, 0], [0, 0]))
    assert "75%" in _advice(DenoiseResult(img, None, img, None, [0.75], [0.2], [0.1]))


def test_blind_and_painted_time_map(qtbot, viewer, widget):
    _, noisy = _noisy(seed=1)
    layer = viewer.add_image(noisy, name="img")
    levels = np.full(noisy.shape, 40, np.uint8)
    levels[:, :30] = 0  # painted "leave alone"
    viewer.add_labels(levels, name="tm", metadata=time_map_metadata(255, 100.0))
    widget.set_image_layer(layer)
    widget.set_noise_source("tm")
    _run(qtbot, widget)
    out = viewer.layers["img denoised"]
    np.testing.assert_array_equal(out.data[:, :30], noisy[:, :30])
    assert not np.allclose(out.data[:, 30:], noisy[:, 30:])
    meta = out.metadata[KEY]
    assert meta["time_map"] == "tm"
    again = denoise(layer, viewer.layers[meta["time_map"]], **meta["parameters"])
    np.testing.assert_array_equal(again, out.data)

    widget.set_noise_source("estimate")
    _run(qtbot, widget)
    assert widget.result.report is not None


def test_segmentation_is_not_offered_as_time_map_and_labels_are_not_images(viewer, widget):
    from napari_diffdenoise.engine.denoise import iter_denoise

    _, noisy = _noisy(shape=(32, 32))
    viewer.add_image(noisy, name="img")
    seg = viewer.add_labels(np.zeros((32, 32), np.uint8) + 2, name="cells")
    viewer.add_labels(
        np.full((32, 32), 9, np.uint8), name="tm", metadata=time_map_metadata(255, 50.0)
    )
    offered = [widget.noise_combo.itemText(i) for i in range(widget.noise_combo.count())]
    assert "time map: tm" in offered and not any("cells" in t for t in offered)
    assert widget.refused_label.isVisibleTo(widget) and "'cells'" in widget.refused_label.text()
    with pytest.raises(ValueError, match="not a time map"):
        widget.set_noise_source("cells")
    images = [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]
    assert images == ["img"]
    with pytest.raises(ValueError, match="Labels layer"):
        widget.set_image_layer("cells")
    with pytest.raises(TypeError, match="Labels layer"):
        denoise(seg)
    with pytest.raises(TypeError, match="Labels layer"):
        next(iter_denoise(seg))
    with pytest.raises(ValueError, match="not a time map"):
        denoise(noisy, seg)


def test_stochastic_run_adds_uncertainty(qtbot, viewer, widget):
    _, noisy = _noisy(shape=(64, 64), seed=2)
    viewer.add_image(noisy, name="s")
    widget.set_noise_source(20.0)
    widget.set_parameters(sampler="indi", steps=2, eta=0.5, samples=2, seed=1)
    _run(qtbot, widget)
    unc = viewer.layers["s uncertainty"]
    assert unc.data.shape == noisy.shape and float(unc.data.mean()) > 0


def test_a_stochastic_run_into_a_store_adds_its_uncertainty_too(qtbot, viewer, widget, tmp_path):
    stack = _stack(n=2, side=48)
    viewer.add_image(stack, name="s", scale=(2.0, 0.5, 0.5))
    widget.set_noise_source(20.0)
    widget.set_parameters(sampler="indi", steps=2, eta=0.5, samples=2, seed=1,
                          store=tmp_path / "out.zarr", output="store")  # fmt: skip
    _run(qtbot, widget)
    unc = viewer.layers["s uncertainty"]
    assert not isinstance(unc.data, np.ndarray)  # (read from the store, lazily)
    assert unc.data.shape == stack.shape and float(np.asarray(unc.data).mean()) > 0
    assert tuple(unc.scale) == (2.0, 0.5, 0.5)


def test_bad_input_shows_error_and_notifies(viewer, widget):
    from napari.utils.notifications import notification_manager

    assert widget.run() is None  # no image at all
    assert "no image" in widget.last_error
    assert "Denoiser" in notification_manager.records[-1].message
    assert "no image" in notification_manager.records[-1].message
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="rgb", rgb=True)
    assert widget.image_combo.count() == 0  # RGB layers are not offered
    with pytest.raises(ValueError, match="RGB"):
        widget.set_image_layer("rgb")


# ---------------------------------------------------------------------- models
def test_model_list_refreshes_with_fine_tuned_models(widget, tmp_path, monkeypatch):
    from qtpy.QtCore import Qt

    from napari_diffdenoise import list_models
    from napari_diffdenoise.model.registry import PRESETS, bundled_dir

    combo = widget.model_combo
    names = [combo.itemData(i) for i in range(combo.count())]
    assert names == list_models()
    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(tmp_path))
    for suffix in (".safetensors", ".json"):
        shutil.copy(bundled_dir() / f"default{suffix}", tmp_path / f"my-cells{suffix}")
    assert "my-cells" in widget.refresh_models()  # no restart
    for i in range(combo.count()):
        name = combo.itemData(i)
        tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert tip == (
            PRESETS[name].description if name in PRESETS else "a saved (fine-tuned) model"
        )
    widget.set_parameters(model="my-cells")
    assert widget._options()["model"] == "my-cells"


# ---------------------------------------------------------------------- stacks
def test_current_slice_is_named_readably_and_placed_on_its_slice(qtbot, viewer, widget):
    stack = _stack()
    viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5), translate=(10.0, 0, 0))
    viewer.dims.set_current_step(0, 2)
    widget.set_noise_source(20.0)
    widget.set_parameters(scope="slice")
    _run(qtbot, widget)
    assert viewer.layers["stack"].axis_labels[0] != "z"  # napari's default labels: a number
    out = viewer.layers["stack denoised (slice 2)"]
    assert out.data.shape == (1, 64, 64)
    assert tuple(out.translate) == (14.0, 0.0, 0.0) and tuple(out.scale) == (2.0, 0.5, 0.5)
    np.testing.assert_allclose(out.data[0], denoise(stack[2], sigma=20.0), atol=1e-4)
    assert out.metadata[KEY]["plane"] == [2]


def test_progressive_layer_appears_at_once_and_ends_as_the_api_output(qtbot, viewer, widget):
    stack = _stack()
    layer = viewer.add_image(stack, name="st", scale=(3.0, 1.0, 1.0), contrast_limits=(0, 300))
    widget.set_noise_source(20.0)
    widget.set_parameters(batch_size=1)  # one plane per group: planes finish one by one
    seen, formats = [], []

    def look(progress):
        found = [lay for lay in viewer.layers if lay.name == "st denoised"]
        seen.append((found[0] if found else None, progress.output, widget.result))
        formats.append(widget.progress.format())

    worker = widget.run(start=False)
    worker.yielded.connect(look)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    first_layer, first_output, result_then = seen[0]
    assert first_layer is not None and result_then is None  # shown before the run ended
    assert first_layer.data is first_output  # the array the engine fills in place
    assert tuple(first_layer.scale) == (3.0, 1.0, 1.0)
    assert tuple(first_layer.contrast_limits) == (0.0, 300.0)
    assert any("tiles" in f and "MP/s" in f and "left" in f for f in formats), formats
    out = viewer.layers["st denoised"]
    assert out.metadata[KEY]["partial"] is False
    np.testing.assert_allclose(out.data, denoise(layer, sigma=20.0, batch_size=1), atol=1e-4)


def test_a_large_plane_fills_in_tile_by_tile(qtbot, viewer, widget, monkeypatch):
    """One large plane: its result layer is shown at once and redrawn as tiles finish."""
    from napari_diffdenoise._widgets import denoiser

    monkeypatch.setattr(denoiser, "LARGE_PLANE", 128 * 128)  # (a test-sized "large" plane)
    monkeypatch.setattr(denoiser, "REFRESH_S", 0.0)
    _, noisy = _noisy(shape=(192, 256), seed=4)
    viewer.add_image(noisy, name="big")
    widget.set_noise_source(20.0)
    widget.set_parameters(tile_size=64, batch_size=1)
    shown, redrawn = [], []

    def look(_progress):
        found = [lay for lay in viewer.layers if lay.name == "big denoised"]
        if found:
            if not shown:
                found[0].events.set_data.connect(lambda e: redrawn.append(e))
            shown.append(float(np.mean(np.asarray(found[0].data) != 0)))

    worker = widget.run(start=False)
    worker.yielded.connect(look)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert len({f for f in shown if 0 < f < 1}) >= 4, shown  # seen part-filled, growing
    assert len(redrawn) >= 4  # and redrawn as it filled, not only when the plane was done
    out = viewer.layers["big denoised"]
    np.testing.assert_allclose(
        out.data, denoise(noisy, sigma=20.0, tile_size=64, batch_size=1), atol=1e-4
    )


def test_lazy_zarr_layer_is_read_plane_by_plane_into_a_store(qtbot, viewer, widget, tmp_path):
    stack = _stack()
    z = zarr.create_array(
        str(tmp_path / "in.zarr"), shape=stack.shape, chunks=(1, 64, 64), dtype="float32"
    )
    z[...] = stack
    lazy = CountingArray(zarr.open_array(str(tmp_path / "in.zarr"), mode="r"))
    viewer.add_image(lazy, name="lazy", contrast_limits=(0, 300))
    widget.set_noise_source(20.0)
    widget.set_parameters(store=tmp_path / "out.zarr")
    _run(qtbot, widget)
    assert widget.last_error is None
    assert lazy.whole == 0
    assert lazy.reads and max(int(np.prod(r)) for r in lazy.reads) <= 64 * 64
    out = viewer.layers["lazy denoised"]
    assert isinstance(out.data, zarr.Array)  # shown lazily, from the store
    assert out.metadata[KEY]["store"] == str(tmp_path / "out.zarr")
    np.testing.assert_allclose(out.data[...], denoise(stack, sigma=20.0), atol=1e-3)


def test_cancel_within_one_tile_leaves_a_resumable_store(qtbot, viewer, widget, tmp_path):
    stack = _stack(side=128)
    layer = viewer.add_image(stack, name="big")
    widget.set_noise_source(20.0)
    store = tmp_path / "big.zarr"
    widget.set_parameters(output="store", store=store, tile_size=64, batch_size=1)
    worker = widget.run(start=False)

    def stop(progress):
        if progress.planes_done >= 1:
            widget.cancel()

    worker.yielded.connect(stop)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert worker.counter.count - worker.cancel_count <= 1  # within one batch of tiles
    assert widget.resumable and widget.resume_button.isEnabled()
    assert "Resume" in widget.status_label.text()
    done = {p.name for p in (store / ".napari_diffdenoise" / "done").iterdir()}
    assert 1 <= len(done) < 3
    partial = viewer.layers["big denoised"]
    assert partial.metadata[KEY]["partial"] is True
    _run(qtbot, widget, widget.resume)
    assert widget.last_error is None and not widget.resumable
    out = viewer.layers["big denoised"]
    reference = denoise(layer, sigma=20.0, tile_size=64, batch_size=1)
    np.testing.assert_allclose(out.data[...], reference, atol=1e-3)
    assert out.metadata[KEY]["partial"] is False


def test_cancel_of_an_in_memory_run_adds_nothing(qtbot, viewer, widget):
    _, noisy = _noisy(shape=(64, 64), seed=4)
    viewer.add_image(noisy, name="c")
    widget.set_noise_source(20.0)
    widget.set_parameters(sampler="cold", steps=50)
    n_layers = len(viewer.layers)
    worker = widget.run(start=False)
    worker.yielded.connect(lambda v: widget.cancel())
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert len(viewer.layers) == n_layers
    assert widget.result is None
    assert "Cancelled" in widget.status_label.text()


# ---------------------------------------------------------------------- preview
def test_preview_follows_the_slider_and_the_painted_map(no_leaked_threads, qtbot, viewer, widget):
    stack = _stack()
    viewer.add_image(stack, name="st", scale=(2.0, 1.0, 1.0))
    tm = viewer.add_labels(
        np.full((64, 64), 40, np.uint8), name="tm", metadata=time_map_metadata(255, 100.0)
    )
    viewer.layers.selection.active = viewer.layers["st"]
    widget.set_noise_source("tm")
    widget.set_parameters(live_preview=True)

    def shows(plane):
        layer = widget.preview_layer
        return layer is not None and layer.metadata[KEY]["plane"] == [plane]

    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(lambda: shows(1), timeout=TIMEOUT_MS)
    preview = viewer.layers["st preview"]
    assert tuple(preview.translate)[0] == 2.0 and preview.data.shape == (1, 64, 64)
    np.testing.assert_allclose(preview.data[0], denoise(stack[1], tm), atol=1e-4)
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: shows(2), timeout=TIMEOUT_MS)
    assert not np.allclose(preview.data[0, :, :10], stack[2, :, :10])
    left = np.zeros((64, 64), bool)
    left[:, :10] = True
    tm.data_setitem(np.nonzero(left), 0)  # paint "leave alone" on the left (fires paint)
    qtbot.waitUntil(
        lambda: np.array_equal(preview.data[0, :, :10], stack[2, :, :10]), timeout=TIMEOUT_MS
    )
    widget.set_parameters(live_preview=False)
    no_leaked_threads()


def test_preview_of_a_large_plane_is_the_visible_region(qtbot, viewer, widget):
    from napari_diffdenoise._widgets.denoiser import PREVIEW_SIDE

    _, noisy = _noisy(shape=(PREVIEW_SIDE + 200, PREVIEW_SIDE + 100), seed=6)
    viewer.add_image(noisy, name="wide")
    widget.set_noise_source(20.0)
    plane, rows, cols = widget.preview_region()
    assert plane == ()
    assert rows.stop - rows.start <= PREVIEW_SIDE and cols.stop - cols.start <= PREVIEW_SIDE
    _run(qtbot, widget, widget.preview)
    preview = viewer.layers["wide preview"]
    assert tuple(preview.translate) == (rows.start, cols.start)
    np.testing.assert_allclose(preview.data, denoise(noisy[rows, cols], sigma=20.0), atol=1e-4)


# ---------------------------------------------------------------------- layer list and closing
def test_follows_the_selected_layer_and_takes_its_own_outputs(qtbot, viewer, widget):
    _, a = _noisy(shape=(48, 48), seed=7)
    first = viewer.add_image(a, name="a")
    viewer.add_image(a * 2, name="b")
    viewer.layers.selection.active = first
    assert widget.image_layer.name == "a"
    widget.set_noise_source(20.0)
    _run(qtbot, widget)
    assert widget.image_layer.name == "a"  # its own addition does not steal the choice
    viewer.layers.selection.active = viewer.layers["b"]
    assert widget.image_layer.name == "b"
    viewer.layers.selection.active = viewer.layers["a denoised"]
    assert widget.image_layer.name == "a denoised"
    _run(qtbot, widget)
    assert "a denoised denoised" in viewer.layers


def test_removing_the_input_during_a_run_keeps_its_placement(
    no_leaked_threads, qtbot, viewer, widget
):
    stack = _stack()
    layer = viewer.add_image(stack, name="gone", scale=(2.0, 0.5, 0.5), units=("µm",) * 3)
    widget.set_noise_source(20.0)
    widget.set_parameters(batch_size=1)
    worker = widget.run(start=False)
    worker.yielded.connect(lambda p: layer in viewer.layers and viewer.layers.remove(layer))
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert widget.last_error is None
    out = viewer.layers["gone denoised"]
    assert tuple(out.scale) == (2.0, 0.5, 0.5)
    assert [str(u) for u in out.units] == ["micrometer"] * 3
    no_leaked_threads()


def test_closing_the_widget_cancels_and_adds_nothing(no_leaked_threads, qtbot, viewer, widget):
    stack = _stack()
    viewer.add_image(stack, name="c")
    widget.set_noise_source(20.0)
    widget.set_parameters(batch_size=1, sampler="cold", steps=20)
    n_layers = len(viewer.layers)
    worker = widget.run(start=False)
    worker.yielded.connect(lambda p: widget.closed or viewer.window.remove_dock_widget(widget))
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert widget.closed
    assert worker.counter.count < 3 * 20  # stopped, not run to the end
    qtbot.wait(50)
    assert len(viewer.layers) == n_layers
    no_leaked_threads()


def test_store_goes_beside_a_file_backed_layer_else_to_a_temp_folder(viewer, widget, tmp_path):
    import tempfile

    import tifffile

    tifffile.imwrite(tmp_path / "cells.tif", _stack(side=32))
    (layer,) = viewer.open(tmp_path / "cells.tif", plugin="napari")
    widget.set_image_layer(layer)
    widget.set_noise_source(20.0)
    widget.set_parameters(output="store")
    assert widget._gather().out == tmp_path / "cells denoised.zarr"
    (tmp_path / "cells denoised.zarr").mkdir()  # taken: the next free name
    assert widget._gather().out == tmp_path / "cells denoised-2.zarr"
    widget.set_image_layer(viewer.add_image(_stack(side=32), name="in memory"))
    assert widget._gather().out.parent == Path(tempfile.gettempdir()) / "napari-diffdenoise"
    widget.set_parameters(output="auto")
    assert widget._gather().out is None  # small and in memory: no store


def test_multiscale_layer_is_denoised_at_level_0(qtbot, viewer, widget):
    _, noisy = _noisy(shape=(128, 128), seed=8)
    viewer.add_image(
        [noisy, noisy[::2, ::2]], name="pyr", multiscale=True, contrast_limits=(0, 300)
    )
    widget.set_noise_source(20.0)
    _run(qtbot, widget)
    out = viewer.layers["pyr denoised"]
    np.testing.assert_allclose(out.data, denoise(noisy, sigma=20.0), atol=1e-4)
    _run(qtbot, widget, widget.preview)
    assert viewer.layers["pyr preview"].data.shape == noisy.shape


def test_removing_the_chosen_time_map_falls_back_to_the_estimate(viewer, widget):
    _, noisy = _noisy(shape=(32, 32))
    viewer.add_image(noisy, name="img")
    tm = viewer.add_labels(
        np.full((32, 32), 9, np.uint8), name="tm", metadata=time_map_metadata(255, 50.0)
    )
    widget.set_noise_source("tm")
    assert widget._watched_map is tm
    viewer.layers.remove(tm)
    assert widget.noise_combo.currentData() == "estimate"
    assert widget._watched_map is None  # no longer listening to the removed layer


def test_slice_result_is_named_after_the_axis_label(qtbot, viewer, widget):
    viewer.add_image(_stack(), name="cells", axis_labels=("z", "y", "x"))
    viewer.dims.set_current_step(0, 1)
    widget.set_noise_source(20.0)
    widget.set_parameters(scope="slice")
    _run(qtbot, widget)
    assert "cells denoised (z 1)" in viewer.layers


# ---------------------------------------------------------------------- review fixes
def test_the_preview_of_another_image_takes_that_images_name_and_placement(qtbot, viewer, widget):
    _, a = _noisy(shape=(48, 48), seed=1)
    _, b = _noisy(shape=(40, 40), seed=2)
    viewer.add_image(a, name="a", scale=(0.5, 0.5), units=("µm", "µm"), contrast_limits=(0, 100))
    widget.set_noise_source(20.0)
    _run(qtbot, widget, widget.preview)
    first = widget.preview_layer
    assert first.name == "a preview" and tuple(first.scale) == (0.5, 0.5)
    first.contrast_limits = (10, 90)  # the user's contrast is kept while it previews "a"
    _run(qtbot, widget, widget.preview)
    assert widget.preview_layer is first and tuple(first.contrast_limits) == (10, 90)

    viewer.add_image(b, name="b", scale=(2.0, 2.0), contrast_limits=(5, 250))
    widget.set_image_layer("b")
    _run(qtbot, widget, widget.preview)
    preview = widget.preview_layer
    assert preview.name == "b preview" and "a preview" not in viewer.layers
    assert tuple(preview.scale) == (2.0, 2.0)
    assert [str(u) for u in preview.units] == ["pixel", "pixel"]
    assert tuple(preview.contrast_limits) == (5.0, 250.0)
    np.testing.assert_allclose(preview.data, denoise(b, sigma=20.0), atol=1e-4)


def test_a_preview_waits_for_a_running_job(qtbot, viewer, widget):
    viewer.add_image(_stack(), name="st")
    widget.set_noise_source(20.0)
    worker = widget.run(start=False)
    assert worker is not None
    assert widget.preview() is None
    assert "run is going" in widget.status_label.text()
    worker.yielded.connect(lambda progress: widget.cancel())
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()


def test_a_fresh_seed_and_a_slice_are_recorded_so_the_run_is_reproduced(qtbot, viewer, widget):
    stack = _stack()
    layer = viewer.add_image(stack, name="st")
    viewer.dims.set_current_step(0, 1)
    widget.set_noise_source(20.0)
    widget.set_parameters(sampler="indi", steps=2, eta=0.5, samples=1, seed=-1, scope="slice")
    _run(qtbot, widget)
    out = viewer.layers["st denoised (slice 1)"]
    meta = out.metadata[KEY]
    seed = meta["parameters"]["seed"]
    assert isinstance(seed, int) and seed >= 0  # the seed drawn, not None
    plane = tuple(meta["plane"])
    again = denoise(layer.data[plane], **meta["parameters"])  # as the module docstring says
    np.testing.assert_array_equal(again, out.data[0])
