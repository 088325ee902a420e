"""The "Denoiser" dock widget: denoise an image layer with the diffusion model.

A thin Qt skin over :func:`napari_diffdenoise.engine.denoise.iter_denoise` (the generator form
of :func:`napari_diffdenoise.denoise`), built on :class:`._base.WorkerDockWidget`:

- **Preview** denoises what is on screen (the current plane, or the visible region of a large
  plane, at most ``PREVIEW_SIDE`` pixels a side) into a "<image> preview" layer placed on its
  slice; with *live preview* it is refreshed (debounced, in a worker, stale results dropped)
  when a parameter changes, the slider moves or the time map is painted.
- **Denoise** runs the whole stack (or the current slice): the result layer appears at once
  with the source's scale, translate, units, axis labels and contrast limits and fills in as
  planes finish. Lazy (dask/zarr) and large inputs go to the engine as they are, never read on
  the GUI thread, and are written to a zarr store shown lazily; a stopped run resumes.
- The result's metadata ``["napari_diffdenoise"]`` records the model, its hash and every
  parameter, the seed included (a fresh one, "-1", is drawn here and recorded):
  ``denoise(layer, **meta["parameters"])`` reproduces it (add
  ``time_map=viewer.layers[meta["time_map"]]`` for a run with a time map). A "current slice"
  run records its plane in ``meta["plane"]``: ``denoise(layer.data[tuple(meta["plane"])],
  **meta["parameters"])`` reproduces that (level 0, ``layer.data[0]``, of a multiscale layer).

Console use: :meth:`DenoiserWidget.set_parameters`, :meth:`~DenoiserWidget.preview`,
:meth:`~DenoiserWidget.run`, :meth:`~DenoiserWidget.cancel`, :meth:`~DenoiserWidget.resume`.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .._validation import check_not_rgb, time_map_info
from ._base import (
    LayerPicker,
    ModelCombo,
    Placement,
    ProgressRate,
    WorkerDockWidget,
    preview_region,
    refuse_image,
)
from ._layers import (
    ROLE_DENOISED,
    ROLE_PREVIEW,
    ROLE_UNCERTAINTY,
    image_plane_index,
    layer_array,
    tagged,
)

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.qt.threading import GeneratorWorker

    from napari_diffdenoise.engine.denoise import DenoiseResult

__all__ = ["DenoiserWidget", "PREVIEW_SIDE", "STORE_BYTES"]

BLIND = "estimate"
SIGMA = "sigma"
PRESET = "preset"
SAMPLERS = ("direct", "origin", "cold", "indi")
#: the preview denoises at most this many pixels a side (about a second on a laptop CPU)
PREVIEW_SIDE = 512
#: in-memory inputs whose result is larger than this go to a zarr store (lazy inputs always)
STORE_BYTES = 512 << 20
#: planes larger than this many pixels get a progressive result layer even when alone
LARGE_PLANE = 2048 * 2048
#: an in-memory progressive result is redrawn at most this often (s) as its tiles come in
REFRESH_S = 0.5
#: live preview waits this long after the last change (ms)
PREVIEW_DELAY_MS = 300
#: output choices: automatic, in memory, zarr store
OUTPUTS = (("automatic", "auto"), ("in memory", "memory"), ("zarr store", "store"))


def _run_job(image: Any, plane: tuple[int, ...] | None, time_map: Any, kwargs: dict, out: Any):
    """Worker body: read the plane (if one) in the worker thread, then the engine's generator."""
    from napari_diffdenoise.engine.denoise import iter_denoise

    if plane is not None:
        image = np.asarray(layer_array(image)[plane])
    return (yield from iter_denoise(image, time_map, out=out, **kwargs))


def _preview_job(image: Any, index: tuple, time_map: Any, kwargs: dict):
    """Worker body of the preview: read the region in the worker thread and denoise it."""
    from napari_diffdenoise.engine.denoise import iter_denoise

    crop = np.asarray(layer_array(image)[index])
    return (yield from iter_denoise(crop, time_map, **kwargs))


@dataclass
class _Job:
    """One run of the Denoiser, as gathered when it starts."""

    source_id: Any
    image: Any
    placement: Placement
    kwargs: dict[str, Any]
    plane: tuple[int, ...] | None = None
    time_map: Any = None
    time_map_name: str | None = None
    out: Path | None = None
    progressive: bool = False
    pixels: float = 0.0
    layer: Any = None
    rate: ProgressRate = field(default_factory=ProgressRate)
    planes_shown: int = -1
    shown_at: float = 0.0


