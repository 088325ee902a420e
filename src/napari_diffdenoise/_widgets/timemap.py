"""The "Time map" dock widget: make, paint and edit a time map in the image's noise units.

A thin Qt skin over :mod:`napari_diffdenoise.noise.timemap` (new map, smooth, scale, reset,
TIFF files) and :func:`napari_diffdenoise.estimate_noise`; the estimate, the automatic σ_max
(which reads a sample of the image's planes) and smoothing run in a worker, one at a time (the
tools wait meanwhile; :meth:`~TimeMapWidget.wait` waits from the console). A time map is a
napari Labels layer whose label L stands for a noise std of ``L / levels · σ_max`` image units;
it is recognised by ``layer.metadata["napari_diffdenoise"]["time_map"]``
(:func:`napari_diffdenoise._validation.is_time_map_layer`), which the denoiser reads.

Its own dock widget rather than a section of the Noise inspector: painting is a loop between
the map and the Denoiser (whose preview follows the map), with the inspector's report no longer
needed; maps can be made without any inspection (constant σ, blank, loaded from a file); and
the inspector stays a short read-only report. The inspector's *Create time map* makes the same
layers. ``docs/inspector.md`` ("Paint a time map") has the console equivalents.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QRectF, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QLinearGradient, QPainter
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._progress import run_to_end
from .._validation import time_map_info
from ._base import LayerPicker, WorkerDockWidget, refuse_image
from ._combo import layer_by_id
from ._layers import (
    TIME_MAP_COLORMAP,
    add_time_map_layer,
    image_plane_index,
    layer_array,
    shapes_to_mask,
)

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.qt.threading import GeneratorWorker

__all__ = ["TimeMapLegend", "TimeMapWidget"]

#: what a new map starts from
FROM_ESTIMATE = "estimate"
FROM_CONSTANT = "constant"
FROM_BLANK = "blank"
_SOURCES = {
    FROM_ESTIMATE: "noise estimate",
    FROM_CONSTANT: "constant σ",
    FROM_BLANK: "blank (leave alone)",
}
#: for stacks: one 2D map applied to every plane, or a full nD map
EXTENT_PLANE = "plane"
EXTENT_STACK = "stack"
_EXTENTS = {EXTENT_PLANE: "2D, every plane", EXTENT_STACK: "nD, whole stack"}
_MAX_LEVELS = 4095
WHOLE_MAP = "whole map"
#: noise estimates kept for "Reset to estimate" (the latest ones)
MAX_ESTIMATES = 2


def _estimate_steps(data: Any, plane: Any = None) -> Generator[tuple[int, int], None, Any]:
    """Worker body: the public API's noise estimate of ``data`` (of its ``plane``, read here),
    as a generator with (done, total) steps."""
    from napari_diffdenoise import estimate_noise

    yield 0, 1
    report = estimate_noise(data if plane is None else np.asarray(data[plane]))
    yield 1, 1
    return report


def _sigma_max_steps(data: Any) -> Generator[tuple[int, int], None, float]:
    """Worker body: the automatic σ_max of ``data`` (half its robust intensity range, read
    from at most 8 planes of a possibly lazy stack)."""
    from napari_diffdenoise.intensity import SIGMA_MAX, robust_range

    yield 0, 1
    return float(SIGMA_MAX * robust_range(data).scale)


def _smooth_steps(
    before: np.ndarray, sigma_px: float, levels: int, keep_zero: bool
) -> Generator[tuple[int, int], None, tuple]:
    """Worker body: smooth the map ``before`` (:func:`~napari_diffdenoise.noise.timemap.
    smooth_time_map`); returns the edit (:func:`_changes`)."""
    from napari_diffdenoise.noise.timemap import smooth_time_map

    yield 0, 1
    new = smooth_time_map(before, sigma_px, levels=levels, keep_zero=keep_zero)
    return _changes(before, new)


def _changes(before: np.ndarray, new: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``(index, values)``: the pixels where ``new`` differs from ``before``, and their values."""
    index = np.nonzero(new != before)
    return index, new[index]


