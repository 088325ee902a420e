"""The Noise inspector dock widget, opened through the plugin manifest in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import (
    add_noise,
    estimate_noise,
    levels_to_time_map,
    synthetic_fluorescence,
)
from napari_diffdenoise._validation import time_map_info

PLUGIN = "napari-diffdenoise"
WIDGET = "Noise inspector"
TIMEOUT_MS = 60_000


@pytest.fixture
def inspector(open_widget):
    from napari_diffdenoise._widgets.noise_inspector import NoiseInspectorWidget

    return open_widget(WIDGET, NoiseInspectorWidget)


def run_inspection(qtbot, widget):
    """Start an estimate and wait for its worker; returns the report."""
    worker = widget.inspect(start=False)
    assert worker is not None, widget.last_error
    # determinate progress, never napari's costly busy animation (a range of 0 to 0)
    assert not widget.progress.isHidden() and widget.progress.maximum() > 0
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert widget.report is not None, widget.last_error
    return widget.report


def clean_image(shape=(160, 160), seed=0, scale=200.0, offset=20.0):
    return (offset + scale * synthetic_fluorescence(shape, kind="cells", seed=seed)).astype(
        np.float32
    )


def test_pickers_follow_viewer_layers(viewer, inspector):
    assert inspector.image_layer is None
    assert not inspector.sigma_map_button.isEnabled()
    assert not inspector.time_map_button.isEnabled()

    a = viewer.add_image(np.zeros((32, 32), np.float32), name="a")
    assert inspector.image_layer == a
    b = viewer.add_image(np.zeros((4, 32, 32), np.float32), name="b")
    items = [inspector.image_combo.itemText(i) for i in range(inspector.image_combo.count())]
    assert items == ["a", "b"]
    assert inspector.image_layer == b  # follows the layer the user selects
    assert inspector.scope_combo.isEnabled()
    viewer.layers.selection.active = a
    assert inspector.image_layer == a
    assert not inspector.scope_combo.isEnabled()
    inspector.set_image_layer(b)
    assert inspector.scope_combo.isEnabled()

    viewer.add_image(np.zeros((32, 32), np.float32), name="c")  # now the active layer
    assert inspector.image_layer.name == "c"
    inspector.set_image_layer("b")  # the user's pick in the combo box
    b.name = "renamed"
    assert inspector.image_combo.currentText() == "renamed"
    assert inspector.image_layer == b

    shapes = viewer.add_shapes(name="roi")
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="not an image")
    rois = [inspector.roi_combo.itemText(i) for i in range(inspector.roi_combo.count())]
    assert rois == ["none", "roi"]
    assert "not an image" not in [
        inspector.image_combo.itemText(i) for i in range(inspector.image_combo.count())
    ]
    inspector.set_roi_layer(shapes)
    assert inspector.roi_layer == shapes
    viewer.layers.remove(shapes)
    assert inspector.roi_layer is None

    viewer.layers.remove(b)
    assert inspector.image_layer.name in ("a", "c")
    with pytest.raises(ValueError, match="scope"):
        inspector.set_scope("everything")


def test_gaussian_verdict_sigma_map_and_time_map(qtbot, viewer, inspector):
    from napari.layers import Image, Labels
    from napari.utils.colormaps import DirectLabelColormap

    sigma = 12.0
    noisy = add_noise(clean_image(), "gaussian", sigma=sigma, seed=1)
    original = noisy.copy()
    layer = viewer.add_image(
        noisy, name="gauss", scale=(0.5, 0.5), translate=(10.0, 5.0), units=("µm", "µm")
    )

    report = run_inspection(qtbot, inspector)
    assert report.kind == "gaussian"
    assert report.sigma == pytest.approx(sigma, rel=0.1)
    text = inspector.result_text.toPlainText()
    assert "gauss" in text and "gaussian" in text
    assert inspector.sigma_map_button.isEnabled() and inspector.time_map_button.isEnabled()
    assert inspector.inspect_button.isEnabled() and not inspector.progress.isVisible()
    assert inspector.sigma_max == pytest.approx(report.sigma_max_default, rel=1e-3)
    # the figure shows the measured points, the fitted curve and the σ histogram
    assert inspector.canvas.ax_curve.collections and inspector.canvas.ax_curve.lines
    assert inspector.canvas.ax_hist.patches

    smap = inspector.add_sigma_map_layer()
    assert inspector.image_layer == layer  # the new σ map does not become the target
    assert isinstance(smap, Image)
    assert smap.name == "gauss σ map"
    assert smap.data.shape == noisy.shape and smap.data.dtype == np.float32
    np.testing.assert_allclose(smap.scale, layer.scale)
    np.testing.assert_allclose(smap.translate, layer.translate)
    assert tuple(smap.units) == tuple(layer.units)
    assert np.median(smap.data) == pytest.approx(sigma, rel=0.2)

    tmap = inspector.add_time_map_layer()
    assert isinstance(tmap, Labels)
    assert tmap.name == "gauss time map"
    assert tmap.data.shape == noisy.shape and tmap.data.dtype == np.uint8
    info = time_map_info(tmap)  # a time map by its metadata: the denoiser accepts it
    assert info["levels"] == 255 and info["units"] == "intensity units"
    assert info["sigma_max"] == pytest.approx(inspector.sigma_max)
    assert info["source"] == "gauss" and tmap.metadata["source"] == "gauss"
    np.testing.assert_allclose(tmap.scale, layer.scale)
    assert tuple(tmap.units) == tuple(layer.units)
    expected_t = report.time_map(sigma_max=inspector.sigma_max)
    np.testing.assert_allclose(
        levels_to_time_map(tmap.data, levels=255), expected_t, atol=0.5 / 255 + 1e-6
    )
    # a continuous colormap: level 0 transparent, level L = viridis(L / 255)
    cmap = tmap.colormap
    assert isinstance(cmap, DirectLabelColormap)
    assert cmap.color_dict[0][3] == 0
    from matplotlib import colormaps

    np.testing.assert_allclose(cmap.color_dict[255], colormaps["viridis"](1.0), atol=1e-6)
    np.testing.assert_allclose(cmap.color_dict[128], colormaps["viridis"](128 / 255), atol=1e-6)

    # paint from code, as a user would with the brush
    tmap.brush_size = 1
    tmap.paint((20, 30), 200)
    assert tmap.data[20, 30] == 200
    assert levels_to_time_map(tmap.data, levels=255)[20, 30] == pytest.approx(200 / 255)
    # hovering shows the σ a label stands for
    status = tmap.get_status((20, 30), world=False)["coordinates"]
    shown = float(status.split("σ (intensity units): ")[1].split(",")[0])
    assert shown == pytest.approx(200 / 255 * inspector.sigma_max, rel=1e-2)
    assert "τ: 0.784" in status

    # a custom σ_max and level count are honoured
    inspector.set_sigma_max(2 * sigma)
    inspector.set_time_levels(1000)
    tmap2 = inspector.add_time_map_layer()
    assert tmap2.data.dtype == np.uint16
    assert time_map_info(tmap2)["levels"] == 1000
    assert time_map_info(tmap2)["sigma_max"] == pytest.approx(2 * sigma)
    t2 = levels_to_time_map(tmap2.data, levels=1000)
    assert np.median(t2) == pytest.approx(0.5, abs=0.1)

    np.testing.assert_array_equal(layer.data, original)  # the input is never modified


def test_roi_restricts_the_estimate(qtbot, viewer, inspector):
    clean = clean_image((128, 192), seed=2)
    quiet = add_noise(clean, "gaussian", sigma=4.0, seed=3)
    loud = add_noise(clean, "gaussian", sigma=30.0, seed=4)
    image = np.concatenate([quiet[:, :96], loud[:, 96:]], axis=1)
    viewer.add_image(image, name="halves")

    whole = run_inspection(qtbot, inspector)
    assert whole.kind == "spatially_variant"
    assert whole.sigma_map[:, 150:].mean() > 3 * whole.sigma_map[:, :40].mean()

    rect = np.array([[4, 4], [4, 88], [124, 88], [124, 4]], dtype=float)
    viewer.add_shapes([rect], shape_type="rectangle", name="left half")
    inspector.set_image_layer("halves")
    inspector.set_roi_layer("left half")
    left = run_inspection(qtbot, inspector)
    assert left.kind == "gaussian"
    assert left.sigma == pytest.approx(4.0, rel=0.15)
    assert "left half" in inspector.result_text.toPlainText()

    empty = viewer.add_shapes(name="empty")
    inspector.set_roi_layer(empty)
    assert inspector.inspect() is None
    assert "no shapes" in inspector.last_error


def test_stack_current_slice_and_whole_stack(qtbot, viewer, inspector):
    sigmas = (4.0, 8.0, 16.0)
    clean = clean_image((128, 128), seed=5)
    stack = np.stack(
        [add_noise(clean, "gaussian", sigma=s, seed=10 + i) for i, s in enumerate(sigmas)]
    )
    original = stack.copy()
    viewer.add_image(stack, name="stack")
    assert inspector.scope_combo.isEnabled()
    assert inspector.scope == "slice"

    viewer.dims.set_current_step(0, 2)
    report = run_inspection(qtbot, inspector)
    assert report.sigma == pytest.approx(sigmas[2], rel=0.1)
    smap = inspector.add_sigma_map_layer()
    assert smap.data.shape == (128, 128)
    assert smap.metadata["plane"] == (2,)
    tmap = inspector.add_time_map_layer()
    assert tmap.data.shape == (128, 128)
    assert tmap.metadata["scope"] == "slice"

    viewer.dims.set_current_step(0, 0)
    assert run_inspection(qtbot, inspector).sigma == pytest.approx(sigmas[0], rel=0.1)

    inspector.set_scope("stack")
    report = run_inspection(qtbot, inspector)
    tmap = inspector.add_time_map_layer()
    assert tmap.data.shape == stack.shape
    assert tmap.metadata["scope"] == "stack"
    assert report.sigma_map.shape == stack.shape
    np.testing.assert_array_equal(stack, original)


def test_bad_layers_show_an_error(qtbot, viewer, inspector):
    # nothing to inspect
    assert inspector.inspect() is None
    assert "no image layer" in inspector.last_error

    # RGB is refused before any work starts
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    viewer.add_image(rgb, name="rgb", rgb=True)
    assert inspector.inspect() is None
    assert "RGB" in inspector.last_error
    assert inspector.status_label.text().startswith("Error")
    assert not inspector.time_map_button.isEnabled()

    # an error raised by the API inside the worker lands in the status line
    viewer.add_image(np.zeros((1, 64), np.float32), name="one row")
    inspector.set_image_layer("one row")
    worker = inspector.inspect(start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    assert inspector.report is None
    assert "must be at least 8 × 8 pixels" in inspector.last_error  # the one size rule
    assert inspector.inspect_button.isEnabled()
    assert not inspector.sigma_map_button.isEnabled()

    # a constant image is not an error: no noise, an all-zero time map
    viewer.add_image(np.full((64, 64), 7.0, np.float32), name="flat")
    inspector.set_image_layer("flat")
    report = run_inspection(qtbot, inspector)
    assert report.sigma == 0
    assert report.kind == "none"  # issue 17: it was "gaussian noise (confidence 100 %)"
    assert inspector.status_label.text() == "flat: no noise (the image is constant)."
    text = inspector.result_text.toPlainText()
    assert "Noise: none" in text and "gaussian" not in text and "confidence" not in text
    assert inspector.add_sigma_map_layer().data.max() == 0
    assert not inspector.add_time_map_layer().data.any()

    # the widget still works afterwards
    viewer.add_image(add_noise(clean_image((96, 96)), "gaussian", sigma=10.0, seed=0), name="ok")
    inspector.set_image_layer("ok")
    assert run_inspection(qtbot, inspector).kind == "gaussian"


def test_samples_through_the_widget(qtbot, viewer, inspector):
    """Poisson camera data and salt-and-pepper impulses, as a newcomer would try them."""
    viewer.open_sample(PLUGIN, "poisson")
    noisy = viewer.layers["blobs poisson (noisy)"]
    assert inspector.image_layer == noisy  # the sample's noisy layer is picked
    report = run_inspection(qtbot, inspector)
    assert report.kind == "poisson"
    assert 1.0 < report.gain < 4.0  # 2 ADU per photon (loose: read noise, offset)
    lo, hi = report.noise_std([200.0, 1000.0])
    assert hi > 1.5 * lo  # the noise grows with the signal
    smap = inspector.add_sigma_map_layer()
    np.testing.assert_allclose(smap.scale, noisy.scale)  # 0.1 µm pixels
    assert tuple(smap.units) == tuple(noisy.units)

    viewer.open_sample(PLUGIN, "salt_and_pepper")
    inspector.set_image_layer("filaments salt & pepper (noisy)")
    report = run_inspection(qtbot, inspector)
    assert report.kind == "salt_and_pepper"
    assert report.impulse_fraction == pytest.approx(0.05, rel=0.2)
    tmap = inspector.add_time_map_layer()
    impulses = report.impulse_mask
    assert impulses is not None and impulses.any()
    t = levels_to_time_map(tmap.data, levels=time_map_info(tmap)["levels"])
    np.testing.assert_allclose(t[impulses], report.time_map()[impulses], atol=0.5 / 255 + 1e-6)
    assert "salt" in inspector.result_text.toPlainText()


def test_plot_shows_the_curve_the_poisson_sigma_map_follows(qtbot):
    """For Poisson noise the σ map follows the measured level sets, not the fitted line
    (docs/noise.md): the plot draws both; for Gaussian noise only the fit."""
    from napari_diffdenoise import estimate_noise
    from napari_diffdenoise._widgets._plots import NoisePlotCanvas

    canvas = NoisePlotCanvas()
    qtbot.addWidget(canvas)
    clean = 1000.0 * synthetic_fluorescence((192, 192), kind="mixed", seed=3).astype(float)
    poisson = estimate_noise(add_noise(clean, "poisson_gaussian", gain=2.0, read_noise=3.0, seed=0))
    assert poisson.kind == "poisson"
    canvas.plot_report(poisson)
    lines = {line.get_label(): line for line in canvas.ax_curve.get_lines()}
    assert set(lines) == {"fit", "σ map"}
    order = np.argsort(poisson.curve_means)
    np.testing.assert_allclose(lines["σ map"].get_xdata(), poisson.curve_means[order])
    np.testing.assert_allclose(lines["σ map"].get_ydata(), poisson.curve_variances[order])
    gaussian = estimate_noise(add_noise(clean, "gaussian", sigma=20.0, seed=0))
    assert gaussian.kind == "gaussian"
    canvas.plot_report(gaussian)
    assert [line.get_label() for line in canvas.ax_curve.get_lines()] == ["fit"]


# ------------------------------------------------------------------ issue 17, found as a new user
def _user_texts(inspector) -> str:
    return "\n".join([inspector.result_text.toPlainText(), inspector.status_label.text()])


def test_gain_and_baseline_only_where_they_mean_something(qtbot, viewer, inspector):
    """Spatially variant noise: no gain / baseline variance (a by-product of a fit that does not
    describe it). Shot noise with a camera offset: the negative baseline is explained."""
    viewer.open_sample(PLUGIN, "spatially_variant")
    report = run_inspection(qtbot, inspector)
    assert report.kind == "spatially_variant"
    text = _user_texts(inspector)
    assert "gain" not in text and "baseline" not in text
    assert "σ varies over the image" in text

    viewer.open_sample(PLUGIN, "poisson")
    inspector.set_image_layer("blobs poisson (noisy)")
    report = run_inspection(qtbot, inspector)
    assert report.kind == "poisson" and report.baseline_variance < 0
    text = _user_texts(inspector)
    assert "the baseline variance is negative" in text
    # the zero of the photon counts: the sample's 100 ADU camera offset
    assert report.count_zero == pytest.approx(100.0, abs=15.0)
    assert f"x ≈ {report.count_zero:.4g}" in text and "dark offset" in text


def test_sigma_is_written_sigma_everywhere(qtbot, viewer, inspector):
    for sample, name in (
        ("poisson", "blobs poisson (noisy)"),
        ("spatially_variant", "mixed spatially variant (noisy)"),
        ("salt_and_pepper", "filaments salt & pepper (noisy)"),
        ("gaussian", "cells gaussian σ=15 (noisy)"),
    ):
        viewer.open_sample(PLUGIN, sample)
        inspector.set_image_layer(name)
        run_inspection(qtbot, inspector)
        text = _user_texts(inspector)
        assert "σ" in text and "sigma" not in text.lower(), text


def test_fitted_curve_meets_the_points_on_the_spatially_variant_sample(qtbot):
    """The level-set points averaged the quieter half of each level set's patches, which with
    noise that depends on the position is the quiet region: 10× below the line (the mean σ²).
    Now they are the σ map² per level set, and the line sits among them."""
    from napari_diffdenoise._sample_data import spatially_variant_sample
    from napari_diffdenoise._widgets._plots import NoisePlotCanvas

    (_, _, _), (noisy, _, _) = spatially_variant_sample()
    report = estimate_noise(noisy)
    assert report.kind == "spatially_variant"
    canvas = NoisePlotCanvas()
    qtbot.addWidget(canvas)
    canvas.plot_report(report)
    lines = {line.get_label(): line for line in canvas.ax_curve.get_lines()}
    line = float(np.median(lines["mean σ²"].get_ydata()))
    points = np.asarray(canvas.ax_curve.collections[0].get_offsets())[:, 1]
    assert 0.5 < float(np.median(points)) / line < 2.0
    assert points.min() < line < points.max()
    # the points are the σ map² averaged per level set: within its range
    assert np.percentile(report.sigma_map, 1) ** 2 <= points.min()
    assert points.max() <= np.percentile(report.sigma_map, 99.9) ** 2


def test_verdict_box_shows_every_line(qtbot, viewer, inspector):
    """The verdict box had a fixed 170 px and clipped the verdict in a narrow dock: it now wraps
    at its width and grows to its text, with no scroll bar."""
    from napari_diffdenoise._widgets.noise_inspector import VerdictBox

    viewer.open_sample(PLUGIN, "poisson")  # the longest verdict
    run_inspection(qtbot, inspector)
    box = inspector.result_text
    assert isinstance(box, VerdictBox)
    spacing = box.fontMetrics().lineSpacing()
    lines = box.document().documentLayout().documentSize().height()
    assert lines >= len(box.toPlainText().splitlines())
    assert box.minimumHeight() == box.maximumHeight() >= lines * spacing  # sized to its text

    narrow = VerdictBox()  # shown on its own at a narrow dock's width
    qtbot.addWidget(narrow)
    narrow.resize(260, 50)
    narrow.show()
    qtbot.waitExposed(narrow)
    narrow.setPlainText(box.toPlainText())
    wrapped = narrow.document().documentLayout().documentSize().height()
    assert wrapped > len(box.toPlainText().splitlines())  # long lines wrap...
    qtbot.waitUntil(lambda: narrow.verticalScrollBar().maximum() == 0, timeout=5_000)
    assert narrow.viewport().height() >= wrapped * spacing  # ...and every line is shown


def test_sigma_and_time_maps_keep_the_image_axes(viewer, inspector):
    """The σ map and the time map sit on the image's last axes with its axis labels too."""
    stack = np.stack(
        [add_noise(clean_image((64, 64)), "gaussian", sigma=8.0, seed=s) for s in (1, 2)]
    )
    viewer.add_image(
        stack,
        name="st",
        scale=(3.0, 0.5, 0.5),
        units=("s", "µm", "µm"),
        axis_labels=("t", "y", "x"),
    )
    inspector.inspect(wait=True)
    smap = inspector.add_sigma_map_layer()
    tmap = inspector.add_time_map_layer()
    for layer in (smap, tmap):
        assert tuple(layer.axis_labels) == ("y", "x")
        assert tuple(layer.scale) == (0.5, 0.5)
        assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert smap.metadata["napari_diffdenoise"]["role"] == "sigma_map"
