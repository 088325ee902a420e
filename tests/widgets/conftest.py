"""What every widget test shares: a real viewer and the plugin's dock widgets opened as a user
opens them (Plugins > napari-diffdenoise > ...), through the manifest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

PLUGIN = "napari-diffdenoise"


@pytest.fixture
def viewer(make_napari_viewer):
    """A real napari viewer (under Xvfb), closed by napari's fixture after the test."""
    return make_napari_viewer()


@pytest.fixture
def open_widget(viewer) -> Callable[..., Any]:
    """``open_widget("Denoiser", DenoiserWidget)``: the dock widget of that manifest name,
    added to ``viewer`` through ``add_plugin_dock_widget`` (checked to be of that class)."""

    def open_(name: str, cls: type | None = None) -> Any:
        _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        if cls is not None:
            assert isinstance(widget, cls)
        return widget

    return open_


@pytest.fixture
def no_leaked_threads(qtbot) -> Callable[[], None]:
    """A check to call at the end of a run: every Qt worker has ended (a closed widget or a
    removed layer left none behind) and so has every engine thread (``diffdenoise-*``)."""
    import threading

    from qtpy.QtCore import QThreadPool

    def check() -> None:
        assert QThreadPool.globalInstance().waitForDone(60_000)
        qtbot.waitUntil(
            lambda: not [t for t in threading.enumerate() if t.name.startswith("diffdenoise-")],
            timeout=30_000,
        )

    return check