class TimeMapLegend(QWidget):
    """A colour bar of a time map in σ units: level 0 transparent ("leave alone"), then the
    time-map colormap up to ``σ_max``, with ticks at 0, ½ σ_max and σ_max."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(38)
        self.levels = 255
        self.sigma_max = 1.0
        self.units = ""
        self.setToolTip("Colour of each noise level on the map; transparent = leave alone")

    def set_scale(self, levels: int, sigma_max: float, units: str) -> None:
        """Show ``levels`` levels from 0 to ``sigma_max`` (in ``units``)."""
        self.levels, self.sigma_max, self.units = int(levels), float(sigma_max), str(units)
        self.update()

    def tick_labels(self) -> list[str]:
        """The labels under the bar (σ in image units)."""
        s = self.sigma_max
        return [
            "0: leave alone",
            f"{s / 2:.3g}",
            f"σ {s:.3g} {self.units}".rstrip(),
        ]

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        from matplotlib import colormaps

        painter = QPainter(self)
        bar = QRectF(4, 2, max(10, self.width() - 8), 14)
        zero = QRectF(bar.left(), bar.top(), 14, bar.height())
        ramp = QRectF(zero.right(), bar.top(), bar.width() - zero.width(), bar.height())
        # level 0: a checkerboard says "transparent"
        for i in range(2):
            for j in range(2):
                shade = QColor(200, 200, 200) if (i + j) % 2 else QColor(90, 90, 90)
                painter.fillRect(QRectF(zero.left() + 7 * i, zero.top() + 7 * j, 7, 7), shade)
        gradient = QLinearGradient(ramp.topLeft(), ramp.topRight())
        cmap = colormaps[TIME_MAP_COLORMAP]
        for x in np.linspace(0.0, 1.0, 9):
            r, g, b, _ = cmap(float(x))
            gradient.setColorAt(float(x), QColor.fromRgbF(r, g, b))
        painter.fillRect(ramp, QBrush(gradient))
        painter.setPen(self.palette().text().color())
        labels = self.tick_labels()
        y = int(bar.bottom()) + 14
        painter.drawText(int(bar.left()), y, labels[0])
        painter.drawText(
            QRectF(ramp.center().x() - 40, bar.bottom() + 2, 80, 16),
            int(Qt.AlignmentFlag.AlignHCenter),
            labels[1],
        )
        width = painter.fontMetrics().horizontalAdvance(labels[2])
        painter.drawText(int(bar.right()) - width, y, labels[2])
        painter.end()


class TimeMapWidget(WorkerDockWidget):
    """Make a time map (from the noise estimate, a constant σ, or blank), paint it in σ units,
    and edit it (smooth, scale, reset a region to the estimate, save / load as TIFF).

    Driven from the console with the same methods the buttons call: :meth:`new_time_map`,
    :meth:`set_brush_sigma`, :meth:`smooth`, :meth:`scale`, :meth:`reset_to_estimate`,
    :meth:`save`, :meth:`load`. Every new map is announced by :attr:`time_map_added`.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose Image, time-map Labels and Shapes layers are offered.
    """

    title = "Time map"
    #: emitted with the new Labels layer whenever a time map is added
    time_map_added = Signal(object)
    #: emitted after a tool changed the current map
    map_changed = Signal()

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        from napari_diffdenoise.noise.timemap import DEFAULT_TIME_LEVELS

        #: start σ maps of the latest estimates, by (image layer id, plane or None for the
        #: whole stack); dropped when the image is removed or its data replaced
        self._estimates: dict[tuple[Any, Any], np.ndarray] = {}
        self._estimated: dict[Any, Any] = {}  # their image layers, by id (watched)
        self._watched: Any = None  # the map whose selected_label the brush follows
        #: the worker of the running estimate or smoothing (one at a time), else the last one
        self.worker: GeneratorWorker | None = None

        # --- layers ------------------------------------------------------------------------
        self.image_picker = LayerPicker(self.viewer, refuse_image, follow_selection=True)
        self.image_picker.setToolTip("The image the time map is for (its shape and units)")
        self.map_picker = LayerPicker(self.viewer, self._refuse_map, follow_selection=True)
        self.map_picker.setToolTip(
            "Time-map Labels layer to paint and edit (made here or by the Noise inspector)"
        )
        self.pickers = [self.image_picker, self.map_picker]
        form = QFormLayout()
        form.addRow("image", self.image_picker)
        form.addRow("time map", self.map_picker)

        # --- new map -----------------------------------------------------------------------
        self.source_combo = QComboBox()
        for key, text in _SOURCES.items():
            self.source_combo.addItem(text, key)
        self.source_combo.setToolTip(
            "Start from the noise estimate of the image, a constant σ, or nothing (all pixels "
            "'leave alone' until painted)"
        )
        self.constant_spin = QDoubleSpinBox()
        self.constant_spin.setDecimals(3)
        self.constant_spin.setRange(0.0, 1e12)
        self.constant_spin.setValue(10.0)
        self.constant_spin.setToolTip("σ of a constant map, in the image's intensity units")
        self.extent_combo = QComboBox()
        for key, text in _EXTENTS.items():
            self.extent_combo.addItem(text, key)
        self.extent_combo.setToolTip(
            "Stacks: one 2D map that applies to every plane (estimated on the plane on screen), "
            "or a map with the stack's shape"
        )
        self.sigma_max_spin = QDoubleSpinBox()
        self.sigma_max_spin.setDecimals(4)
        self.sigma_max_spin.setRange(0.0, 1e12)
        self.sigma_max_spin.setSpecialValueText("auto")
        self.sigma_max_spin.setToolTip(
            "σ of the top level (image units); auto: half the image's robust intensity range"
        )
        self.levels_spin = QSpinBox()
        self.levels_spin.setRange(1, _MAX_LEVELS)
        self.levels_spin.setValue(int(DEFAULT_TIME_LEVELS))
        self.levels_spin.setToolTip("Number of paintable levels above 0 (label L = L/levels σ_max)")
        self.new_button = QPushButton("New time map")
        new_box = QGroupBox("New time map")
        new_form = QFormLayout(new_box)
        new_form.addRow("from", self.source_combo)
        new_form.addRow("constant σ", self.constant_spin)
        new_form.addRow("stacks", self.extent_combo)
        new_form.addRow("σ_max", self.sigma_max_spin)
        new_form.addRow("levels", self.levels_spin)
        new_form.addRow(self.new_button)

        # --- brush -------------------------------------------------------------------------
        self.brush_spin = QDoubleSpinBox()
        self.brush_spin.setDecimals(3)
        self.brush_spin.setRange(0.0, 1e12)
        self.brush_spin.setToolTip(
            "Noise level to paint, in the image's intensity units (0 = leave alone); sets the "
            "map's label"
        )
        self.brush_label = QLabel("no time map")
        self.brush_label.setWordWrap(True)
        self.legend = TimeMapLegend()
        brush_box = QGroupBox("Brush (paint with the map's brush, fill or eraser)")
        brush_form = QFormLayout(brush_box)
        brush_form.addRow("σ", self.brush_spin)
        brush_form.addRow(self.brush_label)
        brush_form.addRow(self.legend)

        # --- tools -------------------------------------------------------------------------
        self.smooth_spin = QDoubleSpinBox()
        self.smooth_spin.setRange(0.1, 200.0)
        self.smooth_spin.setValue(4.0)
        self.smooth_spin.setSuffix(" px")
        self.keep_zero_check = QCheckBox("smoothing keeps 'leave alone' (level 0) pixels")
        self.keep_zero_check.setChecked(True)
        self.keep_zero_check.setToolTip("Level-0 pixels stay 0 and do not blur into the map")
        self.smooth_button = QPushButton("Smooth")
        self.factor_spin = QDoubleSpinBox()
        self.factor_spin.setDecimals(3)
        self.factor_spin.setRange(0.0, 100.0)
        self.factor_spin.setValue(1.5)
        self.factor_spin.setPrefix("× ")
        self.scale_button = QPushButton("Scale σ")
        self.region_picker = LayerPicker(
            self.viewer, self._refuse_region, extra=[(WHOLE_MAP, None)]
        )
        self.region_picker.setToolTip("Shapes layer: reset only inside its shapes")
        self.pickers.append(self.region_picker)
        self.reset_button = QPushButton("Reset to estimate")
        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        tools_box = QGroupBox("Tools")
        tools = QVBoxLayout(tools_box)
        for widgets in (
            (self.smooth_spin, self.smooth_button),
            (self.keep_zero_check,),
            (self.factor_spin, self.scale_button),
            (self.region_picker, self.reset_button),
            (self.save_button, self.load_button),
        ):
            row = QHBoxLayout()
            for w in widgets:
                row.addWidget(w)
            tools.addLayout(row)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(new_box)
        layout.addWidget(brush_box)
        layout.addWidget(tools_box)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.new_button.clicked.connect(lambda *_: self.new_time_map())
        self.smooth_button.clicked.connect(lambda *_: self._guard(self.smooth))
        self.scale_button.clicked.connect(lambda *_: self._guard(self.scale))
        self.reset_button.clicked.connect(lambda *_: self._guard(self.reset_to_estimate))
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.brush_spin.valueChanged.connect(self._on_brush_spin)
        self.source_combo.currentIndexChanged.connect(self._update_enabled)
        self.image_picker.currentIndexChanged.connect(self._update_enabled)
        self.map_picker.currentIndexChanged.connect(self._on_map_changed)
        # (a picker filled with its first item does not emit currentIndexChanged)
        for name in ("inserted", "removed", "moved", "reordered", "renamed"):
            self.connect_viewer(getattr(self.viewer.layers.events, name), self._sync)
        self.connect_viewer(self.viewer.layers.selection.events.active, self._sync)
        self.connect_viewer(self.viewer.layers.events.removed, self._on_removed)
        self._on_map_changed()
        self.set_status("Pick an image, then make a new time map (or pick one).")

    # ------------------------------------------------------------------ pickers
    @staticmethod
    def _refuse_map(layer: Any) -> str | None:
        try:
            time_map_info(layer)
        except ValueError as exc:
            return str(exc)
        return None

    @staticmethod
    def _refuse_region(layer: Any) -> str | None:
        from napari.layers import Shapes

        return None if isinstance(layer, Shapes) else f"{layer.name!r} is not a Shapes layer"

    @property
    def image_layer(self) -> napari.layers.Image | None:
        """The image the maps are for (``None`` when the viewer has none)."""
        return self.image_picker.layer

    def set_image_layer(self, layer: napari.layers.Image | str) -> None:
        """Pick the image by layer or name."""
        self.image_picker.pick(layer)

    @property
    def time_map_layer(self) -> napari.layers.Labels | None:
        """The time map being painted and edited (``None`` when there is none)."""
        return self.map_picker.layer

    def set_time_map_layer(self, layer: napari.layers.Labels | str) -> None:
        """Pick the time map by layer or name (Labels layers that are not time maps are
        refused, with the reason)."""
        self.map_picker.pick(layer)

    def _update_enabled(self, *_: Any) -> None:
        image = self.image_layer
        nd = image is not None and layer_array(image).ndim > 2
        self.extent_combo.setEnabled(bool(nd))
        self.constant_spin.setEnabled(self.source_combo.currentData() == FROM_CONSTANT)
        has_map = self.time_map_layer is not None
        idle = not self.busy
        for w in (self.smooth_button, self.scale_button, self.reset_button):
            w.setEnabled(has_map and idle)
        self.save_button.setEnabled(has_map)
        self.new_button.setEnabled(idle)
        self.brush_spin.setEnabled(has_map)

    @property
    def busy(self) -> bool:
        """An estimate or a smoothing is running (the tools that start or edit wait)."""
        return bool(self.workers)

    def _refused_while_busy(self) -> bool:
        """Say so and return ``True`` while a worker runs (one at a time)."""
        if not self.busy:
            return False
        self.set_status(
            "Busy with the running estimate or smoothing: wait for it (wait() from the "
            "console), then try again."
        )
        return True

    def _start_tool(
        self,
        body: Any,
        *args: Any,
        what: str,
        on_return: Any,
        layers: list[Any],
        start: bool,
    ) -> GeneratorWorker:
        """Run ``body(*args)`` in the widget's one worker; the tools wait until it finishes."""
        self.worker = self.start_worker(
            body,
            *args,
            on_yield=lambda step: self.show_progress(*step, text=what),
            on_return=on_return,
            on_finish=self._on_tool_finished,
            layers=layers,
            start=False,
        )
        self.show_progress(0, 1, what)
        self._update_enabled()
        if start:
            self.worker.start()
        return self.worker

    def _on_tool_finished(self) -> None:
        self.progress.setVisible(False)
        self._update_enabled()

    # ------------------------------------------------------------------ estimates kept
    def _remember(self, image: Any, plane: Any, sigma_map: Any) -> None:
        """Keep the estimate of ``image`` (``plane``: of that plane) for "Reset to estimate"."""
        key = (image.unique_id, plane)
        self._estimates.pop(key, None)
        self._estimates[key] = np.asarray(sigma_map)
        while len(self._estimates) > MAX_ESTIMATES:
            del self._estimates[next(iter(self._estimates))]
        self._watch_estimated()

    def _forget(self, uid: Any) -> None:
        for key in [k for k in self._estimates if k[0] == uid]:
            del self._estimates[key]
        self._watch_estimated()

    def _watch_estimated(self) -> None:
        """Follow the data of the images whose estimates are kept (a new array: forget it)."""
        wanted = {uid for uid, _ in self._estimates}
        for uid in [u for u in self._estimated if u not in wanted]:
            self.disconnect_viewer(self._estimated.pop(uid).events.data, self._on_image_data)
        for uid in wanted - set(self._estimated):
            layer = layer_by_id(self.viewer, uid)
            if layer is not None:
                self.connect_viewer(layer.events.data, self._on_image_data)
                self._estimated[uid] = layer

    def _on_image_data(self, event: Any) -> None:
        self._forget(getattr(event.source, "unique_id", None))

    def _on_removed(self, event: Any) -> None:
        self._forget(getattr(event.value, "unique_id", None))

    # ------------------------------------------------------------------ new maps
    def _image(self) -> napari.layers.Image:
        image = self.image_layer
        if image is None:
            raise ValueError("no image layer: open an image (or File > Open Sample) first")
        return image

    def _units(self, image: napari.layers.Image) -> str:
        from napari_diffdenoise.noise.timemap import intensity_units

        return intensity_units(layer_array(image).dtype, image.metadata)

    def _target(self, image: napari.layers.Image, extent: str) -> tuple[tuple, Any]:
        """(shape of the map, plane index or None for the whole stack); nothing is read."""
        shape = tuple(int(n) for n in layer_array(image).shape)
        if len(shape) > 2 and extent == EXTENT_PLANE:
            return shape[-2:], image_plane_index(self.viewer, image)
        return shape, None

    def new_time_map(
        self,
        source: str | None = None,
        *,
        sigma: float | None = None,
        extent: str | None = None,
        sigma_max: float | None = None,
        levels: int | None = None,
        start: bool = True,
        wait: bool = False,
    ) -> napari.layers.Labels | GeneratorWorker | None:
        """Add a new time map for the picked image.

        Parameters
        ----------
        source
            ``"estimate"`` (the noise estimate's σ map, :attr:`NoiseReport.start_sigma_map`),
            ``"constant"`` (σ = ``sigma`` everywhere) or ``"blank"`` (level 0: leave alone);
            default: the widget's choice.
        sigma
            σ of a constant map (image units); default: the widget's value.
        extent
            Stacks: ``"plane"`` (one 2D map for every plane; an estimate is made on the plane
            on screen) or ``"stack"`` (a map of the stack's shape); default: the widget's.
        sigma_max
            σ of the top level (image units); default: the widget's, or ``auto`` (the
            estimate's ``sigma_max_default``: half the robust intensity range).
        levels
            Number of levels above 0; default: the widget's.
        start
            With a worker: start it (``False``: the caller starts it).
        wait
            Estimate (or measure the automatic σ_max) here and now instead of in a worker
            (the console, scripts) and return the layer.

        Returns
        -------
        The new Labels layer; for ``"estimate"``, or an automatic σ_max, (without ``wait``)
        the worker that will add it (also announced by :attr:`time_map_added`); ``None`` when
        the input was refused (the reason is in :attr:`last_error`) or a worker is running.
        """
        if self._refused_while_busy():
            return None
        try:
            source = source or self.source_combo.currentData()
            if source not in _SOURCES:
                raise ValueError(f"source must be one of {sorted(_SOURCES)}, got {source!r}")
            extent = extent or self.extent_combo.currentData()
            if extent not in _EXTENTS:
                raise ValueError(f"extent must be one of {sorted(_EXTENTS)}, got {extent!r}")
            image = self._image()
            shape, plane = self._target(image, extent)
            levels = int(self.levels_spin.value() if levels is None else levels)
            if sigma_max is None and self.sigma_max_spin.value() > 0:
                sigma_max = float(self.sigma_max_spin.value())
            if source == FROM_CONSTANT:
                sigma = float(self.constant_spin.value() if sigma is None else sigma)
        except (ValueError, TypeError) as exc:
            self.show_error(exc)
            return None
        spec = {
            "source": source,
            "extent": extent,
            "plane": plane,
            "levels": levels,
            "sigma": sigma,
            "sigma_max": sigma_max,
        }
        uid = image.unique_id
        if source == FROM_ESTIMATE:
            body, args, what = _estimate_steps, (layer_array(image), plane), "estimating the noise"
        elif sigma_max is None:  # (half the robust range: planes of the image are read)
            body, args = _sigma_max_steps, (layer_array(image),)
            what = "measuring the image's range"
        else:
            try:
                return self._add_map(image, shape, spec, None)
            except (ValueError, TypeError) as exc:
                self.show_error(exc)
                return None
        done = partial(self._on_estimated, uid, shape, spec)
        if wait:
            try:
                result = run_to_end(body(*args))
            except (ValueError, TypeError) as exc:
                self.show_error(exc)
                return None
            return done(result)
        self.set_status(f"{what.capitalize()} of {image.name!r}…")
        return self._start_tool(body, *args, what=what, on_return=done, layers=[image], start=start)

    def _on_estimated(
        self, uid: Any, shape: tuple, spec: dict, result: Any
    ) -> napari.layers.Labels | None:
        """Add the map once the estimate (``result``: the report) or, for the other sources,
        the automatic σ_max (``result``: its value) is in."""
        image = layer_by_id(self.viewer, uid)
        if image is None:
            self.show_error(ValueError("the image layer was removed during the estimate"))
            return None
        report = result if spec["source"] == FROM_ESTIMATE else None
        if report is not None:
            self._remember(image, spec["plane"], report.start_sigma_map)
            sigma_max = float(report.sigma_max_default)
        else:
            sigma_max = float(result)
        if spec["sigma_max"] is None:
            spec["sigma_max"] = sigma_max
        try:
            return self._add_map(image, shape, spec, report)
        except (ValueError, TypeError) as exc:
            self.show_error(exc)
            return None

    def _add_map(
        self, image: napari.layers.Image, shape: tuple, spec: dict, report: Any
    ) -> napari.layers.Labels:
        from napari_diffdenoise.noise.timemap import new_time_map

        sigma_max = spec["sigma_max"]
        if report is not None:
            sigma: Any = report.start_sigma_map
            impulses = report.impulse_mask
        else:
            sigma, impulses = spec["sigma"], None
        levels_array = new_time_map(shape, sigma=sigma, sigma_max=sigma_max, levels=spec["levels"])
        if impulses is not None:  # detected impulses: as the report's own time map does
            levels_array[impulses] = np.asarray(
                np.rint(report.time_map(sigma_max=sigma_max)[impulses] * spec["levels"]),
                dtype=levels_array.dtype,
            )
        meta: dict[str, Any] = {"made_from": spec["source"], "extent": spec["extent"]}
        if spec["plane"] is not None:
            meta["plane"] = tuple(int(i) for i in spec["plane"])
        layer = add_time_map_layer(
            self.viewer,
            levels_array,
            image,
            levels=spec["levels"],
            sigma_max=sigma_max,
            units=self._units(image),
            metadata=meta,
        )
        self.map_picker.refresh()
        self.set_time_map_layer(layer)
        if spec["source"] == FROM_CONSTANT:
            self.set_brush_sigma(float(spec["sigma"]))
        elif report is not None:
            self.set_brush_sigma(float(np.median(report.start_sigma_map)))
        what = _SOURCES[spec["source"]]
        self.set_status(f"Added {layer.name!r} ({what}, σ_max {sigma_max:.4g}); paint on it.")
        self.time_map_added.emit(layer)
        return layer

    # ------------------------------------------------------------------ brush
    def _info(self, layer: Any = None) -> dict[str, Any]:
        layer = self.time_map_layer if layer is None else layer
        if layer is None:
            raise ValueError("no time map: make one with New time map (or pick one)")
        return time_map_info(layer)

    @property
    def brush_sigma(self) -> float:
        """The σ (image units) of the label the map's brush paints with."""
        from napari_diffdenoise.noise.timemap import level_to_sigma

        info = self._info()
        label = int(self.time_map_layer.selected_label)
        return level_to_sigma(min(label, info["levels"]), info["sigma_max"], info["levels"])

    def set_brush_sigma(self, sigma: float) -> int:
        """Paint with noise level ``sigma`` (image units; 0 = leave alone): sets the map's
        ``selected_label`` to the level that stands for it and returns that label."""
        from napari_diffdenoise.noise.timemap import sigma_to_level

        info = self._info()
        level = sigma_to_level(sigma, info["sigma_max"], info["levels"])
        self.time_map_layer.selected_label = level
        self.brush_spin.blockSignals(True)
        self.brush_spin.setValue(float(sigma))
        self.brush_spin.blockSignals(False)
        self._show_brush()
        return level

    def _on_brush_spin(self, value: float) -> None:
        if self.time_map_layer is not None:
            self._guard(self.set_brush_sigma, float(value))

    def _on_selected_label(self, event: Any = None) -> None:
        """The user picked a label in the layer controls: show it in σ."""
        try:
            sigma = self.brush_sigma
        except ValueError:
            return
        if abs(sigma - self.brush_spin.value()) > 1e-9 * max(1.0, sigma):
            from napari_diffdenoise.noise.timemap import sigma_to_level

            info = self._info()
            spin_level = sigma_to_level(self.brush_spin.value(), info["sigma_max"], info["levels"])
            if spin_level != int(self.time_map_layer.selected_label):
                self.brush_spin.blockSignals(True)
                self.brush_spin.setValue(sigma)
                self.brush_spin.blockSignals(False)
        self._show_brush()

    def _show_brush(self) -> None:
        layer = self.time_map_layer
        if layer is None:
            self.brush_label.setText("no time map")
            return
        info = self._info(layer)
        units = info.get("units", "")
        label = int(layer.selected_label)
        if label == 0:
            text = "σ = 0 → label 0: leave these pixels alone (transparent)"
        elif label > info["levels"]:
            text = f"label {label} is above the map's {info['levels']} levels (not a time)"
        else:
            sigma = label / info["levels"] * info["sigma_max"]
            text = f"σ ≈ {sigma:.4g} {units} → label {label} (τ = {label / info['levels']:.3f})"
        self.brush_label.setText(text)

    def _sync(self, *_: Any) -> None:
        """Follow the pickers after layer-list changes (new image, new or removed map)."""
        layer = self.time_map_layer
        watched = None if self._watched is None else self._watched.unique_id
        if (None if layer is None else layer.unique_id) != watched:
            self._on_map_changed()
        else:
            self._update_enabled()

    def _on_map_changed(self, *_: Any) -> None:
        if self._watched is not None:
            self.disconnect_viewer(self._watched.events.selected_label, self._on_selected_label)
            self._watched = None
        layer = self.time_map_layer
        if layer is not None:
            info = self._info(layer)
            self.connect_viewer(layer.events.selected_label, self._on_selected_label)
            self._watched = layer
            self.legend.set_scale(info["levels"], info["sigma_max"], info.get("units", ""))
            self.brush_spin.setSuffix(f" {info.get('units', '')}".rstrip())
            self._on_selected_label()
        self._show_brush()
        self._update_enabled()

    def on_shutdown(self) -> None:
        self._watched = None  # (disconnected with the other viewer connections)
        self._estimates.clear()
        self._estimated.clear()

    # ------------------------------------------------------------------ tools
    def _apply(
        self, layer: napari.layers.Labels, before: np.ndarray, changes: tuple, what: str
    ) -> None:
        """Write the edit ``changes`` (:func:`_changes` of ``before``) into the map through
        napari's edit history (Ctrl+Z undoes it); pixels painted since ``before`` was taken
        stay as painted."""
        index, values = changes
        current = np.asarray(layer.data)
        if current.shape != before.shape:
            raise ValueError(f"{layer.name!r} was replaced meanwhile; nothing was changed")
        if len(index) and len(index[0]):
            kept = current[index] == before[index]
            index, values = tuple(i[kept] for i in index), values[kept]
        n = len(index[0]) if len(index) else 0
        if n:
            layer.data_setitem(index, values)
        self.set_status(f"{what}: {n} pixels of {layer.name!r} changed.")
        self.map_changed.emit()

    def smooth(
        self,
        sigma_px: float | None = None,
        *,
        keep_zero: bool | None = None,
        start: bool = True,
        wait: bool = False,
    ) -> GeneratorWorker | None:
        """Smooth the map with a Gaussian of ``sigma_px`` pixels (per plane); with
        ``keep_zero`` "leave alone" pixels stay 0 (:func:`~napari_diffdenoise.noise.timemap.
        smooth_time_map`).

        Runs in a worker, which is returned (``start=False``: not started yet); pixels
        painted meanwhile stay as painted. ``wait=True`` smooths here and now and returns
        ``None`` (as when a worker is running: the reason is in the status line).
        """
        if self._refused_while_busy():
            return None
        layer, info = self.time_map_layer, self._info()
        sigma_px = float(self.smooth_spin.value() if sigma_px is None else sigma_px)
        keep = self.keep_zero_check.isChecked() if keep_zero is None else bool(keep_zero)
        before = np.array(layer.data)  # (a copy: the brush may paint meanwhile)
        what = f"smoothed ({sigma_px:g} px)"
        args = (before, sigma_px, info["levels"], keep)
        if wait:
            self._apply(layer, before, run_to_end(_smooth_steps(*args)), what)
            return None

        def done(changes: tuple) -> None:
            try:
                self._apply(layer, before, changes, what)
            except ValueError as exc:
                self.show_error(exc)

        self.set_status(f"Smoothing {layer.name!r}…")
        return self._start_tool(
            _smooth_steps, *args, what="smoothing", on_return=done, layers=[layer], start=start
        )

    def scale(self, factor: float | None = None) -> None:
        """Multiply the map's σ by ``factor`` (level 0 stays 0, clipped at the top level)."""
        from napari_diffdenoise.noise.timemap import scale_time_map

        if self._refused_while_busy():
            return
        layer, info = self.time_map_layer, self._info()
        factor = float(self.factor_spin.value() if factor is None else factor)
        before = np.asarray(layer.data)
        new = scale_time_map(before, factor, levels=info["levels"])
        self._apply(layer, before, _changes(before, new), f"σ scaled by {factor:g}")

    def reset_to_estimate(
        self,
        region: napari.layers.Shapes | str | None = None,
        *,
        start: bool = True,
        wait: bool = False,
    ) -> GeneratorWorker | None:
        """Put the noise estimate back into the map, inside the shapes of ``region`` (a Shapes
        layer or its name; default: the widget's choice, ``None`` there = the whole map).

        The estimate made for this image and plane is reused (the latest two are kept, while
        the image keeps its data); otherwise one is made first in a worker, which is returned
        (``None`` when the reset was done at once, or with ``wait=True``, which estimates here
        and now, or when a worker is running: the reason is in the status line).
        """
        if self._refused_while_busy():
            return None
        layer, info = self.time_map_layer, self._info()
        image = self._image()
        if region is None:
            region = self.region_picker.layer
        elif isinstance(region, str):
            region = self.viewer.layers[region]
        mask = None if region is None else shapes_to_mask(region, layer)
        data = layer_array(image)
        if layer.data.shape not in (tuple(data.shape), tuple(data.shape[-2:])):
            raise ValueError(
                f"time map {layer.name!r} {layer.data.shape} does not fit image {image.name!r} "
                f"{data.shape}: pick the image it was made for"
            )
        plane = None
        if data.ndim > 2 and layer.data.ndim == 2:
            plane = layer.metadata.get("plane") or image_plane_index(self.viewer, image)
            plane = tuple(int(i) for i in plane)
        key = (image.unique_id, plane)

        def apply(sigma_map: np.ndarray) -> None:
            from napari_diffdenoise.noise.timemap import new_time_map, reset_time_map

            before = np.asarray(layer.data)
            estimate = new_time_map(
                before.shape,
                sigma=sigma_map,
                sigma_max=info["sigma_max"],
                levels=info["levels"],
            ).astype(before.dtype)
            new = reset_time_map(before, estimate, mask)
            where = "the whole map" if mask is None else f"the shapes of {region.name!r}"
            self._apply(layer, before, _changes(before, new), f"reset to the estimate in {where}")

        if key not in self._estimates and wait:
            report = run_to_end(_estimate_steps(data, plane))
            self._remember(image, plane, report.start_sigma_map)
        if key in self._estimates:
            apply(self._estimates[key])
            return None

        def returned(report: Any) -> None:
            self._remember(image, plane, report.start_sigma_map)
            try:
                apply(np.asarray(report.start_sigma_map))
            except (ValueError, TypeError) as exc:
                self.show_error(exc)

        self.set_status(f"Estimating the noise of {image.name!r}…")
        return self._start_tool(
            _estimate_steps,
            data,
            plane,
            what="estimating the noise",
            on_return=returned,
            layers=[image, layer],
            start=start,
        )

    def save(self, path: str) -> None:
        """Save the map as a TIFF with its ``time_levels``, ``sigma_max`` and intensity units
        (written atomically)."""
        from napari_diffdenoise.noise.timemap import save_time_map

        layer, info = self.time_map_layer, self._info()
        save_time_map(
            path,
            np.asarray(layer.data),
            levels=info["levels"],
            sigma_max=info["sigma_max"],
            units=info.get("units"),
        )
        self.set_status(f"Saved {layer.name!r} to {path}.")

    def load(self, path: str) -> napari.layers.Labels:
        """Add the time map saved in TIFF ``path`` over the picked image (refused, with both
        shapes named, when it has neither the image's shape nor a plane's)."""
        from pathlib import Path

        from napari_diffdenoise.noise.timemap import load_time_map

        image = self._image()
        loaded = load_time_map(path, image_shape=tuple(layer_array(image).shape))
        layer = add_time_map_layer(
            self.viewer,
            loaded.data,
            image,
            levels=loaded.levels,
            sigma_max=loaded.sigma_max,
            units=loaded.units or self._units(image),
            metadata={"made_from": "file", "path": str(path)},
            name=f"{image.name} time map ({Path(path).stem})",
        )
        self.map_picker.refresh()
        self.set_time_map_layer(layer)
        self.set_status(f"Loaded {Path(path).name} as {layer.name!r}.")
        self.time_map_added.emit(layer)
        return layer

    def _on_save_clicked(self, *_: Any) -> None:
        layer = self.time_map_layer
        if layer is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save time map", f"{layer.name}.tif", "TIFF (*.tif *.tiff)"
        )
        if path:
            self._guard(self.save, path)

    def _on_load_clicked(self, *_: Any) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load time map", "", "TIFF (*.tif *.tiff)")
        if path:
            self._guard(self.load, path)

    def _guard(self, action: Any, *args: Any) -> Any:
        """Run a button's action; bad input goes to the status line and a notification."""
        try:
            return action(*args)
        except (ValueError, TypeError, OSError) as exc:
            self.show_error(exc)
            return None
