"""The "Time map" dock widget: make, paint and edit a time map in the image's noise units.

A thin Qt skin over :mod:`napari_diffdenoise.noise.timemap` (new map, smooth, scale, reset,
TIFF files) and :func:`napari_diffdenoise.estimate_noise` (run in a worker). A time map is a
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

from .._validation import time_map_info
from ._base import LayerPicker, WorkerDockWidget
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


def _estimate_steps(data: Any) -> Generator[tuple[int, int], None, Any]:
    """Worker body: the public API's noise estimate, as a generator with (done, total) steps."""
    from napari_diffdenoise import estimate_noise

    yield 0, 1
    report = estimate_noise(data)
    yield 1, 1
    return report


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

        #: start σ maps of estimates, by (image layer id, plane or None for the whole stack)
        self._estimates: dict[tuple[Any, Any], np.ndarray] = {}
        self._watched: Any = None  # the map whose selected_label the brush follows

        # --- layers ------------------------------------------------------------------------
        self.image_picker = LayerPicker(self.viewer, self._refuse_image, follow_selection=True)
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

        self.new_button.clicked.connect(self._on_new_clicked)
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
        self._layer_cbs = [
            (getattr(self.viewer.layers.events, name), self._sync)
            for name in ("inserted", "removed", "moved", "reordered", "renamed")
        ]
        self._layer_cbs.append((self.viewer.layers.selection.events.active, self._sync))
        for emitter, callback in self._layer_cbs:
            emitter.connect(callback)
        self._on_map_changed()
        self.set_status("Pick an image, then make a new time map (or pick one).")

    # ------------------------------------------------------------------ pickers
    @staticmethod
    def _refuse_image(layer: Any) -> str | None:
        from napari.layers import Image

        if not isinstance(layer, Image):
            return f"{layer.name!r} is not an Image layer"
        if layer.rgb:
            return f"{layer.name!r} is RGB: split its channels first"
        return None

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
        for w in (self.smooth_button, self.scale_button, self.reset_button, self.save_button):
            w.setEnabled(has_map)
        self.brush_spin.setEnabled(has_map)

    # ------------------------------------------------------------------ new maps
    def _image(self) -> napari.layers.Image:
        image = self.image_layer
        if image is None:
            raise ValueError("no image layer: open an image (or File > Open Sample) first")
        return image

    def _units(self, image: napari.layers.Image) -> str:
        from napari_diffdenoise.noise.timemap import intensity_units

        return intensity_units(layer_array(image).dtype, image.metadata)

    def _target(self, image: napari.layers.Image, extent: str) -> tuple[Any, Any]:
        """(data to estimate / size the map on, plane index or None for the whole stack)."""
        data = layer_array(image)
        if data.ndim > 2 and extent == EXTENT_PLANE:
            plane = image_plane_index(self.viewer, image)
            return data[plane], plane
        return data, None

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
            With ``"estimate"``: start the worker (``False``: the caller starts it).
        wait
            With ``"estimate"``: estimate here and now instead of in a worker (the console,
            scripts) and return the layer.

        Returns
        -------
        The new Labels layer, or for ``"estimate"`` (without ``wait``) the worker that will
        add it (also announced by :attr:`time_map_added`), or ``None`` when the input was
        refused (the reason is in :attr:`last_error`).
        """
        try:
            source = source or self.source_combo.currentData()
            if source not in _SOURCES:
                raise ValueError(f"source must be one of {sorted(_SOURCES)}, got {source!r}")
            extent = extent or self.extent_combo.currentData()
            if extent not in _EXTENTS:
                raise ValueError(f"extent must be one of {sorted(_EXTENTS)}, got {extent!r}")
            image = self._image()
            data, plane = self._target(image, extent)
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
        if source != FROM_ESTIMATE:
            try:
                return self._add_map(image, tuple(data.shape), spec, None)
            except (ValueError, TypeError) as exc:
                self.show_error(exc)
                return None
        uid = image.unique_id
        if wait:
            from napari_diffdenoise._progress import run_to_end

            try:
                report = run_to_end(_estimate_steps(data))
            except (ValueError, TypeError) as exc:
                self.show_error(exc)
                return None
            return self._on_estimated(uid, tuple(data.shape), spec, report)
        self.set_status(f"Estimating the noise of {image.name!r}…")
        return self.start_worker(
            _estimate_steps,
            data,
            on_yield=lambda step: self.show_progress(*step, text="estimating the noise"),
            on_return=lambda report: self._on_estimated(uid, tuple(data.shape), spec, report),
            on_finish=lambda: self.progress.setVisible(False),
            layers=[image],
            start=start,
        )

    def _on_estimated(
        self, uid: Any, shape: tuple, spec: dict, report: Any
    ) -> napari.layers.Labels | None:
        image = layer_by_id(self.viewer, uid)
        if image is None:
            self.show_error(ValueError("the image layer was removed during the estimate"))
            return None
        self._estimates[(uid, spec["plane"])] = np.asarray(report.start_sigma_map)
        if spec["sigma_max"] is None:
            spec["sigma_max"] = float(report.sigma_max_default)
        try:
            return self._add_map(image, shape, spec, report)
        except (ValueError, TypeError) as exc:
            self.show_error(exc)
            return None

    def _auto_sigma_max(self, image: napari.layers.Image) -> float:
        from napari_diffdenoise.intensity import SIGMA_MAX, robust_range

        return float(SIGMA_MAX * robust_range(layer_array(image)).scale)

    def _add_map(
        self, image: napari.layers.Image, shape: tuple, spec: dict, report: Any
    ) -> napari.layers.Labels:
        from napari_diffdenoise.noise.timemap import new_time_map

        sigma_max = spec["sigma_max"]
        if sigma_max is None:
            sigma_max = self._auto_sigma_max(image)
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

    def _on_new_clicked(self, *_: Any) -> None:
        self.new_time_map()

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
            try:
                self._watched.events.selected_label.disconnect(self._on_selected_label)
            except (TypeError, ValueError, RuntimeError):  # pragma: no cover
                pass
            self._watched = None
        layer = self.time_map_layer
        if layer is not None:
            info = self._info(layer)
            layer.events.selected_label.connect(self._on_selected_label)
            self._watched = layer
            self.legend.set_scale(info["levels"], info["sigma_max"], info.get("units", ""))
            self.brush_spin.setSuffix(f" {info.get('units', '')}".rstrip())
            self._on_selected_label()
        self._show_brush()
        self._update_enabled()

    def on_shutdown(self) -> None:
        for emitter, callback in self._layer_cbs:
            try:
                emitter.disconnect(callback)
            except (TypeError, ValueError, RuntimeError):  # pragma: no cover
                pass
        if self._watched is not None:
            try:
                self._watched.events.selected_label.disconnect(self._on_selected_label)
            except (TypeError, ValueError, RuntimeError):  # pragma: no cover
                pass
            self._watched = None

    # ------------------------------------------------------------------ tools
    def _apply(self, layer: napari.layers.Labels, new: np.ndarray, what: str) -> None:
        """Write ``new`` into the map through napari's edit history (Ctrl+Z undoes it)."""
        old = np.asarray(layer.data)
        changed = new != old
        if changed.any():
            layer.data_setitem(np.nonzero(changed), new[changed])
        self.set_status(f"{what}: {int(changed.sum())} pixels of {layer.name!r} changed.")
        self.map_changed.emit()

    def smooth(self, sigma_px: float | None = None, *, keep_zero: bool | None = None) -> None:
        """Smooth the map with a Gaussian of ``sigma_px`` pixels (per plane); with
        ``keep_zero`` "leave alone" pixels stay 0 (:func:`~napari_diffdenoise.noise.timemap.
        smooth_time_map`)."""
        from napari_diffdenoise.noise.timemap import smooth_time_map

        layer, info = self.time_map_layer, self._info()
        sigma_px = float(self.smooth_spin.value() if sigma_px is None else sigma_px)
        keep = self.keep_zero_check.isChecked() if keep_zero is None else bool(keep_zero)
        new = smooth_time_map(layer.data, sigma_px, levels=info["levels"], keep_zero=keep)
        self._apply(layer, new, f"smoothed ({sigma_px:g} px)")

    def scale(self, factor: float | None = None) -> None:
        """Multiply the map's σ by ``factor`` (level 0 stays 0, clipped at the top level)."""
        from napari_diffdenoise.noise.timemap import scale_time_map

        layer, info = self.time_map_layer, self._info()
        factor = float(self.factor_spin.value() if factor is None else factor)
        new = scale_time_map(layer.data, factor, levels=info["levels"])
        self._apply(layer, new, f"σ scaled by {factor:g}")

    def reset_to_estimate(
        self,
        region: napari.layers.Shapes | str | None = None,
        *,
        start: bool = True,
        wait: bool = False,
    ) -> GeneratorWorker | None:
        """Put the noise estimate back into the map, inside the shapes of ``region`` (a Shapes
        layer or its name; default: the widget's choice, ``None`` there = the whole map).

        The estimate made for this image and plane is reused; otherwise one is made first in a
        worker, which is returned (``None`` when the reset was done at once, or with
        ``wait=True``, which estimates here and now).
        """
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

            estimate = new_time_map(
                layer.data.shape,
                sigma=sigma_map,
                sigma_max=info["sigma_max"],
                levels=info["levels"],
            ).astype(layer.data.dtype)
            new = reset_time_map(layer.data, estimate, mask)
            where = "the whole map" if mask is None else f"the shapes of {region.name!r}"
            self._apply(layer, new, f"reset to the estimate in {where}")

        if key not in self._estimates and wait:
            from napari_diffdenoise._progress import run_to_end

            report = run_to_end(_estimate_steps(data if plane is None else data[plane]))
            self._estimates[key] = np.asarray(report.start_sigma_map)
        if key in self._estimates:
            apply(self._estimates[key])
            return None

        def returned(report: Any) -> None:
            self._estimates[key] = np.asarray(report.start_sigma_map)
            try:
                apply(self._estimates[key])
            except (ValueError, TypeError) as exc:
                self.show_error(exc)

        self.set_status(f"Estimating the noise of {image.name!r}…")
        return self.start_worker(
            _estimate_steps,
            data if plane is None else data[plane],
            on_yield=lambda step: self.show_progress(*step, text="estimating the noise"),
            on_return=returned,
            on_finish=lambda: self.progress.setVisible(False),
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
