"""The Fine-tune dock widget, opened through the plugin manifest in a real viewer: tiny real
training runs (a few steps on 64² images) started, stopped and closed from the widget."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_diffdenoise import denoise, list_models, synthetic_fluorescence

PLUGIN = "napari-diffdenoise"
TIMEOUT_MS = 300_000
KEY = "napari_diffdenoise"
#: tiny runs: 48² patches, 2 per step, a validation every 3 steps
TINY = {"patch_size": 48, "batch_size": 2, "val_every": 3, "warmup_steps": 2}


@pytest.fixture
def widget(open_widget):
    from napari_diffdenoise._widgets.finetune import FineTuneWidget

    return open_widget("Fine-tune", FineTuneWidget)


def _pairs(n=2, side=64, seed=0):
    """``n`` planes of clean synthetic cells and noisy copies with row stripes (float32)."""
    rng = np.random.default_rng(seed)
    clean = np.stack(
        [synthetic_fluorescence((side, side), kind="cells", seed=seed + i) for i in range(n)]
    ).astype(np.float32)
    stripes = 0.08 * rng.standard_normal((n, side, 1))
    noisy = clean + 0.05 * rng.standard_normal(clean.shape) + stripes
    return noisy.astype(np.float32), clean


def _pair_layers(viewer):
    noisy, clean = _pairs()
    viewer.add_image(noisy, name="noisy", scale=(1.0, 0.5, 0.5), translate=(0, 10, 20))
    viewer.add_image(clean, name="clean", scale=(1.0, 0.5, 0.5), translate=(0, 10, 20))
    return noisy, clean


def _run(qtbot, widget):
    worker = widget.start(start=False)
    assert worker is not None, widget.last_error
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    return worker


def _training(models_dir, name):
    return json.loads((models_dir / f"{name}.json").read_text())["training"]


def test_a_pairs_run_plots_previews_saves_and_lists_the_model_in_the_denoiser(
    no_leaked_threads, qtbot, viewer, widget, models_dir
):
    from napari_diffdenoise._widgets.finetune import BASE_PREVIEW_LAYER, PREVIEW_LAYER

    _dock, denoiser = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoiser")
    noisy, clean = _pair_layers(viewer)
    copies = noisy.copy(), clean.copy()
    region = widget.add_region_layer()  # drawn on the noisy image's grid
    region.add_rectangles(np.array([[0, 8, 16], [0, 8, 56], [0, 40, 56], [0, 40, 16]], float))
    widget.set_parameters(
        mode="pair_layers",
        noisy="noisy",
        clean="clean",
        max_steps=6,
        name="widget-tiny",
        seed=0,
        settings=TINY,
    )
    assert widget.parameters()["pairs"][0][0].name == "noisy"
    combo = denoiser.model_combo
    assert "widget-tiny" not in [combo.itemData(i) for i in range(combo.count())]
    _run(qtbot, widget)

    assert widget.last_error is None, widget.last_error
    assert widget.model_name == "widget-tiny" and "widget-tiny" in list_models()
    assert (models_dir / "widget-tiny.safetensors").is_file()
    # the Denoiser lists it without being asked to refresh
    assert "widget-tiny" in [combo.itemData(i) for i in range(combo.count())]
    # the history and the plot got every step, the validation at 0, 3, 6
    assert [h["step"] for h in widget.history] == list(range(7))
    assert [h["step"] for h in widget.history if h["figure"] is not None] == [0, 3, 6]
    assert widget.figure_name == "PSNR (dB)"
    assert list(widget.plot.loss_line.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(widget.plot.val_line.get_xdata()) == [0, 3, 6]
    assert widget.plot.draws >= 1
    assert "PSNR" in widget.plot.ax_val.get_ylabel()
    meta = _training(models_dir, "widget-tiny")
    assert meta["steps"] == 6 and meta["stopped"] == "budget"
    assert "widget-tiny" in widget.status_label.text()
    # the user's arrays are untouched
    np.testing.assert_array_equal(viewer.layers["noisy"].data, copies[0])
    np.testing.assert_array_equal(viewer.layers["clean"].data, copies[1])

    # the before/after preview: the region, denoised by the base and by the best weights
    qtbot.waitUntil(lambda: PREVIEW_LAYER in viewer.layers, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: widget.preview_worker not in widget.workers, timeout=TIMEOUT_MS)
    after, before = viewer.layers[PREVIEW_LAYER], viewer.layers[BASE_PREVIEW_LAYER]
    info = after.metadata[KEY]
    plane, (r0, c0) = tuple(info["plane"]), info["offset"]
    assert (r0, c0) == (8, 16) and after.data.shape == (1, 33, 41)
    crop = noisy[(*plane, slice(r0, r0 + 33), slice(c0, c0 + 41))]
    assert tuple(after.scale) == (1.0, 0.5, 0.5)
    assert tuple(after.translate) == (plane[0], 10 + 0.5 * r0, 20 + 0.5 * c0)
    assert info["step"] == meta["validation"]["best_step"]  # the saved weights' preview
    np.testing.assert_allclose(after.data[0], denoise(crop, model="widget-tiny"), atol=1e-4)
    np.testing.assert_allclose(before.data[0], denoise(crop, model="default"), atol=1e-4)
    # a new rectangle after the run: the preview follows it (with the saved weights)
    region.add_rectangles(np.array([[0, 0, 0], [0, 0, 31], [0, 23, 31], [0, 23, 0]], float))
    qtbot.waitUntil(lambda: after.metadata[KEY]["offset"] == [0, 0], timeout=TIMEOUT_MS)
    assert after.data.shape == before.data.shape == (1, 24, 32)
    crop = noisy[(*plane, slice(0, 24), slice(0, 32))]
    np.testing.assert_allclose(after.data[0], denoise(crop, model="widget-tiny"), atol=1e-4)
    np.testing.assert_allclose(before.data[0], denoise(crop, model="default"), atol=1e-4)
    # after the run no network is kept: the saved model is previewed by its name
    assert widget._best == "widget-tiny" and widget._base == "default"
    # the previewed image removed: its preview is cancelled
    worker = widget.preview(start=False)
    assert worker is not None
    viewer.layers.remove("noisy")
    assert widget.cancelled(worker) == ("layer 'noisy' was removed", 0)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    widget.shutdown()
    assert widget._best is None and widget._base is None
    no_leaked_threads()


def test_stop_mid_run_saves_the_best_model_so_far(
    no_leaked_threads, qtbot, viewer, widget, models_dir
):
    _pair_layers(viewer)
    widget.set_parameters(
        mode="pair_layers",
        noisy="noisy",
        clean="clean",
        max_steps=500,
        name="stopped",
        seed=0,
        settings=TINY,
        preview="off",
    )
    worker = widget.start(start=False)
    # (the Stop button, as a user would)
    worker.yielded.connect(lambda item: item[0].step >= 4 and widget.stop_button.click())
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert widget.last_error is None, widget.last_error
    meta = _training(models_dir, "stopped")
    assert meta["stopped"] == "cancelled" and 4 <= meta["steps"] < 500
    assert widget.model_name == "stopped" and "stopped" in list_models()
    text = widget.status_label.text()
    assert "Stopped at step" in text and "'stopped'" in text
    assert widget.start_button.isEnabled() and not widget.stop_button.isEnabled()
    no_leaked_threads()


def test_a_noisy_layers_only_run_uses_the_self_supervised_figure(
    no_leaked_threads, qtbot, viewer, widget, models_dir
):
    noisy, _ = _pairs(2, seed=5)
    viewer.add_image(noisy[0], name="a")
    viewer.add_image(noisy[1], name="b")
    viewer.add_image(noisy[1] * 2, name="not ticked")
    widget.set_parameters(
        mode="noisy_layers",
        noisy=["a", "b"],
        max_steps=3,
        name="selfsup",
        seed=0,
        settings=TINY,
    )
    assert [lay.name for lay in widget.noisy_layers] == ["a", "b"]
    _run(qtbot, widget)
    assert widget.last_error is None, widget.last_error
    meta = _training(models_dir, "selfsup")
    assert meta["method"] == "fine-tune (noisy)"
    assert widget.figure_name == meta["validation"]["figure_name"] != "PSNR (dB)"
    assert widget.figure_name in widget.plot.ax_val.get_ylabel()
    assert [h["step"] for h in widget.history if h["figure"] is not None] == [0, 3]
    assert widget.model_name == "selfsup" and "selfsup" in list_models()
    # no region drawn: the preview shows what is on screen of the first ticked layer
    from napari_diffdenoise._widgets.finetune import PREVIEW_LAYER

    qtbot.waitUntil(lambda: PREVIEW_LAYER in viewer.layers, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: widget.preview_worker not in widget.workers, timeout=TIMEOUT_MS)
    preview = viewer.layers[PREVIEW_LAYER]
    assert preview.metadata[KEY]["source"] == "a" and preview.data.shape == (64, 64)
    no_leaked_threads()


def test_folder_modes_give_folders_to_fine_tune(viewer, widget, tmp_path):
    import tifffile

    noisy, clean = _pairs()
    for name, stack in (("noisy", noisy), ("clean", clean)):
        (tmp_path / name).mkdir()
        for i, plane in enumerate(stack):
            tifffile.imwrite(tmp_path / name / f"im{i}.tif", plane)
    widget.set_parameters(
        mode="pair_folders", noisy=tmp_path / "noisy", clean=tmp_path / "clean", max_minutes=2
    )
    assert widget.clean_folder.isVisibleTo(widget) and not widget.noisy_list.isVisibleTo(widget)
    kwargs = widget.parameters()
    assert kwargs["pairs"] == (str(tmp_path / "noisy"), str(tmp_path / "clean"))
    assert kwargs["max_minutes"] == 2.0 and "max_steps" not in kwargs
    widget.set_parameters(mode="noisy_folder", noisy=tmp_path / "noisy", max_steps=40)
    assert not widget.clean_folder.isVisibleTo(widget)
    # "the training image" is no image to preview on here: the run copies no weights for it
    assert widget.preview_image is None and widget._snapshots["on"] is False
    viewer.add_image(noisy[0], name="shown")
    widget.set_parameters(preview="shown")
    assert widget._snapshots["on"] is True
    widget.set_parameters(preview="auto")
    assert widget._snapshots["on"] is False
    kwargs = widget.parameters()
    assert kwargs["noisy"] == str(tmp_path / "noisy") and kwargs["max_steps"] == 40
    assert "pairs" not in kwargs
    widget.set_parameters(noisy=tmp_path / "nowhere")
    assert widget.start() is None and "does not exist" in widget.last_error
    with pytest.raises(ValueError, match="unknown parameter"):
        widget.set_parameters(epochs=3)
    with pytest.raises(ValueError, match="not both"):
        widget.set_parameters(max_steps=3, max_minutes=1)


def test_an_existing_name_is_refused_with_a_visible_error(viewer, widget, models_dir):
    from napari.utils.notifications import notification_manager

    from napari_diffdenoise.model.registry import bundled_dir

    models_dir.mkdir()
    for suffix in (".safetensors", ".json"):  # a real saved model named "taken"
        shutil.copy(bundled_dir() / f"default{suffix}", models_dir / f"taken{suffix}")
    before = (models_dir / "taken.safetensors").read_bytes()
    # (the console reaches the widget under this name, as docs/fine_tuning.md says)
    assert viewer.window.dock_widgets["Fine-tune (napari-diffdenoise)"] is widget
    _pair_layers(viewer)
    widget.set_parameters(mode="pair_layers", noisy="noisy", clean="clean", name="taken")
    assert widget.start() is None
    assert "exists" in widget.last_error and "replace" in widget.last_error
    assert "exists" in widget.status_label.text() and "ff6b6b" in widget.status_label.styleSheet()
    assert "exists" in notification_manager.records[-1].message
    assert not widget.workers
    assert (models_dir / "taken.safetensors").read_bytes() == before
    # a preset's name and missing data are refused too, before any work
    widget.set_parameters(name="default")
    assert widget.start() is None and "preset" in widget.last_error
    widget.set_parameters(mode="noisy_layers", name="fresh")
    assert widget.start() is None and "tick at least one" in widget.last_error


def test_bad_data_is_reported_from_the_run(qtbot, viewer, widget, models_dir):
    noisy, clean = _pairs()
    viewer.add_image(noisy, name="noisy")
    viewer.add_image(clean[:, :50], name="cut")
    widget.set_parameters(mode="pair_layers", noisy="noisy", clean="cut", max_steps=2, name="x")
    _run(qtbot, widget)
    assert "equal shapes" in widget.last_error
    assert widget.model_name is None and "x" not in list_models()
    assert not models_dir.exists() or not any(models_dir.glob("x*"))
    assert widget.start_button.isEnabled()


def test_closing_the_widget_mid_run_cancels_without_crash_or_leaked_thread(
    no_leaked_threads, qtbot, viewer, widget, models_dir
):
    _pair_layers(viewer)
    widget.set_parameters(
        mode="pair_layers",
        noisy="noisy",
        clean="clean",
        max_steps=500,
        name="closed",
        seed=0,
        settings=TINY,
    )
    worker = widget.start(start=False)
    layers_at_close = []

    def close(item):
        if item[0].step >= 2 and not widget.closed:
            layers_at_close.append(len(viewer.layers))
            viewer.window.remove_dock_widget(widget)

    worker.yielded.connect(close)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert widget.closed
    assert worker.counter.count < 500
    no_leaked_threads()
    qtbot.wait(50)
    assert len(viewer.layers) == layers_at_close[0]  # nothing added after the close
    assert _training(models_dir, "closed")["stopped"] == "cancelled"  # the best so far saved
