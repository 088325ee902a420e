"""What the dock widgets share (``_widgets/_base.py``), in a real viewer: the worker lifecycle,
the layer pickers and the image-input filter, across the plugin's widgets."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import add_noise, synthetic_fluorescence

PLUGIN = "napari-diffdenoise"
TIMEOUT_MS = 120_000
KEY = "napari_diffdenoise"


@pytest.fixture
def denoiser(open_widget):
    return open_widget("Denoiser")


def _noisy(side=48, seed=0):
    clean = (20 + 200 * synthetic_fluorescence((side, side), kind="cells", seed=seed)).astype(
        np.float32
    )
    return add_noise(clean, "gaussian", sigma=20.0, seed=seed)


def _quits_after_its_last_step(box):
    """A generator whose cancel lands after its last step, before superqt checks for it."""
    yield 1
    box["worker"].quit()
    return "done"


# ---------------------------------------------------------------------- workers
def test_a_cancel_after_the_last_step_still_calls_on_abort(qtbot, denoiser):
    """superqt emits neither ``returned`` nor ``aborted`` then, only ``finished``."""
    calls, box = [], {}
    worker = denoiser.start_worker(
        _quits_after_its_last_step,
        box,
        on_return=lambda value: calls.append("returned"),
        on_abort=lambda: calls.append("aborted"),
        on_finish=lambda: calls.append("finished"),
        start=False,
    )
    box["worker"] = worker
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: "finished" in calls, timeout=TIMEOUT_MS)
    assert calls == ["aborted", "finished"]


def test_a_cancel_is_reported_by_default_with_its_reason(qtbot, viewer, denoiser):
    box = {}
    worker = denoiser.start_worker(_quits_after_its_last_step, box, start=False)
    box["worker"] = worker
    denoiser.show_progress(0, 1, "working")
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: not denoiser.workers, timeout=TIMEOUT_MS)
    assert denoiser.status_label.text() == "Cancelled."
    assert not denoiser.progress.isVisible()

    # the inspector's estimate, cancelled because its image was removed: said, with why
    _dock, inspector = viewer.window.add_plugin_dock_widget(PLUGIN, "Noise inspector")
    image = viewer.add_image(_noisy(), name="gone")
    inspector.set_image_layer(image)
    worker = inspector.inspect(start=False)
    viewer.layers.remove(image)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: not inspector.workers, timeout=TIMEOUT_MS)
    assert "Cancelled (layer 'gone' was removed)" in inspector.status_label.text()
    assert not inspector.progress.isVisible() and inspector.inspect_button.isEnabled()


# ---------------------------------------------------------------------- pickers
def test_a_picker_emits_once_when_its_choice_changes(viewer, denoiser):
    picker = denoiser.image_picker
    for name in "abc":
        viewer.add_image(_noisy(), name=name)
    denoiser.set_image_layer("a")
    seen = []
    picker.currentIndexChanged.connect(seen.append)
    viewer.layers.remove("a")  # the choice moves to another layer, at another index
    assert picker.layer is not None and picker.layer.name != "a"
    assert len(seen) == 1


def test_helper_layers_are_never_inputs_and_plugin_layers_are_not_followed(qtbot, viewer, denoiser):
    from napari_diffdenoise._widgets._base import refuse_image

    _dock, inspector = viewer.window.add_plugin_dock_widget(PLUGIN, "Noise inspector")
    _dock, tool = viewer.window.add_plugin_dock_widget(PLUGIN, "Time map")
    image = viewer.add_image(_noisy(), name="img")
    pickers = {
        "denoiser": denoiser.image_picker,
        "inspector": inspector.image_combo,
        "time map": tool.image_picker,
    }

    def offered(picker):
        return [picker.itemText(i) for i in range(picker.count())]

    def all_on_the_image():
        return {name: p.layer.name for name, p in pickers.items()} == dict.fromkeys(pickers, "img")

    # the inspector's σ map: a helper, offered nowhere, followed by no one
    inspector.inspect(wait=True)
    inspector.add_sigma_map_layer()
    assert viewer.layers.selection.active.name == "img σ map"
    assert all_on_the_image()
    assert all("img σ map" not in offered(p) for p in pickers.values())
    with pytest.raises(ValueError, match="σ map"):
        denoiser.set_image_layer("img σ map")

    # the Denoiser's preview and result, and a stochastic run's uncertainty
    denoiser.set_noise_source(20.0)
    denoiser.set_parameters(sampler="indi", steps=1, eta=0.5, samples=2, seed=1)
    for start in (denoiser.preview, denoiser.run):
        worker = start(start=False)
        assert worker is not None, denoiser.last_error
        with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
            worker.start()
        assert denoiser.last_error is None
    assert {"img preview", "img denoised", "img uncertainty"} <= {lay.name for lay in viewer.layers}
    assert all_on_the_image(), {n: p.layer.name for n, p in pickers.items()}
    for picker in pickers.values():
        assert "img preview" not in offered(picker) and "img uncertainty" not in offered(picker)
        assert "img denoised" in offered(picker)  # a result is an image (denoise it again)
    assert "preview" in refuse_image(viewer.layers["img preview"])
    assert "uncertainty" in refuse_image(viewer.layers["img uncertainty"])
    assert refuse_image(viewer.layers["img denoised"]) is None
    # the user's own choice in the layer list is followed, the plugin's layers included
    viewer.layers.selection.active = viewer.layers["img denoised"]
    assert {p.layer.name for p in pickers.values()} == {"img denoised"}
    viewer.layers.selection.active = viewer.layers["img preview"]  # (not an input)
    assert {p.layer.name for p in pickers.values()} == {"img denoised"}
    viewer.layers.selection.active = image
    assert all_on_the_image()
