"""The "Fine-tune" dock widget: adapt a model to the user's microscope, from napari.

A thin Qt skin over :func:`napari_diffdenoise.training.finetune.iter_fine_tune` (the generator
form of :func:`napari_diffdenoise.fine_tune`), built on :class:`._base.WorkerDockWidget`:

- **Data**: noisy/clean pairs from two layers or two folders, or noisy images alone (checked
  layers, or a folder); the base model, the budget (minutes or steps), the new model's name.
- **Start / Stop**: the run goes on in a background thread; Stop (and closing the widget) ends
  it at the next step, and the core still saves the best model so far.
- **Live plot** of the training loss and the validation figure (true PSNR for pairs, the
  task's self-supervised figure for noisy images alone), redrawn at most a few times a second.
- **Before/after preview**: at every validation that finds new best weights, a region of an
  image (the last rectangle of the "fine-tune preview region" Shapes layer, else what is on
  screen) is denoised with those weights into the "fine-tune preview" layer, beside the base
  model's result ("fine-tune preview (base model)"), in a worker; stale results are dropped.
  The weights are copied only while there is an image to preview on; after the run the
  preview uses the saved model (by name: no network is kept).
- At the end the new model is listed in every open Denoiser (and here, as a base).

Console use: :meth:`FineTuneWidget.set_parameters`, :meth:`~FineTuneWidget.start`,
:meth:`~FineTuneWidget.stop`, :meth:`~FineTuneWidget.preview`; the attributes
:attr:`~FineTuneWidget.model_name` and :attr:`~FineTuneWidget.history`.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ._base import (
    LayerPicker,
    ModelCombo,
    Placement,
    WorkerDockWidget,
    duration,
    preview_region,
    refuse_image,
)
from ._combo import layer_by_id
from ._layers import ROLE_FINE_TUNE_PREVIEW, layer_array, layer_role, tagged

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.qt.threading import GeneratorWorker

    from napari_diffdenoise.training.finetune import FineTuneProgress

__all__ = ["FineTuneWidget", "MODES", "PREVIEW_REGION", "PREVIEW_LAYER", "BASE_PREVIEW_LAYER"]

#: the data choices: (text, key)
MODES = (
    ("pairs from two layers", "pair_layers"),
    ("pairs from two folders", "pair_folders"),
    ("noisy layers only", "noisy_layers"),
    ("noisy folder only", "noisy_folder"),
)
#: the Shapes layer whose last rectangle is the preview region
PREVIEW_REGION = "fine-tune preview region"
#: the layer showing the region denoised with the best weights so far
PREVIEW_LAYER = "fine-tune preview"
#: the layer showing the region denoised with the base model
BASE_PREVIEW_LAYER = "fine-tune preview (base model)"
#: the preview denoises at most this many pixels a side
PREVIEW_SIDE = 256
#: the preview follows an edit of the region after this delay (ms)
REGION_DELAY_MS = 300
#: the plot is redrawn at most this often (ms)
PLOT_INTERVAL_MS = 250
AUTO = "auto"
OFF = "off"
_BG = "#262930"  # napari's dark theme
_FG = "#f0f1f2"
_LOSS = "#7fb2ff"
_FIGURE = "#ff9f43"


# --------------------------------------------------------------------------- worker bodies


def _train_job(kwargs: dict[str, Any], snapshots: dict[str, bool]) -> Generator:
    """Worker body: drive ``iter_fine_tune(**kwargs)``, yield ``(record, best)`` pairs where
    ``best`` is a frozen copy of the best weights (a ``LoadedModel``) whenever a validation
    found new best weights (step 0: the base model) and ``snapshots["on"]``, else ``None``.
    Returns the saved model's name. Closing this generator closes the core's (which saves)."""
    from napari_diffdenoise.training.finetune import iter_fine_tune

    steps = iter_fine_tune(**kwargs)
    try:
        while True:
            try:
                record = next(steps)
            except StopIteration as stop:
                return stop.value
            best = _best_weights(record, kwargs["base"]) if snapshots.get("on") else None
            yield record, best
    finally:
        steps.close()


def _best_weights(record: FineTuneProgress, base: str) -> Any:
    """The run's new best weights (``record.best_weights``, a CPU state dict the core hands out
    when a validation finds them) as a frozen ``LoadedModel`` for the preview, or ``None``."""
    from napari_diffdenoise.model.registry import LoadedModel, model_path
    from napari_diffdenoise.model.weights import load_weights

    if record.best_weights is None:
        return None
    path, _preset = model_path(base)
    net, info = load_weights(path)  # a fresh network of the base's architecture
    net.load_state_dict(record.best_weights)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return LoadedModel(
        name=f"{record.name} (step {record.best_step})",
        path=path,
        net=net,
        info=info,
    )


def _preview_job(image: Any, index: tuple, models: dict[str, Any], device: str) -> Generator:
    """Worker body of the preview: read the region (here, in the worker thread) and denoise it
    with each of ``models`` (key → ``LoadedModel`` or a model's name); returns key → image."""
    from napari_diffdenoise.engine.denoise import iter_denoise

    crop = np.asarray(layer_array(image)[index])
    out = {}
    for key, model in models.items():
        result = yield from iter_denoise(crop, model=model, device=device)
        out[key] = np.asarray(result.image)
    return out


# --------------------------------------------------------------------------- small widgets


class _FolderRow(QWidget):
    """A folder path: a line edit and a "…" button that opens a folder dialog."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("a folder of TIFF, PNG, .npy or zarr images")
        self.button = QToolButton()
        self.button.setText("…")
        self.button.setToolTip(f"Choose the {caption}")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button)
        self.button.clicked.connect(
            lambda *_: self._choose(caption)  # pragma: no cover - a modal dialog
        )

    def _choose(self, caption: str) -> None:  # pragma: no cover - a modal dialog
        folder = QFileDialog.getExistingDirectory(self, f"Choose the {caption}", self.text())
        if folder:
            self.edit.setText(folder)

    def text(self) -> str:
        return self.edit.text().strip()


class TrainingPlot(FigureCanvasQTAgg):
    """Training loss (top) and validation figure (bottom) against the step.

    :meth:`set_history` stores the points; the canvas is redrawn by :meth:`redraw` (the widget
    calls it from a timer, at most a few times a second). ``draws`` counts the redraws.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        self.figure = Figure(figsize=(3.6, 3.2), facecolor=_BG, layout="constrained")
        super().__init__(self.figure)
        if parent is not None:
            self.setParent(parent)
        self.ax_loss = self.figure.add_subplot(2, 1, 1)
        self.ax_val = self.figure.add_subplot(2, 1, 2, sharex=self.ax_loss)
        for ax in (self.ax_loss, self.ax_val):
            ax.set_facecolor(_BG)
            ax.tick_params(colors=_FG, labelsize=7)
            for spine in ax.spines.values():
                spine.set_color(_FG)
        (self.loss_line,) = self.ax_loss.plot([], [], color=_LOSS, lw=1.0)
        (self.val_line,) = self.ax_val.plot([], [], color=_FIGURE, lw=1.2, marker="o", ms=3)
        self.base_line = self.ax_val.axhline(np.nan, color=_FG, lw=0.8, ls="--")
        self.ax_loss.set_ylabel("training loss", fontsize=7, color=_FG)
        self.setMinimumHeight(240)
        self.ax_val.set_ylabel("validation", fontsize=7, color=_FG)
        self.ax_val.set_title("held-out validation (dashed: the base model)", fontsize=7, color=_FG)
        self.ax_val.set_xlabel("step", fontsize=7, color=_FG)
        self.draws = 0
        self._dirty = False

    def set_history(self, history: list[dict[str, Any]], figure_name: str | None) -> None:
        """Take the points of ``history`` (the widget's records); drawn at the next redraw."""
        loss = [(h["step"], h["loss"]) for h in history if h.get("loss") is not None]
        val = [(h["step"], h["figure"]) for h in history if h.get("figure") is not None]
        self.loss_line.set_data(*(np.asarray(loss, dtype=float).T if loss else ([], [])))
        self.val_line.set_data(*(np.asarray(val, dtype=float).T if val else ([], [])))
        base = val[0][1] if val and val[0][0] == 0 else np.nan
        self.base_line.set_ydata([base, base])
        if figure_name:
            self.ax_val.set_ylabel(figure_name, fontsize=7, color=_FG)
        self._dirty = True

    def redraw(self, force: bool = False) -> None:
        """Redraw when new points came in (or ``force``)."""
        if not (self._dirty or force):
            return
        for ax in (self.ax_loss, self.ax_val):
            ax.relim()
            ax.autoscale_view()
        self._dirty = False
        self.draws += 1
        self.draw_idle()


# --------------------------------------------------------------------------- the widget


class FineTuneWidget(WorkerDockWidget):
    """Fine-tune a model on pairs or on noisy images alone, with a live plot and a preview.

    Attributes
    ----------
    model_name : str or None
        The model saved by the last run (also after Stop), usable as
        ``denoise(image, model=model_name)``.
    history : list of dict
        One entry per progress record of the current (or last) run: ``step``, ``loss``,
        ``lr``, ``elapsed_s``, ``figure`` (the validation figure, when computed at that step),
        ``best``, ``best_step``.
    figure_name : str or None
        What the validation figure is (``"PSNR (dB)"`` for pairs).
    worker : GeneratorWorker or None
        The worker of the last :meth:`start`.
    preview_worker : GeneratorWorker or None
        The worker of the last preview.
    last_record : FineTuneProgress or None
        The last progress record received.
    """

    title = "Fine-tune"

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        from superqt import QCollapsible

        from napari_diffdenoise.engine.device import available_devices

        self.model_name: str | None = None
        self.history: list[dict[str, Any]] = []
        self.figure_name: str | None = None
        self.worker: GeneratorWorker | None = None
        self.preview_worker: GeneratorWorker | None = None
        self.last_record: FineTuneProgress | None = None
        self.settings: dict[str, Any] = {}
        self._cancel: threading.Event | None = None
        self._snapshots = {"on": True}
        # what the preview denoises with: during a run LoadedModels of the best weights so far
        # and of the base (step 0); after it the saved model's and the base's names
        self._best: Any = None
        self._base: Any = None
        self._base_name: str | None = None
        self._preview_token = 0
        self._plot_stale = False
        self._before_region: tuple | None = None
        self._name_suggested = ""

        self.mode_combo = QComboBox()
        for text, key in MODES:
            self.mode_combo.addItem(text, key)
        self.mode_combo.setToolTip(
            "Pairs: a noisy image and its clean reference (an average, a long exposure); "
            "noisy only: self-supervised adaptation to the images' own noise"
        )
        # pairs from layers
        self.noisy_picker = LayerPicker(self.viewer, refuse_image, parent=self)
        self.noisy_picker.setToolTip("The noisy image (2D, or a stack whose planes are samples)")
        self.clean_picker = LayerPicker(self.viewer, refuse_image, parent=self)
        self.clean_picker.setToolTip("Its clean reference, of the same shape")
        self.pickers = [self.noisy_picker, self.clean_picker]
        # folders
        self.noisy_folder = _FolderRow("noisy folder")
        self.clean_folder = _FolderRow("clean folder")
        self.clean_folder.setToolTip("Files are matched to the noisy folder's by name")
        # noisy layers
        self.noisy_list = QListWidget()
        self.noisy_list.setToolTip("Tick the noisy Image layers to adapt on")
        self.noisy_list.setMaximumHeight(110)

        self.base_combo = ModelCombo()
        self.base_combo.refresh()
        self.base_combo.setToolTip("The model to start from (presets and saved models)")
        self.budget_spin = QDoubleSpinBox()
        self.budget_spin.setRange(0.1, 1e6)
        self.budget_spin.setDecimals(1)
        self.budget_spin.setValue(5.0)
        self.budget_unit = QComboBox()
        self.budget_unit.addItem("minutes", "minutes")
        self.budget_unit.addItem("steps", "steps")
        self.budget_unit.setToolTip(
            "The run stops at the budget (or earlier, when the validation figure stops "
            "improving); the learning rate decays over it"
        )
        self.name_edit = QLineEdit()
        self.name_edit.setToolTip("The new model's name (letters, digits, '_', '-', '.')")
        self.replace_check = QCheckBox("replace a model of that name")
        self.preview_picker = LayerPicker(
            self.viewer,
            refuse_image,
            extra=[("the training image", AUTO), ("off", OFF)],
            parent=self,
        )
        self.preview_picker.setToolTip(
            "Image whose region is denoised before/after as training goes: the last rectangle "
            f"of the {PREVIEW_REGION!r} Shapes layer, else what is on screen"
        )
        self.pickers.append(self.preview_picker)
        self.region_button = QPushButton("Draw region")
        self.region_button.setToolTip(f"Add the {PREVIEW_REGION!r} Shapes layer and draw on it")
        # advanced
        self.device_combo = QComboBox()
        for dev in ["auto", *available_devices()]:
            self.device_combo.addItem(dev, dev)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(-1, 2**31 - 1)
        self.seed_spin.setValue(-1)
        self.seed_spin.setSpecialValueText("random")
        self.seed_spin.setToolTip("Seed of the run (random: recorded in the model's JSON)")
        self.validation_spin = QDoubleSpinBox()
        self.validation_spin.setRange(0.0, 0.5)
        self.validation_spin.setSingleStep(0.05)
        self.validation_spin.setValue(0.1)
        self.validation_spin.setToolTip(
            "Share of the planes (or, for one image, of its rows) held out to validate"
        )

        self.pairs_box = _form(("noisy", self.noisy_picker), ("clean", self.clean_picker))
        self.folders_box = _form(
            ("noisy folder", self.noisy_folder), ("clean folder", self.clean_folder)
        )
        self._clean_folder_label = self.folders_box.layout().labelForField(self.clean_folder)
        self.noisy_box = _form(("noisy layers", self.noisy_list))
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.budget_spin, 1)
        budget_row.addWidget(self.budget_unit)
        preview_row = QHBoxLayout()
        preview_row.addWidget(self.preview_picker, 1)
        preview_row.addWidget(self.region_button)
        form = QFormLayout()
        form.addRow("base model", self.base_combo)
        form.addRow("budget", budget_row)
        form.addRow("name", self.name_edit)
        form.addRow("", self.replace_check)
        form.addRow("preview", preview_row)
        advanced = _form(
            ("device", self.device_combo),
            ("seed", self.seed_spin),
            ("validation share", self.validation_spin),
        )
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(advanced)

        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("Stop at the next step; the best model so far is saved")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        self.plot = TrainingPlot(self)

        layout = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow("data", self.mode_combo)
        layout.addLayout(top)
        for box in (self.pairs_box, self.folders_box, self.noisy_box):
            layout.addWidget(box)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.plot, 1)
        self.set_status("Choose the data, then Start.")

        self._plot_timer = QTimer(self)
        self._plot_timer.setInterval(PLOT_INTERVAL_MS)
        self._plot_timer.timeout.connect(self._update_plot)

        self.mode_combo.currentIndexChanged.connect(self._update_mode)
        self.preview_picker.currentIndexChanged.connect(self._on_preview_choice)
        self.noisy_picker.currentIndexChanged.connect(self._update_snapshots)
        self.noisy_list.itemChanged.connect(self._update_snapshots)
        self.budget_unit.currentIndexChanged.connect(
            lambda *_: self.budget_spin.setDecimals(
                0 if self.budget_unit.currentData() == "steps" else 1
            )
        )
        self.base_combo.currentIndexChanged.connect(lambda *_: self._suggest_name())
        self.start_button.clicked.connect(lambda *_: self.start())
        self.stop_button.clicked.connect(lambda *_: self.stop())
        self.region_button.clicked.connect(lambda *_: self.add_region_layer())
        self._region_timer = QTimer(self)
        self._region_timer.setSingleShot(True)
        self._region_timer.setInterval(REGION_DELAY_MS)
        self._region_timer.timeout.connect(lambda: self.preview())
        self._watched_region: Any = None
        for name in ("inserted", "removed", "renamed"):
            for callback in (self._refresh_noisy_list, self._watch_region):
                self.connect_viewer(getattr(self.viewer.layers.events, name), callback)
        self._refresh_noisy_list()
        self._suggest_name()
        self._update_mode()

    # ------------------------------------------------------------------ form
    @property
    def mode(self) -> str:
        """The data choice: ``"pair_layers"``, ``"pair_folders"``, ``"noisy_layers"`` or
        ``"noisy_folder"``."""
        return self.mode_combo.currentData()

    def _on_preview_choice(self, *_: Any) -> None:
        self._update_snapshots()
        if self._best is not None and self.preview_image is not None:
            self._region_timer.start()

    def _update_snapshots(self, *_: Any) -> None:
        # (the run copies its best weights for the preview only while there is an image to
        # preview on: not with "off", nor in the folder modes with "the training image")
        self._snapshots["on"] = self.preview_image is not None

    def _update_mode(self, *_: Any) -> None:
        mode = self.mode
        self.pairs_box.setVisible(mode == "pair_layers")
        self.folders_box.setVisible(mode in ("pair_folders", "noisy_folder"))
        self.clean_folder.setVisible(mode == "pair_folders")
        if self._clean_folder_label is not None:
            self._clean_folder_label.setVisible(mode == "pair_folders")
        self.noisy_box.setVisible(mode == "noisy_layers")
        self._update_snapshots()

    def _suggest_name(self) -> None:
        """Suggest a fresh name from the base model (unless the user typed one)."""
        from napari_diffdenoise.training.finetune import default_name

        current = self.name_edit.text().strip()
        if current and current != self._name_suggested:
            return
        self._name_suggested = default_name(self.base_combo.currentData() or "default")
        self.name_edit.setText(self._name_suggested)

    def _refresh_noisy_list(self, event: Any = None) -> None:
        """Relist the Image layers (ticks kept by layer)."""
        ticked = {uid for uid in self._ticked_ids()}
        self.noisy_list.blockSignals(True)
        self.noisy_list.clear()
        for layer in self.viewer.layers:
            if refuse_image(layer) is not None:
                continue
            item = QListWidgetItem(layer.name)
            item.setData(Qt.ItemDataRole.UserRole, layer.unique_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = layer.unique_id in ticked
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.noisy_list.addItem(item)
        self.noisy_list.blockSignals(False)
        self._update_snapshots()

    def _ticked_ids(self) -> list[Any]:
        out = []
        for i in range(self.noisy_list.count()):
            item = self.noisy_list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    @property
    def noisy_layers(self) -> list[napari.layers.Image]:
        """The ticked noisy layers ("noisy layers only")."""
        layers = [layer_by_id(self.viewer, uid) for uid in self._ticked_ids()]
        return [lay for lay in layers if lay is not None]

    def set_noisy_layers(self, layers: list[Any]) -> None:
        """Tick exactly ``layers`` (layers or names) in the "noisy layers only" list;
        ``ValueError`` for a layer that is absent or not a single-channel Image."""
        names = [lay if isinstance(lay, str) else lay.name for lay in layers]
        wanted = set()
        for name in names:
            found = next((lay for lay in self.viewer.layers if lay.name == name), None)
            if found is None:
                raise ValueError(f"no layer named {name!r} in the viewer")
            reason = refuse_image(found)
            if reason is not None:
                raise ValueError(reason)
            wanted.add(found.unique_id)
        self._refresh_noisy_list()
        for i in range(self.noisy_list.count()):
            item = self.noisy_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in wanted
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def set_parameters(self, **params: Any) -> None:
        """Set parameters by value, for console use (``viewer.window.dock_widgets`` → this
        widget).

        Keys: ``mode`` (``"pair_layers"``, ``"pair_folders"``, ``"noisy_layers"``,
        ``"noisy_folder"``), ``noisy`` (a layer or its name; a list of them for
        ``"noisy_layers"``; a folder for the folder modes), ``clean`` (a layer or name, or a
        folder), ``base`` (a name from ``list_models()``), ``max_minutes`` or ``max_steps``
        (the budget; one of them), ``name`` (``None``: a fresh suggestion), ``replace``,
        ``device``, ``seed`` (``None``: random), ``validation_fraction``, ``preview``
        (``"auto"``: the training image, ``"off"``, or an Image layer or its name) and
        ``settings`` (a dict of :class:`~napari_diffdenoise.training.finetune.FineTuneSettings`
        fields, e.g. ``{"patch_size": 48}``; console only). ``ValueError`` for unknown keys
        or values not offered.
        """
        known = {
            "mode",
            "noisy",
            "clean",
            "base",
            "max_minutes",
            "max_steps",
            "name",
            "replace",
            "device",
            "seed",
            "validation_fraction",
            "preview",
            "settings",
        }
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))}")
        if "max_minutes" in params and "max_steps" in params:
            raise ValueError("give the budget in minutes or in steps, not both")
        if "mode" in params:
            _pick(self.mode_combo, params["mode"], "mode")
        folders = self.mode in ("pair_folders", "noisy_folder")
        for key, value in params.items():
            if key == "noisy":
                if folders:
                    self.noisy_folder.edit.setText(str(value))
                elif self.mode == "noisy_layers":
                    self.set_noisy_layers(value if isinstance(value, (list, tuple)) else [value])
                else:
                    self.noisy_picker.pick(value)
            elif key == "clean":
                if folders:
                    self.clean_folder.edit.setText(str(value))
                else:
                    self.clean_picker.pick(value)
            elif key == "base":
                self.base_combo.refresh()
                _pick(self.base_combo, value, "base model")
            elif key in ("max_minutes", "max_steps"):
                _pick(self.budget_unit, "minutes" if key == "max_minutes" else "steps", key)
                self.budget_spin.setValue(float(value))
            elif key == "name":
                if value is None:
                    self.name_edit.setText("")
                    self._name_suggested = ""
                    self._suggest_name()
                else:
                    self.name_edit.setText(str(value))
            elif key == "replace":
                self.replace_check.setChecked(bool(value))
            elif key == "device":
                _pick(self.device_combo, value, "device")
            elif key == "seed":
                self.seed_spin.setValue(-1 if value is None else int(value))
            elif key == "validation_fraction":
                self.validation_spin.setValue(float(value))
            elif key == "preview":
                if value in (AUTO, OFF):
                    self.preview_picker.pick_data(value)
                else:
                    self.preview_picker.pick(value)
            elif key == "settings":
                from napari_diffdenoise.training.finetune import FineTuneSettings

                settings = dict(value or {})
                FineTuneSettings(**settings)  # checked now, not in the run
                self.settings = settings

    def parameters(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~napari_diffdenoise.fine_tune` the form stands for
        (what :meth:`start` runs); ``ValueError`` saying what is missing."""
        from pathlib import Path

        mode = self.mode
        kwargs: dict[str, Any] = {}
        if mode == "pair_layers":
            noisy, clean = self.noisy_picker.layer, self.clean_picker.layer
            if noisy is None or clean is None:
                raise ValueError("pick a noisy and a clean Image layer (open them first)")
            if noisy.unique_id == clean.unique_id:
                raise ValueError(
                    f"the noisy and the clean layer are the same ({noisy.name!r}); pick the "
                    "clean reference of the noisy image"
                )
            kwargs["pairs"] = [(noisy, clean)]
        elif mode == "noisy_layers":
            layers = self.noisy_layers
            if not layers:
                raise ValueError("tick at least one noisy Image layer in the list")
            kwargs["noisy"] = layers
        else:
            noisy_dir = self.noisy_folder.text()
            if not noisy_dir:
                raise ValueError("choose the folder of noisy images")
            if not Path(noisy_dir).is_dir():
                raise FileNotFoundError(f"the noisy folder {noisy_dir} does not exist")
            if mode == "pair_folders":
                clean_dir = self.clean_folder.text()
                if not clean_dir:
                    raise ValueError("choose the folder of clean images")
                if not Path(clean_dir).is_dir():
                    raise FileNotFoundError(f"the clean folder {clean_dir} does not exist")
                kwargs["pairs"] = (noisy_dir, clean_dir)
            else:
                kwargs["noisy"] = noisy_dir
        kwargs["base"] = self.base_combo.currentData() or "default"
        name = self.name_edit.text().strip()
        if not name:
            raise ValueError("give the new model a name")
        kwargs["name"] = name
        kwargs["replace"] = self.replace_check.isChecked()
        if self.budget_unit.currentData() == "steps":
            kwargs["max_steps"] = max(1, round(self.budget_spin.value()))
        else:
            kwargs["max_minutes"] = float(self.budget_spin.value())
        kwargs["device"] = self.device_combo.currentData()
        seed = int(self.seed_spin.value())
        kwargs["seed"] = None if seed < 0 else seed
        kwargs["validation_fraction"] = float(self.validation_spin.value())
        if self.settings:
            kwargs["settings"] = dict(self.settings)
        return kwargs

    # ------------------------------------------------------------------ the run
    def start(self, *, start: bool = True) -> GeneratorWorker | None:
        """Start fine-tuning with the form's parameters, in a background thread.

        For console use. Returns the worker (its ``finished`` signal ends the run; its
        ``returned`` gives the saved model's name), or ``None`` when the input is refused (the
        reason is in the status line and a notification). ``start=False`` returns the worker
        unstarted (call ``worker.start()``).
        """
        if self.running:
            self.show_error(RuntimeError("a run is going on; stop it first"))
            return None
        try:
            kwargs = self.parameters()
            _check_name_free(kwargs["name"], kwargs["replace"])
        except (ValueError, TypeError, LookupError, OSError) as exc:
            self.show_error(exc)
            return None
        self.last_error = None
        self.history = []
        self.figure_name = None
        self.last_record = None
        self.model_name = None
        self._best = self._base = None
        self._base_name = kwargs["base"]
        self._before_region = None
        self._update_snapshots()
        self.plot.set_history([], None)
        self.plot.redraw(force=True)
        self._cancel = threading.Event()
        kwargs["cancel"] = self._cancel
        worker = self.start_worker(
            _train_job,
            kwargs,
            self._snapshots,
            on_yield=self._on_progress,
            on_return=self._on_return,
            on_finish=self._on_finish,
            start=False,
        )
        self.worker = worker
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.show_progress(0, 1000, "preparing the data and validating the base model…")
        self.set_status(f"Fine-tuning {kwargs['base']!r} into {kwargs['name']!r}…")
        self._plot_timer.start()
        if start:
            worker.start()
        return worker

    @property
    def running(self) -> bool:
        """A run is going on."""
        return self.worker is not None and self.worker in self.workers

    def stop(self) -> None:
        """Stop the run at its next step, for console use; the best model so far is saved
        (the run's worker then returns its name)."""
        if not self.running or self._cancel is None:
            return
        self._cancel.set()
        self.stop_button.setEnabled(False)
        self.set_status("Stopping: the best model so far is being saved…")

    def _on_progress(self, item: tuple[FineTuneProgress, Any]) -> None:
        record, best = item
        self.last_record = record
        self.figure_name = record.figure_name
        entry = {
            "step": record.step,
            "loss": record.loss,
            "lr": record.lr,
            "elapsed_s": record.elapsed_s,
            "figure": None if record.validation is None else record.validation["figure"],
            "best": record.best,
            "best_step": record.best_step,
        }
        self.history.append(entry)
        self._plot_stale = True
        self.show_progress(round(1000 * record.fraction), 1000, _progress_text(record))
        if best is not None:
            if record.step == 0:
                self._base = best
            self._best = best
            if not self._cancel_requested():
                self.preview()

    def _update_plot(self) -> None:
        """Give the plot the new points, at most every ``PLOT_INTERVAL_MS`` (a timer)."""
        if self._plot_stale:
            self._plot_stale = False
            self.plot.set_history(self.history, self.figure_name)
            self.plot.redraw()

    def _cancel_requested(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def _on_return(self, name: str) -> None:
        self.model_name = name
        self._announce(name)
        record = self.last_record
        if record is None:
            self.set_status(f"Saved the model {name!r}.")
            return
        how = _stopped_text(record, self._cancel_requested())
        if record.best_step == 0:
            self.set_status(
                f"{how} No step beat the base model on held-out data ({record.figure_name} "
                f"{record.base:.2f}): saved the base, unchanged, as {name!r}."
            )
        else:
            self.set_status(
                f"{how} Saved {name!r}: {record.figure_name} {record.base:.2f} → "
                f"{record.best:.2f} on held-out data (best at step {record.best_step}). It is "
                "listed in the Denoiser's models."
            )

    def _on_finish(self) -> None:
        self._plot_timer.stop()
        self._update_plot()
        self.progress.setVisible(False)
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        # the run's networks are let go: later previews load the saved model by name
        saved = self.model_name is not None
        self._best = self.model_name if saved else None
        self._base = self._base_name if saved else None
        if saved:  # the next run gets a fresh name
            self._suggest_name()

    def _announce(self, name: str) -> None:
        """The new model appears in every open Denoiser and in this widget's base list."""
        self.base_combo.refresh()
        for widget in list(self.viewer.window.dock_widgets.values()):
            refresh = getattr(widget, "refresh_models", None)
            if callable(refresh) and widget is not self:
                refresh()

    # ------------------------------------------------------------------ preview
    def add_region_layer(self) -> napari.layers.Shapes:
        """Add (or select) the "fine-tune preview region" Shapes layer, ready to draw a
        rectangle on; its last rectangle is the preview region."""
        if PREVIEW_REGION in self.viewer.layers:
            layer = self.viewer.layers[PREVIEW_REGION]
        else:
            source = self.preview_image
            ndim = 2 if source is None else source.ndim
            kwargs = (
                {} if source is None else {"scale": source.scale, "translate": source.translate}
            )
            layer = self.viewer.add_shapes(
                name=PREVIEW_REGION,
                ndim=ndim,
                edge_color="yellow",
                face_color="transparent",
                edge_width=2,
                **kwargs,
            )
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        self._watch_region()
        return layer

    def _watch_region(self, event: Any = None) -> None:
        """Follow the edits of the region layer: a new rectangle refreshes the preview."""
        layers = self.viewer.layers
        new = layers[PREVIEW_REGION] if PREVIEW_REGION in layers else None
        if new is self._watched_region:
            return
        if self._watched_region is not None:
            self.disconnect_viewer(self._watched_region.events.data, self._on_region_edit)
        if new is not None:
            self.connect_viewer(new.events.data, self._on_region_edit)
        self._watched_region = new

    def _on_region_edit(self, event: Any = None) -> None:
        if self._best is not None and not self.closed:
            self._region_timer.start()

    @property
    def preview_image(self) -> napari.layers.Image | None:
        """The Image layer the preview denoises a region of (``None``: off, or nothing to
        show: in the folder modes, pick an image under "preview")."""
        choice = self.preview_picker.currentData()
        if choice == OFF:
            return None
        if choice != AUTO:
            return self.preview_picker.layer
        if self.mode == "pair_layers":
            return self.noisy_picker.layer
        if self.mode == "noisy_layers":
            layers = self.noisy_layers
            return layers[0] if layers else None
        return None  # folders: pick an image to preview on

    def preview_region(self, layer: Any) -> tuple[tuple[int, ...], slice, slice]:
        """``(plane, rows, cols)`` of ``layer`` that the preview denoises: the bounding box of
        the last shape of the "fine-tune preview region" layer, else the visible region; at
        most ``PREVIEW_SIDE`` pixels a side around its centre."""
        box = None
        if PREVIEW_REGION in self.viewer.layers:
            shapes = self.viewer.layers[PREVIEW_REGION]
            if len(shapes.data):
                yx = np.asarray(shapes.data[-1], dtype=float)[:, -2:]
                world = yx * np.asarray(shapes.scale[-2:]) + np.asarray(shapes.translate[-2:])
                pix = (world - np.asarray(layer.translate[-2:])) / np.asarray(layer.scale[-2:])
                box = np.stack([pix.min(axis=0), pix.max(axis=0)])
        return preview_region(self.viewer, layer, PREVIEW_SIDE, box)

    def preview(self, *, start: bool = True) -> GeneratorWorker | None:
        """Denoise the preview region with the best weights so far (and, when the region
        changed, with the base model) into the preview layers, in a background thread.

        For console use; called by itself whenever a validation finds new best weights. A
        newer preview replaces a running one (its result is dropped). Returns the worker, or
        ``None`` (no run yet, or no image to preview on).
        """
        layer = self.preview_image
        if layer is None or layer not in self.viewer.layers or self._best is None:
            return None
        try:
            plane, rows, cols = self.preview_region(layer)
        except (ValueError, IndexError) as exc:
            self.show_error(exc)
            return None
        region = (plane, rows.start, rows.stop, cols.start, cols.stop)
        models = {PREVIEW_LAYER: self._best}
        base_shown = BASE_PREVIEW_LAYER in self.viewer.layers
        shown = (layer.unique_id, region)  # (another image or region: the base's again)
        if self._base is not None and (shown != self._before_region or not base_shown):
            models[BASE_PREVIEW_LAYER] = self._base
        if self.preview_worker is not None:
            self.cancel_worker(self.preview_worker, "replaced by a newer preview")
        self._preview_token += 1
        token = self._preview_token
        placement = Placement.of(layer)
        step = self.last_record.best_step if self.last_record is not None else 0
        worker = self.start_worker(
            _preview_job,
            layer,
            (*plane, rows, cols),
            models,
            self.device_combo.currentData(),
            on_return=lambda out: self._on_preview(token, placement, shown, step, out),
            on_error=lambda exc: token == self._preview_token and self.show_error(exc),
            on_abort=lambda: None,  # (replaced by a newer one, or its image was removed)
            layers=[layer],
            start=False,
        )
        self.preview_worker = worker
        if start:
            worker.start()
        return worker

    def _on_preview(
        self, token: int, placement: Placement, shown: tuple, step: int, out: dict
    ) -> None:
        if token != self._preview_token:  # a newer preview is on its way
            return
        plane, r0, _, c0, _ = shown[1]
        for name, image in out.items():
            data = image[(np.newaxis,) * len(plane)]
            meta = tagged(
                ROLE_FINE_TUNE_PREVIEW,
                {
                    "source": placement.name,
                    "plane": list(plane),
                    "offset": [int(r0), int(c0)],
                    "step": 0 if name == BASE_PREVIEW_LAYER else int(step),
                },
            )
            target = self.viewer.layers[name] if name in self.viewer.layers else None
            if target is not None and layer_role(target) != ROLE_FINE_TUNE_PREVIEW:
                target = None  # (a layer of the user's that happens to have that name)
            self.show_preview(
                target, data, placement, name=name, metadata=meta, offset=(*plane, r0, c0)
            )
            if name == BASE_PREVIEW_LAYER:
                self._before_region = shown

    # ------------------------------------------------------------------ closing
    def on_shutdown(self) -> None:
        self._plot_timer.stop()
        self._region_timer.stop()
        self._watched_region = None  # (disconnected with the other viewer connections)
        self._best = self._base = None  # the networks are let go


# --------------------------------------------------------------------------- helpers


def _check_name_free(name: str, replace: bool) -> None:
    """Refuse a name that is taken (unless ``replace``) before the run starts."""
    from napari_diffdenoise.model.registry import PRESETS, user_models_dir

    if name in PRESETS:
        raise ValueError(f"{name!r} is a bundled preset's name; choose another name")
    folder = user_models_dir()
    taken = (folder / f"{name}.safetensors").exists() or (folder / f"{name}.json").exists()
    if taken and not replace:
        raise FileExistsError(
            f"a model named {name!r} exists in {folder}; tick 'replace' to replace it, or "
            "choose another name"
        )


def _form(*rows: tuple[str, QWidget]) -> QWidget:
    box = QWidget()
    form = QFormLayout(box)
    form.setContentsMargins(0, 0, 0, 0)
    for label, widget in rows:
        form.addRow(label, widget)
    return box


def _pick(combo: QComboBox, value: Any, what: str) -> None:
    index = combo.findData(value)
    if index < 0:
        offered = ", ".join(repr(combo.itemData(i)) for i in range(combo.count()))
        raise ValueError(f"{what} {value!r} is not offered here (offered: {offered})")
    combo.setCurrentIndex(index)


def _progress_text(record: FineTuneProgress) -> str:
    """``"step 12 / 100 · loss 0.052 · best PSNR (dB) 21.30 · 40 s left"``."""
    parts = [f"step {record.step}" + (f" / {record.total}" if record.total else "")]
    if record.loss is not None:
        parts.append(f"loss {record.loss:.4f}")
    parts.append(f"best {record.figure_name} {record.best:.2f}")
    if 0 < record.fraction < 1:
        parts.append(f"{duration(record.elapsed_s * (1 - record.fraction) / record.fraction)} left")
    return " · ".join(parts)


def _stopped_text(record: FineTuneProgress, cancelled: bool) -> str:
    if cancelled:
        return f"Stopped at step {record.step}."
    return {
        "cancelled": f"Stopped at step {record.step}.",
        "early stop": f"Stopped early at step {record.step} (no more gain).",
        "budget": f"Done ({record.step} steps).",
    }.get(record.stopped or "", f"Done ({record.step} steps).")
