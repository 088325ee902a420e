"""The "Noise inspector" dock widget: what noise is in this image, how strong, and where.

A thin Qt skin over the public API. Everything this widget shows or adds to the viewer comes
from :func:`napari_diffdenoise.estimate_noise` (run in the shared base class's background
worker, :class:`~._base.WorkerDockWidget`), the returned
:class:`~napari_diffdenoise.NoiseReport` and :func:`napari_diffdenoise.time_map_to_levels`;
``docs/inspector.md`` has the console recipe that reproduces it step by step.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._progress import run_to_end
from .._validation import check_not_rgb
from ._base import LayerPicker, WorkerDockWidget, refuse_image
from ._combo import layer_by_id
from ._layers import (
    add_sigma_map_layer,
    add_time_map_layer,
    image_plane_index,
    layer_array,
    shapes_to_mask,
)
from ._plots import NoisePlotCanvas

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.qt.threading import GeneratorWorker

    from napari_diffdenoise.noise.report import NoiseReport

__all__ = ["NoiseInspectorWidget", "VerdictBox"]

NO_ROI = "none"
SCOPE_SLICE = "slice"
SCOPE_STACK = "stack"
_SCOPE_LABELS = {SCOPE_SLICE: "current slice", SCOPE_STACK: "whole stack"}
_MAX_LEVELS = 4095


class VerdictBox(QPlainTextEdit):
    """Read-only text that wraps at the widget's width and grows to show every line (the
    verdict never clips and never needs a scroll bar)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.TypeWriter)
        mono.setPointSize(8)
        self.setFont(mono)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def _fit_height(self, *_: Any) -> None:
        lines = max(2.0, self.document().documentLayout().documentSize().height())
        margins = self.contentsMargins()
        height = (
            lines * self.fontMetrics().lineSpacing()
            + 2 * self.document().documentMargin()
            + margins.top()
            + margins.bottom()
            + 2
        )
        self.setFixedHeight(int(np.ceil(height)))


def _estimate(data: Any, roi: np.ndarray | None) -> Generator[int, None, NoiseReport]:
    """Worker body: the public API call, nothing else (one step, then the report)."""
    from napari_diffdenoise import estimate_noise

    report = estimate_noise(data, roi=roi)
    yield 1
    return report


#: images offered for inspection: RGB ones too (inspect() says why it refuses them)
_refuse_image = partial(refuse_image, allow_rgb=True)


def _refuse_roi(layer: Any) -> str | None:
    from napari.layers import Shapes

    return None if isinstance(layer, Shapes) else f"{layer.name!r} is not a Shapes layer"


