"""The Denoiser dock widget, opened through the plugin manifest in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import add_noise, denoise, synthetic_fluorescence

PLUGIN = "napari-diffdenoise"
TIMEOUT_MS = 120_000


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer):
    from napari_diffdenoise._widgets.denoiser import DenoiserWidget

    _dock, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoiser")
    assert isinstance(w, DenoiserWidget)
    return w


def _noisy(shape=(96, 96), sigma=20.0, seed=0):
    clean = (20 + 200 * synthetic_fluorescence(shape, kind="cells", seed=seed)).astype(np.float32)
    return clean, add_noise(clean, "gaussian", sigma=sigma, seed=seed)


def _run(qtbot, widget):
    worker = widget.run(start=False)
    assert worker is not None, widget.last_error
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    return worker


def test_denoise_with_sigma_adds_layer_matching_api(qtbot, viewer, widget):
    clean, noisy = _noisy()
    before = noisy.copy()
    layer = viewer.add_image(noisy, name="noisy", scale=(0.5, 0.5))
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
    assert progress and progress[-1][0] == progress[-1][1]
    np.testing.assert_array_equal(layer.data, before)
    assert np.mean((out.data - clean) ** 2) < np.mean((noisy - clean) ** 2) / 2


def test_non_local_step_setting_reaches_denoise(qtbot, viewer, widget):
    """The 'non-local' choice: the preset's default until set, then the given Wiener weight."""
    _, noisy = _noisy()
    viewer.add_image(noisy, name="noisy")
    widget.set_noise_source(20.0)
    widget.set_parameters(model="quality")
    assert "wiener" not in widget._gather()[2]
    widget.set_parameters(model="default", wiener=0.5)
    assert widget._gather()[2]["wiener"] == 0.5
    _run(qtbot, widget)
    np.testing.assert_allclose(
        viewer.layers["noisy denoised"].data, denoise(noisy, sigma=20.0, wiener=0.5), atol=1e-4
    )
    widget.set_parameters(wiener="auto")
    assert widget._gather()[2]["wiener"] == "auto"
    widget.set_parameters(wiener=None)
    assert "wiener" not in widget._gather()[2]
    with pytest.raises(ValueError, match="not offered"):
        widget.set_parameters(wiener=0.3)


def test_auto_non_local_weights_are_shown_and_kept(qtbot, viewer, widget):
    """``wiener="auto"``: the weights SURE chose appear in the status line and the new layer's
    metadata, the same as the API's."""
    _, noisy = _noisy()
    viewer.add_image(noisy, name="noisy")
    widget.set_noise_source(20.0)
    widget.set_parameters(model="default", wiener="auto")
    _run(qtbot, widget)
    assert widget.last_error is None
    ref = denoise(noisy, sigma=20.0, wiener="auto", return_details=True)
    meta = viewer.layers["noisy denoised"].metadata
    assert meta["wiener_weights"] == ref.wiener_weights
    assert meta["threshold_weights"] == ref.threshold_weights
    assert meta["fine_patch_weights"] == ref.fine_weights
    text = widget.status_label.text()
    assert (
        f"Wiener {ref.wiener_weights[0]:.2f}, thresholding {ref.threshold_weights[0]:.2f}, "
        f"4×4 patches {ref.fine_weights[0]:.2f}"
    ) in text
    np.testing.assert_allclose(viewer.layers["noisy denoised"].data, ref.image, atol=1e-4)


def test_blind_and_painted_time_map(qtbot, viewer, widget):
    _, noisy = _noisy(seed=1)
    layer = viewer.add_image(noisy, name="img")
    levels = np.full(noisy.shape, 40, np.uint8)
    levels[:, :30] = 0  # painted "leave alone"
    viewer.add_labels(levels, name="tm", metadata={"time_levels": 255, "sigma_max": 100.0})
    widget.set_image_layer(layer)
    widget.set_noise_source("tm")
    _run(qtbot, widget)
    out = viewer.layers["img denoised"].data
    np.testing.assert_array_equal(out[:, :30], noisy[:, :30])
    assert not np.allclose(out[:, 30:], noisy[:, 30:])

    widget.set_noise_source("estimate")
    _run(qtbot, widget)
    assert widget.result.report is not None


def test_stochastic_run_adds_uncertainty(qtbot, viewer, widget):
    _, noisy = _noisy(shape=(64, 64), seed=2)
    viewer.add_image(noisy, name="s")
    widget.set_noise_source(20.0)
    widget.set_parameters(sampler="indi", steps=2, eta=0.5, samples=2, seed=1)
    _run(qtbot, widget)
    unc = viewer.layers["s uncertainty"]
    assert unc.data.shape == noisy.shape and float(unc.data.mean()) > 0


def test_current_slice_of_a_stack(qtbot, viewer, widget):
    _, noisy = _noisy(shape=(64, 64), seed=3)
    stack = np.stack([noisy, noisy * 0.5, noisy * 2])
    viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 2)
    widget.set_noise_source(20.0)
    widget.set_parameters(scope="slice")
    _run(qtbot, widget)
    out = viewer.layers["stack denoised (plane (2,))"].data
    assert out.shape == noisy.shape
    np.testing.assert_allclose(out, denoise(stack[2], sigma=20.0), atol=1e-4)


def test_cancel_adds_nothing(qtbot, viewer, widget):
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


def test_bad_input_shows_error(viewer, widget):
    assert widget.run() is None  # no image at all
    assert "no image" in widget.last_error
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="rgb", rgb=True)
    assert widget.run() is None
    assert "RGB" in widget.last_error


def test_model_list_is_the_api_list_with_each_preset_described(widget):
    from qtpy.QtCore import Qt

    from napari_diffdenoise import list_models
    from napari_diffdenoise.model.registry import PRESETS

    combo = widget.model_combo
    names = [combo.itemData(i) for i in range(combo.count())]
    assert names == list_models()
    for i, name in enumerate(names):
        tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert tip == (
            PRESETS[name].description if name in PRESETS else "a saved (fine-tuned) model"
        )


def test_weights_text_spans_planes_and_says_when_skipped():
    from napari_diffdenoise._widgets.denoiser import _weights_text
    from napari_diffdenoise.engine.denoise import DenoiseResult

    img = np.zeros((2, 8, 8), np.float32)
    assert _weights_text(DenoiseResult(img, None, img, None)) == ""
    two = DenoiseResult(img, None, img, None, [0.25, 0.75], [0.0, 0.6], [0.4, 0.4])
    assert _weights_text(two) == (
        "; non-local weights over 2 planes: Wiener 0.25-0.75, "
        "thresholding 0.00-0.60, 4×4 patches 0.40"
    )
    assert "skipped" in _weights_text(DenoiseResult(img, None, img, None, [], [], []))
