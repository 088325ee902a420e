"""Make the screenshots in docs/images/ (run from the repository root).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/make_screenshots.py

Any display works; xvfb-run gives a virtual one. Writes docs/images/noise_inspector.png: the
Noise inspector on the spatially variant sample, with its time map.
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


if __name__ == "__main__":
    IMAGES.mkdir(parents=True, exist_ok=True)
    noise_inspector(IMAGES / "noise_inspector.png")