class NoiseInspectorWidget(WorkerDockWidget):
    """Estimate the noise of an image layer and turn it into a σ map or a paintable time map.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose Image (and Shapes, for a region of interest) layers are offered.

    Attributes
    ----------
    report : NoiseReport or None
        The last estimate (``None`` before the first one or after an error).
    worker : GeneratorWorker or None
        The worker of the last :meth:`inspect` call.
    last_error : str or None
        The message of the last error shown in the status line.

    The console methods (``set_image_layer``, ``set_roi_layer``, ``set_scope``, ``inspect``,
    ``set_sigma_max``, ``set_time_levels``, ``add_sigma_map_layer``, ``add_time_map_layer``)
    are stable, for napari's console and scripts.
    """

    title = "Noise inspector"

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        from napari_diffdenoise.noise.timemap import DEFAULT_TIME_LEVELS

        self.report: NoiseReport | None = None
        self.worker: GeneratorWorker | None = None
        self._report_source: Any = None  # unique_id of the inspected layer
        self._report_meta: dict[str, Any] = {}

        # --- input ---------------------------------------------------------------------------
        self.image_combo = LayerPicker(self.viewer, _refuse_image, follow_selection=True)
        self.image_combo.setToolTip("Image layer to inspect (single channel, 2D or nD)")
        self.roi_combo = LayerPicker(self.viewer, _refuse_roi, extra=[(NO_ROI, None)])
        self.pickers = [self.image_combo, self.roi_combo]
        self.roi_combo.setToolTip(
            "Optional Shapes layer: only pixels inside its shapes are used for the estimate"
        )
        self.scope_combo = QComboBox()
        for key, label in _SCOPE_LABELS.items():
            self.scope_combo.addItem(label, key)
        self.scope_combo.setToolTip(
            "nD images: inspect the plane on screen, or a sample of planes of the whole stack"
        )
        self.inspect_button = QPushButton("Inspect")
        self.inspect_button.setToolTip("Estimate the noise type and level (runs in the background)")
        self.set_status("Pick an image and press Inspect.")

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("ROI (shapes)", self.roi_combo)
        form.addRow("scope", self.scope_combo)

        # --- results -------------------------------------------------------------------------
        self.result_text = VerdictBox()
        self.result_text.setPlaceholderText("verdict, scores and noise parameters appear here")
        self.canvas = NoisePlotCanvas(self)
        self.canvas.setMinimumHeight(300)

        # --- outputs -------------------------------------------------------------------------
        self.sigma_max_spin = QDoubleSpinBox()
        self.sigma_max_spin.setDecimals(4)
        self.sigma_max_spin.setRange(0.0, 1e12)
        self.sigma_max_spin.setToolTip(
            "Noise level (image units) that time t = 1 stands for; set from the report"
        )
        self.levels_spin = QSpinBox()
        self.levels_spin.setRange(1, _MAX_LEVELS)
        self.levels_spin.setValue(int(DEFAULT_TIME_LEVELS))
        self.levels_spin.setToolTip("Time-map label L stands for t = L / levels")
        self.sigma_map_button = QPushButton("Add σ map")
        self.sigma_map_button.setToolTip("Add the per-pixel noise level as an Image layer")
        self.time_map_button = QPushButton("Create time map")
        self.time_map_button.setToolTip(
            "Add a paintable Labels layer, label = round(t · levels), t = σ / σ_max"
        )
        out_form = QFormLayout()
        out_form.addRow("σ_max (image units)", self.sigma_max_spin)
        out_form.addRow("time levels", self.levels_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sigma_map_button)
        buttons.addWidget(self.time_map_button)
        out_box = QGroupBox("σ map and time map")
        out_layout = QVBoxLayout(out_box)
        out_layout.addLayout(out_form)
        out_layout.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.inspect_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.result_text)
        layout.addWidget(self.canvas)
        layout.addWidget(out_box)
        layout.addStretch(1)

        self.inspect_button.clicked.connect(self._on_inspect_clicked)
        self.sigma_map_button.clicked.connect(self._on_sigma_map_clicked)
        self.time_map_button.clicked.connect(self._on_time_map_clicked)
        self.image_combo.currentIndexChanged.connect(self._update_scope_enabled)
        self.sigma_max_spin.valueChanged.connect(self._replot)
        self._set_outputs_enabled(False)

        self._update_scope_enabled()

    # ------------------------------------------------------------------ layer pickers
    @property
    def image_layer(self) -> napari.layers.Image | None:
        """The selected Image layer (``None`` when the viewer has none)."""
        return self.image_combo.layer

    def set_image_layer(self, layer: napari.layers.Image | str) -> None:
        """Select the image to inspect by layer or layer name."""
        self.image_combo.pick(layer)

    @property
    def roi_layer(self) -> napari.layers.Shapes | None:
        """The Shapes layer used as region of interest, or ``None``."""
        return self.roi_combo.layer

    def set_roi_layer(self, layer: napari.layers.Shapes | str | None) -> None:
        """Use the shapes of ``layer`` as region of interest; ``None`` for the whole plane."""
        if layer is None:
            self.roi_combo.pick_data(None)
        else:
            self.roi_combo.pick(layer)

    @property
    def scope(self) -> str:
        """``"slice"`` (the plane on screen) or ``"stack"`` (a sample of planes of the stack)."""
        return str(self.scope_combo.currentData())

    def set_scope(self, scope: str) -> None:
        """Set the scope for nD images: ``"slice"`` or ``"stack"``."""
        if scope not in _SCOPE_LABELS:
            raise ValueError(f"scope must be one of {sorted(_SCOPE_LABELS)}, got {scope!r}")
        self.scope_combo.setCurrentIndex(self.scope_combo.findData(scope))

    def _update_scope_enabled(self, *_: Any) -> None:
        layer = self.image_layer
        nd = layer is not None and not layer.rgb and layer_array(layer).ndim > 2
        self.scope_combo.setEnabled(bool(nd))

    # ------------------------------------------------------------------ inspection
    def _gather(self) -> tuple[napari.layers.Image, Any, np.ndarray | None, dict[str, Any]]:
        """The data, ROI and provenance of the next estimate (raises ValueError on bad input)."""
        layer = self.image_layer
        if layer is None:
            raise ValueError("no image layer: open an image (or File > Open Sample) first")
        data = layer_array(layer)
        check_not_rgb(layer, data.shape, name=repr(layer.name))
        meta: dict[str, Any] = {"scope": SCOPE_STACK if data.ndim == 2 else self.scope}
        if data.ndim > 2 and self.scope == SCOPE_SLICE:
            plane = image_plane_index(self.viewer, layer)
            data = data[plane]
            meta["plane"] = plane
        roi_layer = self.roi_layer
        roi = None if roi_layer is None else shapes_to_mask(roi_layer, layer)
        if roi_layer is not None:
            meta["roi"] = roi_layer.name
        return layer, data, roi, meta

    def inspect(self, *, start: bool = True, wait: bool = False) -> GeneratorWorker | None:
        """Estimate the noise of the selected image in a background thread.

        Returns the worker (already started unless ``start=False``: tests connect to its
        ``returned``/``finished`` signals first, then call ``worker.start()``), or ``None`` when
        the input is rejected before any work starts (the reason is in :attr:`last_error`).
        With ``wait=True`` (the console, scripts) the estimate runs here and now, the widget
        shows it as after a background run, and ``None`` is returned: read :attr:`report`.
        """
        if self.worker is not None and self.worker in self.workers:
            self.set_status("An estimate is already running.")
            return None
        try:
            layer, data, roi, meta = self._gather()
        except (ValueError, TypeError) as exc:
            self.show_error(exc)
            return None
        self.report = None
        self.last_error = None
        self._set_outputs_enabled(False)
        source = layer.unique_id
        if wait:
            try:
                report = run_to_end(_estimate(data, roi))
            except (ValueError, TypeError) as exc:
                self.show_error(exc)
                return None
            self._on_returned(report, source, meta)
            return None
        self.inspect_button.setEnabled(False)
        # determinate (0 of 1 until the estimate returns): napari's busy animation alone costs
        # the event loop three quarters of its ticks under software OpenGL
        self.show_progress(0, 1, "estimating the noise…")
        where = f" plane {meta['plane']}" if "plane" in meta else ""
        self.set_status(f"Inspecting {layer.name!r}{where}…")
        self.worker = self.start_worker(
            _estimate,
            data,
            roi,
            on_return=lambda report: self._on_returned(report, source, meta),
            on_error=self._on_errored,
            on_finish=self._on_finished,  # (a cancel is shown by the base: its reason)
            layers=(layer,),
            start=start,
        )
        return self.worker

    run = inspect

    def _on_inspect_clicked(self, *_: Any) -> None:
        self.inspect()

    def _on_returned(self, report: NoiseReport, source: Any, meta: dict) -> None:
        self.report = report
        self._report_source = source
        self._report_meta = dict(meta)
        layer = self._layer_by_id(source)
        name = layer.name if layer is not None else "(removed layer)"
        where = f", plane {meta['plane']}" if "plane" in meta else ""
        roi = f", ROI {meta['roi']!r}" if "roi" in meta else ""
        header = f"image: {name}{where}{roi} (noise levels in image units)"
        # the summary shows the gain / baseline fit only where it describes the noise (Poisson)
        self.result_text.setPlainText("\n".join([header, report.summary()]))
        self.sigma_max_spin.blockSignals(True)
        self.sigma_max_spin.setValue(float(report.sigma_max_default))
        self.sigma_max_spin.blockSignals(False)
        self._replot()
        self._set_outputs_enabled(True)
        if report.kind == "none":
            self.set_status(f"{name}: no noise (the image is constant).")
        else:
            self.set_status(
                f"{name}: {report.kind.replace('_', ' ')} noise"
                f" (confidence {report.confidence:.0%})."
            )
        self.viewer.update_console({"noise_report": report})

    def _on_errored(self, exc: BaseException) -> None:
        self.report = None
        self._set_outputs_enabled(False)
        self.show_error(exc)

    def _on_finished(self) -> None:
        self.inspect_button.setEnabled(True)
        self.progress.setVisible(False)

    def _replot(self, *_: Any) -> None:
        if self.report is not None:
            self.canvas.plot_report(self.report, sigma_max=self.sigma_max)

    # ------------------------------------------------------------------ outputs
    @property
    def sigma_max(self) -> float:
        """σ_max in image units used for the time map (set from the report, editable)."""
        return float(self.sigma_max_spin.value())

    def set_sigma_max(self, value: float) -> None:
        self.sigma_max_spin.setValue(float(value))

    @property
    def time_levels(self) -> int:
        return int(self.levels_spin.value())

    def set_time_levels(self, levels: int) -> None:
        self.levels_spin.setValue(int(levels))

    def _layer_by_id(self, unique_id: Any) -> napari.layers.Image | None:
        return layer_by_id(self.viewer, unique_id)

    def _report_layer(self) -> napari.layers.Image:
        if self.report is None:
            raise ValueError("no noise report yet: press Inspect first")
        layer = self._layer_by_id(self._report_source)
        if layer is None:
            raise ValueError("the inspected image layer was removed; inspect an image again")
        return layer

    def add_sigma_map_layer(self) -> napari.layers.Image:
        """Add the report's σ map (image units) as an Image layer over the inspected image."""
        layer = self._report_layer()
        assert self.report is not None
        with self.holding():  # (the new σ map is selected; keep inspecting the image)
            return add_sigma_map_layer(
                self.viewer, self.report.sigma_map, layer, metadata=dict(self._report_meta)
            )

    def add_time_map_layer(self) -> napari.layers.Labels:
        """Add the time map as a paintable Labels layer (label L means t = L / levels)."""
        from napari_diffdenoise import time_map_to_levels

        layer = self._report_layer()
        assert self.report is not None
        sigma_max = self.sigma_max
        if not sigma_max > 0:
            raise ValueError("σ_max must be positive")
        levels = self.time_levels
        t = self.report.time_map(sigma_max=sigma_max)
        # a map of the inspected plane of a stack stays 2D: the denoiser applies it to every plane
        return add_time_map_layer(
            self.viewer,
            time_map_to_levels(t, levels=levels),
            layer,
            levels=levels,
            sigma_max=sigma_max,
            metadata=dict(self._report_meta),
        )

    def _on_sigma_map_clicked(self, *_: Any) -> None:
        try:
            self.add_sigma_map_layer()
        except (ValueError, TypeError) as exc:
            self.show_error(exc)

    def _on_time_map_clicked(self, *_: Any) -> None:
        try:
            self.add_time_map_layer()
        except (ValueError, TypeError) as exc:
            self.show_error(exc)

    # ------------------------------------------------------------------ status
    def _set_outputs_enabled(self, enabled: bool) -> None:
        for w in (self.sigma_map_button, self.time_map_button):
            w.setEnabled(enabled)
