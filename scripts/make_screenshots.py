"""Make the screenshots in docs/images/ (run from the repository root).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/make_screenshots.py

Any display works; xvfb-run gives a virtual one. Writes docs/images/noise_inspector.png: the
Noise inspector on the spatially variant sample, with its time map; docs/images/denoiser.png:
the Denoiser's live preview with a painted time map.
"""

from __future__ import annotations

import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait_for(condition, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the widget did not finish in time")
        QApplication.processEvents()
        time.sleep(0.01)


def noise_inspector(path: Path) -> None:
    viewer = napari.Viewer()
    viewer.window.resize(1400, 900)
    viewer.open_sample("napari-diffdenoise", "spatially_variant")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-diffdenoise", "Noise inspector")
    worker = inspector.inspect()
    wait_for(lambda: not worker.is_running and inspector.report is not None)
    inspector.add_time_map_layer()
    for _ in range(20):
        QApplication.processEvents()
    viewer.window._qt_window.grab().save(str(path))
    viewer.close()
    print(f"wrote {path}")


def denoiser(path: Path) -> None:
    """The Denoiser's live preview with a painted time map: the left third painted "leave
    alone", a square in the middle painted gentler."""
    import numpy as np

    from napari_diffdenoise import estimate_noise
    from napari_diffdenoise.noise.timemap import new_time_map, time_map_metadata

    viewer = napari.Viewer()
    viewer.window.resize(1300, 820)
    clean, noisy = viewer.open_sample("napari-diffdenoise", "gaussian")
    clean.visible = False
    sigma = float(np.median(estimate_noise(noisy.data).start_sigma_map))
    levels = new_time_map(noisy.data.shape, sigma=sigma, sigma_max=4 * sigma)
    h, w = levels.shape
    levels[:, : w // 3] = 0
    levels[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] //= 2
    viewer.layers.selection.active = noisy
    _, widget = viewer.window.add_plugin_dock_widget("napari-diffdenoise", "Denoiser")
    time_map = viewer.add_labels(
        levels,
        name=f"{noisy.name} time map",
        opacity=0.35,
        metadata=time_map_metadata(255, 4 * sigma, source=noisy.name),
        scale=noisy.scale,
        translate=noisy.translate,
        units=noisy.units,
    )
    widget.set_image_layer(noisy)
    widget.set_noise_source(time_map.name)
    widget.set_parameters(live_preview=True)
    widget.preview()
    wait_for(lambda: widget.preview_layer is not None and not widget.workers)
    noisy.visible = False
    viewer.layers.move(viewer.layers.index(widget.preview_layer), len(viewer.layers) - 1)
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    viewer.window._qt_window.grab().save(str(path))
    viewer.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    IMAGES.mkdir(parents=True, exist_ok=True)
    noise_inspector(IMAGES / "noise_inspector.png")
    denoiser(IMAGES / "denoiser.png")
