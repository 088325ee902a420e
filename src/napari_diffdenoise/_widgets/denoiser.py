"""The "Denoiser" dock widget: denoise an image layer with the diffusion model.

A thin Qt skin over :func:`napari_diffdenoise.engine.denoise.iter_denoise` (the generator form
of :func:`napari_diffdenoise.denoise`): it gathers parameters, runs the generator in a
``thread_worker`` (progress after each network evaluation, cancel between evaluations) and adds
the result (and the uncertainty, with several stochastic samples) as Image layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._validation import check_not_rgb
from ._combo import disconnect_all, layer_by_id, refill, select_text, set_error, set_status
from ._layers import image_plane_index, layer_array, placement

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.qt.threading import GeneratorWorker

    from napari_diffdenoise.engine.denoise import DenoiseResult

__all__ = ["DenoiserWidget"]

BLIND = "estimate"
SIGMA = "sigma"
PRESET = "preset"
SAMPLERS = ("direct", "origin", "cold", "indi")
_LAYER_EVENTS = ("inserted", "removed", "moved", "reordered", "renamed")


def _run(data: Any, kwargs: dict[str, Any]):
    """Worker body: the public generator, re-yielded so the worker can cancel between steps."""
    from napari_diffdenoise.engine.denoise import iter_denoise

    result = yield from iter_denoise(data, **kwargs)
    return result


class DenoiserWidget(QWidget):
    """Denoise an Image layer, blind or with a σ value or a painted time-map Labels layer.

    Attributes
    ----------
    result : DenoiseResult or None
        The last finished run.
    worker : GeneratorWorker or None
        The worker of the last :meth:`run` call.
    last_error : str or None
        The last error shown in the status line.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from napari_diffdenoise import list_models
        from napari_diffdenoise.engine.device import available_devices

        self.viewer = napari_viewer
        self.result: DenoiseResult | None = None
        self.worker: GeneratorWorker | None = None
        self.last_error: str | None = None
        self.layers_added: list[Any] = []

        self.image_combo = QComboBox()
        self.image_combo.setToolTip("Image layer to denoise (single channel, 2D or nD)")
        self.noise_combo = QComboBox()
        self.noise_combo.setToolTip(
            "Where the noise level comes from: estimated from the image (blind), one σ value, "
            "or a time-map Labels layer (from the Noise inspector, painted as you like)"
        )
        self.sigma_spin = QDoubleSpinBox()
        self.sigma_spin.setRange(0.0, 1e9)
        self.sigma_spin.setDecimals(3)
        self.sigma_spin.setValue(10.0)
        self.sigma_spin.setToolTip("Noise standard deviation in the image's intensity units")
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("current slice", "slice")
        self.scope_combo.addItem("whole stack", "stack")
        from napari_diffdenoise.model.registry import PRESETS

        self.model_combo = QComboBox()
        for name in list_models():
            self.model_combo.addItem(name, name)
            preset = PRESETS.get(name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1,
                preset.description if preset else "a saved (fine-tuned) model",
                Qt.ItemDataRole.ToolTipRole,
            )
        self.model_combo.setToolTip(
            "default: one network call; fast: the same in bfloat16 where "
            "that is faster (GPUs; CPUs where it measures faster: "
            "~1.7× there, else as default); "
            "quality: 8-fold self-ensemble blended with "
            "non-local (BM3D-style) filters (slower); "
            "fine-tuned models appear here too"
        )
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
            "Stochastic samples (indi, η > 0): the mean is returned and "
            "their spread is added as an uncertainty layer"
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
            "Blend in a non-local (collaborative Wiener) estimate that draws on similar patches "
            "across the image: it helps repeated structure (stripes, lattices); a few seconds "
            "more per 512² plane on a laptop CPU. 'auto' also blends a hard-thresholding "
            "estimate into the Wiener filter's guide, mixes a 4×4-patch Wiener estimate with "
            "the 8×8 one, and picks the weights per plane by SURE (one more network pass, and "
            "six filter passes where a fixed weight runs one); "
            "'model default' = the preset's (quality: auto, others: off)"
        )
        self.device_combo = QComboBox()
        for dev in ["auto", *available_devices()]:
            self.device_combo.addItem(dev, dev)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(-1, 2**31 - 1)
        self.seed_spin.setValue(0)
        self.seed_spin.setToolTip("Seed of stochastic sampling (-1: a fresh random seed)")

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("noise level", self.noise_combo)
        form.addRow("σ (image units)", self.sigma_spin)
        form.addRow("scope", self.scope_combo)
        form.addRow("model", self.model_combo)
        form.addRow("sampler", self.sampler_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("η", self.eta_spin)
        form.addRow("samples", self.samples_spin)
        form.addRow("non-local", self.wiener_combo)
        form.addRow("device", self.device_combo)
        form.addRow("seed", self.seed_spin)

        self.run_button = QPushButton("Denoise")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status_label = QLabel("Pick an image and press Denoise.")
        self.status_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.run_button.clicked.connect(lambda *_: self.run())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())
        self.noise_combo.currentIndexChanged.connect(self._update_enabled)
        self.sampler_combo.currentIndexChanged.connect(self._update_enabled)
        self.samples_spin.valueChanged.connect(self._update_enabled)
        self.image_combo.currentIndexChanged.connect(self._update_enabled)

        events = self.viewer.layers.events
        callbacks = [(getattr(events, n), self.reset_choices) for n in _LAYER_EVENTS]
        for emitter, cb in callbacks:
            emitter.connect(cb)
        self.destroyed.connect(lambda *_: disconnect_all(callbacks))
        self.reset_choices()

    # ------------------------------------------------------------------ choices
    def reset_choices(self, event: Any = None) -> None:
        """Refresh the layer pickers from ``viewer.layers`` (keeps the current choices)."""
        from napari.layers import Image, Labels

        layers = list(self.viewer.layers)
        images = [
            (lay.name, lay.unique_id)
            for lay in layers
            if isinstance(lay, Image) and "source" not in lay.metadata
        ]
        current = self.image_combo.currentData()
        if current not in [uid for _, uid in images] and images:
            active = self.viewer.layers.selection.active
            current = (
                active.unique_id
                if isinstance(active, Image) and active.unique_id in [u for _, u in images]
                else images[-1][1]
            )
        refill(self.image_combo, images, current)
        noise = [("estimate (blind)", BLIND), ("σ value", SIGMA)]
        noise += [
            (f"time map: {lay.name}", lay.unique_id) for lay in layers if isinstance(lay, Labels)
        ]
        refill(self.noise_combo, noise, self.noise_combo.currentData())
        self._update_enabled()

    def _update_enabled(self, *_: Any) -> None:
        sampler = self.sampler_combo.currentData()
        self.sigma_spin.setEnabled(self.noise_combo.currentData() == SIGMA)
        self.steps_spin.setEnabled(sampler not in (PRESET, "direct"))
        self.eta_spin.setEnabled(sampler == "indi")
        layer = self.image_layer
        self.scope_combo.setEnabled(layer is not None and np.ndim(layer_array(layer)) > 2)

    def _layer_by_id(self, uid: Any) -> Any:
        return layer_by_id(self.viewer, uid)

    @property
    def image_layer(self) -> napari.layers.Image | None:
        uid = self.image_combo.currentData()
        return None if uid is None else self._layer_by_id(uid)

    def set_image_layer(self, layer: napari.layers.Image | str) -> None:
        select_text(self.image_combo, layer if isinstance(layer, str) else layer.name)

    def set_noise_source(self, source: Any) -> None:
        """``"estimate"``, a σ value (float), or a Labels layer (or its name) as time map."""
        if isinstance(source, str) and source == BLIND:
            self.noise_combo.setCurrentIndex(self.noise_combo.findData(BLIND))
        elif isinstance(source, (int, float)) and not isinstance(source, bool):
            self.noise_combo.setCurrentIndex(self.noise_combo.findData(SIGMA))
            self.sigma_spin.setValue(float(source))
        else:
            name = source if isinstance(source, str) else source.name
            select_text(self.noise_combo, f"time map: {name}")

    def set_parameters(self, **params: Any) -> None:
        """Set any of ``model, sampler, steps, eta, samples, wiener, device, seed, scope`` by
        value (``None`` for sampler or wiener: the model's default)."""
        combos = {
            "model": self.model_combo,
            "sampler": self.sampler_combo,
            "device": self.device_combo,
            "scope": self.scope_combo,
            "wiener": self.wiener_combo,
        }
        spins = {
            "steps": self.steps_spin,
            "eta": self.eta_spin,
            "samples": self.samples_spin,
            "seed": self.seed_spin,
        }
        for key, value in params.items():
            if key in combos:
                index = combos[key].findData(PRESET if value is None else value)
                if index < 0:
                    raise ValueError(f"{key} {value!r} is not offered here")
                combos[key].setCurrentIndex(index)
            elif key in spins:
                spins[key].setValue(value)
            else:
                raise ValueError(f"unknown parameter {key!r}")

    # ------------------------------------------------------------------ run
    def _gather(self) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
        layer = self.image_layer
        if layer is None:
            raise ValueError("no image layer: open an image (or File > Open Sample) first")
        data = layer_array(layer)
        check_not_rgb(layer, data.shape, name=repr(layer.name))
        meta: dict[str, Any] = {}
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
        kwargs["seed"] = None if seed < 0 else seed
        source = self.noise_combo.currentData()
        time_map = None
        if source == SIGMA:
            kwargs["sigma"] = float(self.sigma_spin.value())
        elif source != BLIND:
            time_map = self._layer_by_id(source)
            if time_map is None:
                raise ValueError("the selected time-map layer was removed")
        if np.ndim(data) > 2 and self.scope_combo.currentData() == "slice":
            plane = image_plane_index(self.viewer, layer)
            data = data[plane]
            meta["plane"] = plane
            if time_map is not None:
                tm = np.asarray(time_map.data)
                if tm.ndim > 2:
                    from napari.layers import Labels

                    # that plane of the map, as a layer of its own (not added to the viewer)
                    time_map = Labels(tm[plane], metadata=dict(time_map.metadata))
        data = np.asarray(data)
        if time_map is not None:
            kwargs["time_map"] = time_map
        return layer, data, kwargs, meta

    def run(self, *, start: bool = True) -> GeneratorWorker | None:
        """Denoise the selected image in a background thread; returns the worker (or ``None``
        when the input is rejected; the reason is in :attr:`last_error`)."""
        if self.worker is not None and self.worker.is_running:
            self._status("A run is already going; cancel it first.")
            return None
        try:
            layer, data, kwargs, meta = self._gather()
        except (ValueError, TypeError, LookupError, OSError) as exc:
            self._error(exc, notify=True)
            return None
        from napari.qt.threading import create_worker

        self.result = None
        self.last_error = None
        source = layer.unique_id
        worker = create_worker(
            _run,
            data,
            kwargs,
            _start_thread=False,
            _connect={
                "yielded": self._on_progress,
                "returned": lambda res: self._on_returned(res, source, meta),
                "errored": self._on_errored,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
        )
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._status(f"Denoising {layer.name!r}…")
        if start:
            worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running denoise between two network evaluations; nothing is added."""
        if self.worker is not None and self.worker.is_running:
            self.worker.quit()
            self._status("Cancelling…")

    def _on_progress(self, value: tuple[int, int]) -> None:
        done, total = value
        self.progress.setRange(0, int(total))
        self.progress.setValue(int(done))

    def _on_returned(self, result: DenoiseResult, source: Any, meta: dict) -> None:
        self.result = result
        layer = self._layer_by_id(source)
        name = layer.name if layer is not None else "image"
        where_kw = placement(layer, result.image.ndim) if layer is not None else {}
        where = f" (plane {meta['plane']})" if "plane" in meta else ""
        limits = layer.contrast_limits if layer is not None else None
        weights = {}
        if result.wiener_weights is not None:  # wiener="auto": what SURE chose, per plane
            weights = {
                "wiener_weights": list(result.wiener_weights),
                "threshold_weights": list(result.threshold_weights),
                "fine_patch_weights": list(result.fine_weights),
            }
        added = [
            self.viewer.add_image(
                result.image,
                name=f"{name} denoised{where}",
                contrast_limits=limits,
                metadata={"source": name, **meta, **weights},
                **where_kw,
            )
        ]
        if result.std is not None:
            added.append(
                self.viewer.add_image(
                    result.std,
                    name=f"{name} uncertainty{where}",
                    colormap="inferno",
                    metadata={"source": name, "units": "image intensity units (std)", **meta},
                    **where_kw,
                )
            )
        self.layers_added = added
        kind = f", noise: {result.report.kind}" if result.report is not None else ""
        self._status(f"Done: added {added[0].name!r}{kind}{_weights_text(result)}.")
        self.viewer.update_console({"denoise_result": result})

    def _on_errored(self, exc: BaseException) -> None:
        self._error(exc, notify=False)

    def _on_aborted(self) -> None:
        self._status("Cancelled; nothing was added.")

    def _on_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)

    def _status(self, text: str) -> None:
        set_status(self.status_label, text)

    def _error(self, exc: BaseException, *, notify: bool) -> None:
        self.last_error = set_error(self.status_label, exc, notify=notify, source="Denoiser")


def _weights_text(result: DenoiseResult) -> str:
    """The non-local weights ``wiener="auto"`` chose, for the status line ("" otherwise)."""
    w, b, c = result.wiener_weights, result.threshold_weights, result.fine_weights
    if w is None:
        return ""
    if not w:
        return "; non-local step skipped (salt-and-pepper)"

    def span(v: list[float]) -> str:
        lo, hi = min(v), max(v)
        return f"{lo:.2f}" if hi - lo < 0.005 else f"{lo:.2f}-{hi:.2f}"

    planes = "" if len(w) == 1 else f" over {len(w)} planes"
    return (
        f"; non-local weights{planes}: Wiener {span(w)}, thresholding {span(b)}, "
        f"4×4 patches {span(c)}"
    )