class DenoiserWidget(WorkerDockWidget):
    """Denoise an Image layer, blind or with a σ value or a painted time-map Labels layer.

    Attributes
    ----------
    result : DenoiseResult or None
        The last finished run.
    worker : GeneratorWorker or None
        The worker of the last :meth:`run` (or :meth:`resume`).
    preview_worker : GeneratorWorker or None
        The worker of the last :meth:`preview`.
    layers_added : list
        The layers the last run added (result, uncertainty).
    preview_layer : napari.layers.Image or None
        The preview layer.
    resumable : bool
        The last run stopped with a partial zarr store that :meth:`resume` can finish.
    """

    title = "Denoiser"

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        from superqt import QCollapsible

        from napari_diffdenoise.engine.device import available_devices

        self.result: DenoiseResult | None = None
        self.worker: GeneratorWorker | None = None
        self.preview_worker: GeneratorWorker | None = None
        self.layers_added: list[Any] = []
        self.preview_layer: Any = None
        self._job: _Job | None = None
        self._stopped: _Job | None = None
        self._preview_token = 0
        self._watched_map: Any = None

        self.image_picker = LayerPicker(
            self.viewer, self._refuse_image, follow_selection=True, parent=self
        )
        self.image_picker.setToolTip(
            "Image layer to denoise (single channel, 2D or nD; lazy and multiscale layers too); "
            "follows the layer selected in the layer list"
        )
        self.image_combo = self.image_picker  # (name kept for scripts)
        self.noise_picker = LayerPicker(
            self.viewer,
            self._refuse_time_map,
            extra=[("estimate (blind)", BLIND), ("σ value", SIGMA)],
            label=lambda layer: f"time map: {layer.name}",
            parent=self,
        )
        self.noise_picker.setToolTip(
            "Where the noise level comes from: estimated from the image (blind), one σ value, "
            "or a time-map Labels layer (made by the Noise inspector or the Time map tools)"
        )
        self.noise_combo = self.noise_picker
        self.pickers = [self.image_picker, self.noise_picker]
        self.refused_label = QLabel()
        self.refused_label.setWordWrap(True)
        self.refused_label.setVisible(False)
        self.sigma_spin = QDoubleSpinBox()
        self.sigma_spin.setRange(0.0, 1e9)
        self.sigma_spin.setDecimals(3)
        self.sigma_spin.setValue(10.0)
        self.sigma_spin.setToolTip("Noise standard deviation in the image's intensity units")
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("whole stack", "stack")
        self.scope_combo.addItem("current slice", "slice")
        self.model_combo = ModelCombo()
        self.model_combo.refresh()
        self.model_combo.setToolTip(
            "default: one network call; fast: the same in bfloat16 where that is faster; "
            "quality: 8-fold self-ensemble blended with non-local (BM3D-style) filters "
            "(slower); models saved by fine-tuning appear here too (the list is re-read when "
            "it opens)"
        )
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Re-read the list of models (fine-tuned ones included)")
        self.output_combo = QComboBox()
        for text, value in OUTPUTS:
            self.output_combo.addItem(text, value)
        self.output_combo.setToolTip(
            "automatic: lazy inputs and results over "
            f"{STORE_BYTES >> 20} MB go to a zarr store, the rest stays in memory"
        )
        self.store_edit = QLineEdit()
        self.store_edit.setPlaceholderText(
            "zarr store (default: beside the input, or a temp folder)"
        )
        self.store_button = QToolButton()
        self.store_button.setText("…")
        self.store_button.setToolTip("Choose where the zarr store is written")
        self.live_check = QCheckBox("live preview")
        self.live_check.setToolTip(
            "Refresh the preview of what is on screen when a parameter changes, the slider "
            "moves or the time map is painted"
        )

        # advanced
        self.sampler_combo = QComboBox()
        self.sampler_combo.addItem("model default", PRESET)
        for s in SAMPLERS:
            self.sampler_combo.addItem(s, s)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 100)
        self.steps_spin.setValue(4)
        self.steps_spin.setToolTip(
            "Sampling steps (ignored by 'direct'): more steps, sharper detail; fewer, higher PSNR"
        )
        self.eta_spin = QDoubleSpinBox()
        self.eta_spin.setRange(0.0, 1.0)
        self.eta_spin.setSingleStep(0.1)
        self.eta_spin.setToolTip("Fresh noise of the 'indi' sampler (0 = deterministic)")
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 64)
        self.samples_spin.setToolTip(
            "Stochastic samples (indi, η > 0): the mean is returned and their spread is added "
            "as an uncertainty layer (for a zarr store, kept inside it)"
        )
        self.wiener_combo = QComboBox()
        for label, value in (
            ("model default", PRESET),
            ("off", 0.0),
            ("auto (SURE)", "auto"),
            ("0.25", 0.25),
            ("0.5", 0.5),
            ("0.75", 0.75),
            ("1 (Wiener only)", 1.0),
        ):
            self.wiener_combo.addItem(label, value)
        self.wiener_combo.setToolTip(
            "Blend in a non-local (BM3D-style) filter that draws on similar patches across the "
            "image: it helps repeated structure (stripes, lattices) and costs a few seconds "
            "per 512² plane on a laptop CPU; 'auto' picks the blend per plane; "
            "'model default' = the preset's (quality: auto, others: off)"
        )
        self.device_combo = QComboBox()
        for dev in ["auto", *available_devices()]:
            self.device_combo.addItem(dev, dev)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(-1, 2**31 - 1)
        self.seed_spin.setValue(0)
        self.seed_spin.setToolTip("Seed of stochastic sampling (-1: a fresh random seed)")
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 65536)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setSpecialValueText("auto")
        self.tile_spin.setToolTip("Largest tile per network pass (≥ 64; auto: from free memory)")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(0, 1024)
        self.batch_spin.setSpecialValueText("auto")
        self.batch_spin.setToolTip("Tiles per network call (auto: from free memory)")

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        store_row = QHBoxLayout()
        store_row.addWidget(self.store_edit, 1)
        store_row.addWidget(self.store_button)
        form = QFormLayout()
        form.addRow("image", self.image_picker)
        form.addRow("noise level", self.noise_picker)
        form.addRow("σ (image units)", self.sigma_spin)
        form.addRow("scope", self.scope_combo)
        form.addRow("model", model_row)
        form.addRow("output", self.output_combo)
        form.addRow("store", store_row)
        advanced_form = QFormLayout()
        advanced_form.addRow("sampler", self.sampler_combo)
        advanced_form.addRow("steps", self.steps_spin)
        advanced_form.addRow("η", self.eta_spin)
        advanced_form.addRow("samples", self.samples_spin)
        advanced_form.addRow("non-local", self.wiener_combo)
        advanced_form.addRow("device", self.device_combo)
        advanced_form.addRow("seed", self.seed_spin)
        advanced_form.addRow("tile size", self.tile_spin)
        advanced_form.addRow("batch", self.batch_spin)
        advanced_box = QWidget()
        advanced_box.setLayout(advanced_form)
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(advanced_box)

        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Denoise what is on screen (the current plane or region)")
        self.run_button = QPushButton("Denoise")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setEnabled(False)
        self.resume_button.setToolTip("Finish the stopped run in its zarr store")
        preview_row = QHBoxLayout()
        preview_row.addWidget(self.preview_button)
        preview_row.addWidget(self.live_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.resume_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.refused_label)
        layout.addWidget(self.advanced)
        layout.addLayout(preview_row)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        self.set_status("Pick an image, then Preview or Denoise.")

        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self._live_preview)

        self.run_button.clicked.connect(lambda *_: self.run())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())
        self.resume_button.clicked.connect(lambda *_: self.resume())
        self.preview_button.clicked.connect(lambda *_: self.preview())
        self.refresh_button.clicked.connect(lambda *_: self.refresh_models())
        self.store_button.clicked.connect(lambda *_: self._choose_store())
        self.live_check.toggled.connect(self._schedule_preview)
        for signal in (
            self.image_picker.currentIndexChanged,
            self.noise_picker.currentIndexChanged,
            self.sampler_combo.currentIndexChanged,
            self.samples_spin.valueChanged,
            self.scope_combo.currentIndexChanged,
        ):
            signal.connect(self._update_enabled)
        for signal in (
            self.image_picker.currentIndexChanged,
            self.noise_picker.currentIndexChanged,
            self.sigma_spin.valueChanged,
            self.model_combo.currentIndexChanged,
            self.sampler_combo.currentIndexChanged,
            self.steps_spin.valueChanged,
            self.eta_spin.valueChanged,
            self.samples_spin.valueChanged,
            self.wiener_combo.currentIndexChanged,
            self.device_combo.currentIndexChanged,
            self.seed_spin.valueChanged,
        ):
            signal.connect(self._schedule_preview)
        self.noise_picker.currentIndexChanged.connect(self._watch_time_map)
        self.connect_viewer(self.viewer.dims.events.current_step, self._schedule_preview)
        self.connect_viewer(self.viewer.camera.events.center, self._on_camera)
        self.connect_viewer(self.viewer.camera.events.zoom, self._on_camera)
        for name in ("inserted", "removed", "renamed"):
            self.connect_viewer(getattr(self.viewer.layers.events, name), self._update_refused)
        self._update_refused()
        self._update_enabled()

    # ------------------------------------------------------------------ layer choices
    @staticmethod
    def _refuse_image(layer: Any) -> str | None:
        from napari.layers import Labels

        reason = refuse_image(layer)
        if reason is not None and isinstance(layer, Labels):
            reason += "; pick an Image layer (a time map goes under 'noise level')"
        return reason

    @staticmethod
    def _refuse_time_map(layer: Any) -> str | None:
        from napari.layers import Labels

        if not isinstance(layer, Labels):
            return f"{layer.name!r} is not a Labels layer"
        try:
            time_map_info(layer)
        except ValueError as exc:
            return str(exc)
        return None

    def _update_refused(self, event: Any = None) -> None:
        """Say why Labels layers that are not time maps are not offered."""
        from napari.layers import Labels

        names = [
            lay.name
            for lay in self.viewer.layers
            if isinstance(lay, Labels) and self._refuse_time_map(lay) is not None
        ]
        if names:
            listed = ", ".join(repr(n) for n in names)
            self.refused_label.setText(
                f"Not offered as a time map: {listed} (Labels without time-map metadata, e.g. a "
                "segmentation, would be read as noise levels). Make a time map with the Noise "
                "inspector or the Time map tools."
            )
        self.refused_label.setVisible(bool(names))

    def _update_enabled(self, *_: Any) -> None:
        sampler = self.sampler_combo.currentData()
        self.sigma_spin.setEnabled(self.noise_picker.currentData() == SIGMA)
        self.steps_spin.setEnabled(sampler not in (PRESET, "direct"))
        self.eta_spin.setEnabled(sampler == "indi")
        self.samples_spin.setEnabled(sampler == "indi")
        stack = self._is_stack()
        self.scope_combo.setEnabled(stack)
        whole = stack and self.scope_combo.currentData() == "stack"
        self.run_button.setText("Run on the whole stack" if whole else "Denoise")

    def _is_stack(self) -> bool:
        layer = self.image_layer
        return layer is not None and len(layer_array(layer).shape) > 2

    @property
    def image_layer(self) -> napari.layers.Image | None:
        """The image to denoise."""
        return self.image_picker.layer

    def set_image_layer(self, layer: napari.layers.Image | str) -> None:
        """Pick the image to denoise (a layer or its name; ``ValueError`` saying why a layer is
        refused, e.g. a Labels layer)."""
        self.image_picker.pick(layer)

    def set_noise_source(self, source: Any) -> None:
        """``"estimate"``, a σ value (float, image units), or a time-map Labels layer (or its
        name); ``ValueError`` saying why another Labels layer is refused."""
        if isinstance(source, str) and source == BLIND:
            self.noise_picker.pick_data(BLIND)
        elif isinstance(source, (int, float)) and not isinstance(source, bool):
            self.noise_picker.pick_data(SIGMA)
            self.sigma_spin.setValue(float(source))
        else:
            self.noise_picker.pick(source)

    def refresh_models(self) -> list[str]:
        """Re-read the model list (presets and saved fine-tuned models); returns it."""
        self.model_combo.refresh()
        return [self.model_combo.itemData(i) for i in range(self.model_combo.count())]

    def set_parameters(self, **params: Any) -> None:
        """Set parameters by value, for console use (``viewer.window`` → this widget).

        Keys: ``model``, ``sampler``, ``steps``, ``eta``, ``samples``, ``wiener``, ``device``,
        ``seed`` (-1: fresh), ``scope`` (``"stack"`` or ``"slice"``), ``tile_size`` and
        ``batch_size`` (``None``: automatic), ``output`` (``"auto"``, ``"memory"``,
        ``"store"``), ``store`` (a zarr path or ``None`` for the default), ``live_preview``
        (bool), ``sigma`` (a σ value: also selects "σ value"). ``None`` for sampler or wiener:
        the model's default. ``ValueError`` for unknown keys or values not offered.
        """
        combos = {
            "model": self.model_combo,
            "sampler": self.sampler_combo,
            "device": self.device_combo,
            "scope": self.scope_combo,
            "wiener": self.wiener_combo,
            "output": self.output_combo,
        }
        spins = {
            "steps": self.steps_spin,
            "eta": self.eta_spin,
            "samples": self.samples_spin,
            "seed": self.seed_spin,
            "tile_size": self.tile_spin,
            "batch_size": self.batch_spin,
        }
        unknown = sorted(
            set(params) - set(combos) - set(spins) - {"store", "live_preview", "sigma"}
        )
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))}")
        for key, value in params.items():
            if key == "model":
                self.model_combo.refresh()
            if key in combos:
                index = combos[key].findData(PRESET if value is None else value)
                if index < 0:
                    raise ValueError(f"{key} {value!r} is not offered here")
                combos[key].setCurrentIndex(index)
            elif key in spins:
                spins[key].setValue(0 if value is None else value)
            elif key == "store":
                self.store_edit.setText("" if value is None else str(value))
            elif key == "live_preview":
                self.live_check.setChecked(bool(value))
            elif key == "sigma":
                self.set_noise_source(float(value))

    # ------------------------------------------------------------------ gathering
    def _options(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model_combo.currentData() or "default",
            "device": self.device_combo.currentData(),
        }
        sampler = self.sampler_combo.currentData()
        if sampler != PRESET:
            kwargs["sampler"] = sampler
            kwargs["steps"] = int(self.steps_spin.value())
        if sampler == "indi":
            kwargs["eta"] = float(self.eta_spin.value())
            kwargs["samples"] = int(self.samples_spin.value())
        if self.wiener_combo.currentData() != PRESET:
            kwargs["wiener"] = self.wiener_combo.currentData()
        seed = int(self.seed_spin.value())
        # (a fresh seed is drawn here, so that the result's metadata reproduces it)
        kwargs["seed"] = int(np.random.SeedSequence().entropy % 2**31) if seed < 0 else seed
        if self.tile_spin.value():
            kwargs["tile_size"] = int(self.tile_spin.value())
        if self.batch_spin.value():
            kwargs["batch_size"] = int(self.batch_spin.value())
        return kwargs

    def _source_layer(self) -> napari.layers.Image:
        layer = self.image_layer
        if layer is None:
            raise ValueError("no image layer: open an image (or File > Open Sample) first")
        check_not_rgb(layer, tuple(layer_array(layer).shape), name=repr(layer.name))
        return layer

    def _noise(self, kwargs: dict[str, Any]) -> Any:
        """Put ``sigma`` in ``kwargs``, or return the time-map layer (``None``: blind)."""
        choice = self.noise_picker.currentData()
        if choice == SIGMA:
            kwargs["sigma"] = float(self.sigma_spin.value())
        elif choice != BLIND:
            layer = self.noise_picker.layer
            if layer is None:
                raise ValueError("the selected time-map layer was removed")
            return layer
        return None

    @staticmethod
    def _map_slice(time_map: Any, plane: tuple, region: tuple = ()) -> Any:
        """A copy of the part of a time-map layer that goes with ``plane`` (and the
        ``(rows, cols)`` ``region``) of the image, as a Labels layer of its own (a 2D map
        applies to every plane): painting during a run does not change the run, and a
        stopped run resumes with the map it started with."""
        if time_map is None:
            return None
        from napari.layers import Labels

        data = time_map.data
        index = (*plane, *region) if data.ndim > 2 else tuple(region)
        return Labels(np.array(data[index]), metadata=dict(time_map.metadata))

    def _gather(self) -> _Job:
        layer = self._source_layer()
        data = layer_array(layer)
        kwargs = self._options()
        time_map = self._noise(kwargs)
        placement = Placement.of(layer)
        job = _Job(layer.unique_id, layer, placement, kwargs)
        job.time_map_name = None if time_map is None else time_map.name
        shape = tuple(int(s) for s in data.shape)
        if len(shape) > 2 and self.scope_combo.currentData() == "slice":
            job.plane = image_plane_index(self.viewer, layer)
            shape = shape[-2:]
        job.time_map = self._map_slice(time_map, job.plane or ())
        job.pixels = float(np.prod(shape))
        lazy = not isinstance(data, np.ndarray)
        output = self.output_combo.currentData()
        big = job.pixels * np.dtype(data.dtype).itemsize > STORE_BYTES
        if job.plane is None and (output == "store" or (output == "auto" and (lazy or big))):
            job.out = self._store_path(layer)
        job.progressive = job.plane is None and (
            len(shape) > 2 or int(np.prod(shape[-2:])) > LARGE_PLANE
        )
        return job

    def _store_path(self, layer: Any) -> Path:
        text = self.store_edit.text().strip()
        if text:
            return Path(text).expanduser()
        source = getattr(getattr(layer, "source", None), "path", None)
        stem = re.sub(r"[^\w.-]+", "_", layer.name).strip("_") or "image"
        folder = Path(tempfile.gettempdir()) / "napari-diffdenoise"
        if source:
            here = Path(source)
            if here.parent.is_dir():
                folder = here.parent
                stem = re.sub(r"(\.ome)?\.(zarr|tiff?)$", "", here.name) or stem
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem} denoised.zarr"
        n = 2
        while path.exists():
            path = folder / f"{stem} denoised-{n}.zarr"
            n += 1
        return path

    def _choose_store(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Write the denoised image to", self.store_edit.text(), "zarr store (*.zarr)"
        )
        if path:
            self.store_edit.setText(path if path.endswith(".zarr") else path + ".zarr")
            self.output_combo.setCurrentIndex(self.output_combo.findData("store"))

    # ------------------------------------------------------------------ run
    def run(self, *, start: bool = True) -> GeneratorWorker | None:
        """Denoise the selected image (whole stack or current slice) in a background thread.

        For console use. Returns the worker, or ``None`` when the input is refused or a run is
        going (the reason is in :attr:`last_error` / the status line, and notified).
        """
        if self.worker is not None and self.worker in self.workers:
            self.set_status("A run is already going; cancel it first.")
            return None
        try:
            job = self._gather()
        except (ValueError, TypeError, LookupError, OSError) as exc:
            self.show_error(exc)
            return None
        return self._start(job, start=start)

    def resume(self, *, start: bool = True) -> GeneratorWorker | None:
        """Finish the last stopped run in its zarr store (same input, parameters and store).

        For console use. Returns the worker, or ``None`` when there is nothing to resume.
        """
        job = self._stopped
        if job is None:
            self.set_status("Nothing to resume: no run was stopped with a zarr store.")
            return None
        if self.worker is not None and self.worker in self.workers:
            self.set_status("A run is already going; cancel it first.")
            return None
        job.rate = ProgressRate()
        job.planes_shown = -1
        return self._start(job, start=start)

    def _start(self, job: _Job, *, start: bool) -> GeneratorWorker:
        self._preview_timer.stop()  # the run has the CPU to itself
        if self.preview_worker is not None:
            self.cancel_worker(self.preview_worker, "a run started")
        self.result = None
        self.last_error = None
        self._stopped = None
        self._job = job
        image = job.image
        worker = self.start_worker(
            _run_job,
            image,
            job.plane,
            job.time_map,
            job.kwargs,
            job.out,
            on_yield=lambda p: self._on_progress(job, p),
            on_return=lambda result: self._on_returned(job, result),
            on_error=lambda exc: self._on_errored(job, exc),
            on_abort=lambda: self._on_aborted(job),
            on_finish=self._on_finished,
            start=False,
        )
        self.worker = worker
        self.run_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.show_progress(0, 1, "starting…")
        where = "" if job.out is None else f" into {job.out}"
        self.set_status(f"Denoising {job.placement.name!r}{where}…")
        if start:
            worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running denoise (within one batch of tiles) and a running preview.

        For console use. A run writing to a zarr store leaves it resumable (:meth:`resume`);
        an in-memory run adds nothing.
        """
        self._preview_timer.stop()
        if self.preview_worker is not None:
            self.cancel_worker(self.preview_worker)
        if self.worker is not None and self.worker in self.workers:
            self.cancel_worker(self.worker)
            self.set_status("Cancelling…")

    def _on_progress(self, job: _Job, progress: Any) -> None:
        done, total = int(progress[0]), int(progress[1])
        self.show_progress(done, total, job.rate.text(done, total, job.pixels))
        output = getattr(progress, "output", None)
        if not job.progressive or output is None:
            return
        if job.layer is None:
            job.layer = self._add_result(job, output, partial=True)
        planes = getattr(progress, "planes_done", 0)
        if job.layer not in self.viewer.layers:
            return
        # a store is redrawn as planes finish; an in-memory result also as its tiles finish
        # (the engine writes them in provisionally), at most every REFRESH_S seconds
        now = time.monotonic()
        tiles_in = job.out is None and now - job.shown_at >= REFRESH_S
        if planes != job.planes_shown or tiles_in:
            job.planes_shown, job.shown_at = planes, now
            job.layer.refresh()

    def _name(self, job: _Job) -> str:
        name = f"{job.placement.name} denoised"
        if job.plane is None:
            return name
        labels = list(job.placement.axis_labels or ())[: len(job.plane)]
        named = [
            (lab, i)
            for lab, i in zip(labels, job.plane)
            if lab and not re.fullmatch(r"(axis )?-?\d+", lab)
        ]
        if len(named) == len(job.plane):
            where = ", ".join(f"{lab} {i}" for lab, i in named)
        elif len(job.plane) == 1:
            where = f"slice {job.plane[0]}"
        else:
            where = "slice " + ", ".join(str(i) for i in job.plane)
        return f"{name} ({where})"

    def _placed(self, job: _Job, array: Any) -> tuple[Any, dict[str, Any]]:
        """``array`` (the result of the whole image or of one plane) and its placement."""
        if job.plane is None:
            return array, job.placement.kwargs()
        lead = len(job.plane)
        data = np.asarray(array)[(np.newaxis,) * lead]
        return data, job.placement.kwargs(offset=(*job.plane, 0, 0))

    def _add_result(self, job: _Job, image: Any, *, partial: bool, meta: dict | None = None):
        data, where = self._placed(job, image)
        limits = job.placement.contrast_limits
        entry = {"source": job.placement.name, "partial": partial, **(meta or {})}
        with self.holding():
            return self.viewer.add_image(
                data,
                name=self._name(job),
                contrast_limits=limits,
                metadata=tagged(ROLE_DENOISED, entry),
                **where,
            )

    def _record(self, job: _Job, result: DenoiseResult) -> dict[str, Any]:
        """What the result layer's metadata keeps: ``parameters`` reproduce it with
        ``denoise(source, **parameters)`` (plus the time map, named in ``time_map``)."""
        meta = dict(result.metadata or {})
        parameters = {"model": meta.get("model"), **meta.get("parameters", {})}
        if "sigma" in job.kwargs:
            parameters["sigma"] = job.kwargs["sigma"]
        meta["parameters"] = parameters
        meta["source"] = job.placement.name
        meta["time_map"] = job.time_map_name
        meta["plane"] = None if job.plane is None else list(job.plane)  # (a slice run's)
        meta["store"] = None if job.out is None else str(job.out)
        if result.wiener_weights is not None:  # wiener="auto": what was chosen, per plane
            meta["wiener_weights"] = list(result.wiener_weights)
            meta["threshold_weights"] = list(result.threshold_weights or [])
            meta["fine_patch_weights"] = list(result.fine_weights or [])
        return meta

    def _on_returned(self, job: _Job, result: DenoiseResult) -> None:
        self.result = result
        meta = {**self._record(job, result), "partial": False}
        layer = job.layer
        if layer is not None and layer in self.viewer.layers:
            layer.data = self._placed(job, result.image)[0]
            layer.metadata = tagged(ROLE_DENOISED, meta)
            layer.refresh()
        else:
            layer = self._add_result(job, result.image, partial=False, meta=meta)
        added = [layer]
        if result.std is not None:
            data, where = self._placed(job, result.std)
            entry = {
                "source": job.placement.name,
                "units": "image intensity units (std over samples)",
            }
            with self.holding():
                added.append(
                    self.viewer.add_image(
                        data,
                        name=self._name(job).replace(" denoised", " uncertainty", 1),
                        colormap="inferno",
                        metadata=tagged(ROLE_UNCERTAINTY, entry),
                        **where,
                    )
                )
        self.layers_added = added
        self.set_status(f"Done: {added[0].name!r}.{_advice(result)}")
        self.viewer.update_console({"denoise_result": result})

    def _drop_partial(self, job: _Job) -> None:
        """Remove an in-memory partial result (a store's stays: it can be resumed)."""
        if job.out is None and job.layer is not None and job.layer in self.viewer.layers:
            self.viewer.layers.remove(job.layer)
            job.layer = None

    def _on_errored(self, job: _Job, exc: BaseException) -> None:
        self._drop_partial(job)
        self.show_error(exc)

    def _on_aborted(self, job: _Job) -> None:
        reason = self.cancelled(self.worker) if self.worker is not None else None
        why = "" if reason is None or reason[0] == "cancelled" else f" ({reason[0]})"
        if job.out is not None:
            self._stopped = job
            self.set_status(
                f"Stopped{why}: the finished planes are in {job.out}; press Resume to finish."
            )
        else:
            self._drop_partial(job)
            self.set_status(f"Cancelled{why}; nothing was added.")

    def _on_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(self._stopped is not None)
        self.progress.setVisible(False)

    @property
    def resumable(self) -> bool:
        return self._stopped is not None

    # ------------------------------------------------------------------ preview
    def _schedule_preview(self, *_: Any) -> None:
        if self.live_check.isChecked() and not self.closed:
            self._preview_timer.start()

    def _live_preview(self) -> None:
        if (
            self.live_check.isChecked()
            and not self.closed
            and not self._job_running()
            and self.image_layer is not None
        ):
            self.preview()

    def _on_camera(self, event: Any = None) -> None:
        layer = self.image_layer
        if layer is not None and max(layer_array(layer).shape[-2:]) > PREVIEW_SIDE:
            self._schedule_preview()

    def _watch_time_map(self, *_: Any) -> None:
        """Refresh the live preview when the chosen time map is painted."""
        old, new = self._watched_map, self.noise_picker.layer
        if old is new:
            return
        if old is not None:
            for emitter in (old.events.paint, old.events.data):
                self.disconnect_viewer(emitter, self._schedule_preview)
        if new is not None:
            for emitter in (new.events.paint, new.events.data):
                self.connect_viewer(emitter, self._schedule_preview)
        self._watched_map = new

    def preview_region(self) -> tuple[tuple[int, ...], slice, slice]:
        """``(plane, rows, cols)`` of the image the preview denoises: the current plane, cut
        to the visible region where it is larger than ``PREVIEW_SIDE`` pixels a side (at most
        ``PREVIEW_SIDE`` pixels around the visible region's centre)."""
        return preview_region(self.viewer, self._source_layer(), PREVIEW_SIDE)

    def preview(self, *, start: bool = True) -> GeneratorWorker | None:
        """Denoise what is on screen into the "<image> preview" layer, in a background thread.

        For console use. A newer preview replaces a running one (its result is dropped).
        Returns the worker, or ``None`` when the input is refused or a run is going (the run
        has the CPU; preview once it is done).
        """
        if self._job_running():
            self.set_status("A run is going: preview once it is done (or cancel it).")
            return None
        try:
            layer = self._source_layer()
            kwargs = self._options()
            time_map = self._noise(kwargs)
            plane, rows, cols = self.preview_region()
            index = (*plane, rows, cols)
            tm = self._map_slice(time_map, plane, (rows, cols))
        except (ValueError, TypeError, LookupError, OSError) as exc:
            self.show_error(exc)
            return None
        if self.preview_worker is not None:
            self.cancel_worker(self.preview_worker, "replaced by a newer preview")
        self._preview_token += 1
        token = self._preview_token
        job = _Job(layer.unique_id, layer, Placement.of(layer), kwargs, plane=plane)
        job.time_map_name = None if time_map is None else time_map.name
        job.pixels = float((rows.stop - rows.start) * (cols.stop - cols.start))
        offset = (*plane, rows.start, cols.start)
        worker = self.start_worker(
            _preview_job,
            layer,
            index,
            tm,
            kwargs,
            on_yield=lambda p: self._on_preview_progress(token, job, p),
            on_return=lambda result: self._on_preview(token, job, offset, result),
            on_error=lambda exc: self._on_preview_error(token, exc),
            on_abort=lambda: self._on_preview_aborted(token),
            on_finish=lambda: self._on_preview_finished(token),
            layers=[layer],
            start=False,
        )
        self.preview_worker = worker
        if start:
            worker.start()
        return worker

    def _on_preview_progress(self, token: int, job: _Job, progress: Any) -> None:
        if token == self._preview_token and not self._job_running():
            done, total = int(progress[0]), int(progress[1])
            self.show_progress(done, total, "preview: " + job.rate.text(done, total, job.pixels))

    def _on_preview(self, token: int, job: _Job, offset: tuple, result: DenoiseResult) -> None:
        if token != self._preview_token:  # a newer preview is on its way
            return
        image = np.asarray(result.image)
        data = image[(np.newaxis,) * len(job.plane)]
        meta = tagged(
            ROLE_PREVIEW,
            {
                "source": job.placement.name,
                "plane": list(job.plane),
                "offset": [int(o) for o in offset[-2:]],
                "parameters": self._record(job, result)["parameters"],
            },
        )
        self.preview_layer = self.show_preview(
            self.preview_layer,
            data,
            job.placement,
            name=f"{job.placement.name} preview",
            metadata=meta,
            offset=offset,
        )
        self.set_status(f"Preview of {job.placement.name!r} updated.{_advice(result)}")

    def _on_preview_error(self, token: int, exc: BaseException) -> None:
        if token == self._preview_token:
            self.show_error(exc)

    def _on_preview_aborted(self, token: int) -> None:
        # (a preview replaced by a newer one, or by a run, says nothing)
        if token == self._preview_token and not self._job_running():
            reason = self.cancelled(self.preview_worker) if self.preview_worker else None
            why = "" if reason is None or reason[0] == "cancelled" else f" ({reason[0]})"
            self.set_status(f"Preview cancelled{why}.")

    def _on_preview_finished(self, token: int) -> None:
        if token == self._preview_token and not self._job_running():
            self.progress.setVisible(False)

    def _job_running(self) -> bool:
        return self.worker is not None and self.worker in self.workers

    # ------------------------------------------------------------------ closing
    def on_shutdown(self) -> None:
        self._preview_timer.stop()
        self._watched_map = None  # (disconnected with the other viewer connections)
        if self._job is not None and self._job_running():
            self._drop_partial(self._job)


def _advice(result: DenoiseResult) -> str:
    """What the user can act on after a run (" ..." or "")."""
    w = result.wiener_weights
    if w is None:
        return ""
    if not w:
        return (
            " Salt-and-pepper noise: the non-local filter was skipped (it only helps "
            "Gaussian-like noise)."
        )
    mean = float(np.mean(w))
    if mean <= 0.3:
        return (
            " The non-local filter changed little here: set Advanced › non-local to 'off' "
            "to run faster."
        )
    return (
        f" The non-local filter was blended in at about {mean:.0%} (repeated structure found); "
        "keep 'auto' for such images, or set a fixed weight to run faster."
    )
