"""What every dock widget of the plugin repeats, in one place.

- :class:`LayerPicker`: a combo box of layers that follows the viewer's layer list (and, on
  request, the layer selected in it), with a filter that says *why* a layer is refused.
- :class:`WorkerDockWidget`: a ``QWidget`` base with a status line (errors in red and as napari
  notifications), a determinate progress bar with rate (MP/s) and ETA, and the worker lifecycle:
  a core generator run in a ``thread_worker``, cancelled when the widget is closed (nothing is
  added afterwards) or, on request, when one of its layers is removed.
- :class:`Placement`: where a result goes (scale, translate, units, axis labels, contrast
  limits), captured from the source layer when a run starts.

To adopt it, subclass :class:`WorkerDockWidget`, build the form, put :attr:`status_label` and
:attr:`progress` in the layout, and start work with :meth:`WorkerDockWidget.start_worker`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QComboBox, QLabel, QProgressBar, QWidget

from ._combo import layer_by_id, refill, set_error, set_status

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.qt.threading import GeneratorWorker

__all__ = ["LayerPicker", "ModelCombo", "Placement", "ProgressRate", "WorkerDockWidget"]

#: layer-list events after which pickers refresh
LAYER_EVENTS = ("inserted", "removed", "moved", "reordered", "renamed")


class LayerPicker(QComboBox):
    """A combo box of the viewer's layers accepted by ``refuse`` (plus fixed ``extra`` items).

    Parameters
    ----------
    viewer : napari.Viewer
    refuse : callable
        ``refuse(layer)`` returns ``None`` for a layer that may be picked, or the reason
        (text) why it may not; refused layers are not listed.
    extra : list of (text, data), optional
        Fixed items listed first (e.g. ``("estimate (blind)", "estimate")``).
    label : callable, optional
        The text of a layer's item (default: its name).
    follow_selection : bool
        Pick the layer selected in the layer list whenever it is accepted.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        refuse: Callable[[Any], str | None],
        *,
        extra: Iterable[tuple[str, Any]] = (),
        label: Callable[[Any], str] | None = None,
        follow_selection: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.refuse = refuse
        self.extra = list(extra)
        self.label = label or (lambda layer: layer.name)
        self.follow_selection = follow_selection
        #: while > 0, selection changes are not followed (the widget's own additions)
        self.hold = 0
        events = viewer.layers.events
        self._callbacks = [(getattr(events, n), self.refresh) for n in LAYER_EVENTS]
        if follow_selection:
            self._callbacks.append((viewer.layers.selection.events.active, self._on_active))
        for emitter, callback in self._callbacks:
            emitter.connect(callback)
        self.refresh()

    def disconnect_viewer(self) -> None:
        """Stop following the viewer (the owning widget closes)."""
        for emitter, callback in self._callbacks:
            try:
                emitter.disconnect(callback)
            except (TypeError, ValueError, RuntimeError):  # pragma: no cover - already gone
                pass
        self._callbacks = []

    def refresh(self, event: Any = None) -> None:
        """Relist the accepted layers, keeping the current choice where it is still there."""
        items = list(self.extra)
        items += [(self.label(lay), lay.unique_id) for lay in self.viewer.layers if self._ok(lay)]
        before = current = self.currentData()
        if current not in [d for _, d in items] and not self.extra:
            active = self.viewer.layers.selection.active
            current = active.unique_id if active is not None and self._ok(active) else None
            if current is None and items:
                current = items[-1][1]
        refill(self, items, current)
        if self.currentData() != before:  # (refill keeps quiet when only the data moved)
            self.currentIndexChanged.emit(self.currentIndex())

    def _ok(self, layer: Any) -> bool:
        return self.refuse(layer) is None

    def _on_active(self, event: Any = None) -> None:
        active = self.viewer.layers.selection.active
        if self.hold or active is None or not self._ok(active):
            return
        index = self.findData(active.unique_id)
        if index >= 0 and index != self.currentIndex():
            self.setCurrentIndex(index)

    @property
    def layer(self) -> Any:
        """The picked layer, or ``None`` (nothing picked, or an ``extra`` item)."""
        data = self.currentData()
        return None if data is None else layer_by_id(self.viewer, data)

    def pick(self, layer: Any) -> None:
        """Pick ``layer`` (a layer or its name); ``ValueError`` saying why when it is refused
        or absent."""
        name = layer if isinstance(layer, str) else layer.name
        found = next((lay for lay in self.viewer.layers if lay.name == name), None)
        if found is None:
            raise ValueError(f"no layer named {name!r} in the viewer")
        reason = self.refuse(found)
        if reason is not None:
            raise ValueError(reason)
        self.refresh()
        self.setCurrentIndex(self.findData(found.unique_id))

    def pick_data(self, data: Any) -> None:
        """Pick the ``extra`` item whose data is ``data``."""
        index = self.findData(data)
        if index < 0:
            raise ValueError(f"{data!r} is not offered here")
        self.setCurrentIndex(index)


class ModelCombo(QComboBox):
    """The model list, re-read from :func:`~napari_diffdenoise.list_models` whenever it opens
    (models saved by fine-tuning appear without restarting napari)."""

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        self.refresh()
        super().showPopup()

    def refresh(self) -> None:
        from napari_diffdenoise import list_models
        from napari_diffdenoise.model.registry import PRESETS

        names = list_models()
        current = self.currentData()
        if [self.itemData(i) for i in range(self.count())] != names:
            self.blockSignals(True)
            self.clear()
            for name in names:
                preset = PRESETS.get(name)
                self.addItem(name, name)
                self.setItemData(
                    self.count() - 1,
                    preset.description if preset else "a saved (fine-tuned) model",
                    Qt.ItemDataRole.ToolTipRole,
                )
            self.blockSignals(False)
        index = self.findData(current if current in names else "default")
        self.setCurrentIndex(max(index, 0))


@dataclass
class Placement:
    """Where a result layer goes, captured from the source layer when a run starts (so it
    survives the source being removed or moved during the run)."""

    name: str
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple[str, ...] | None
    axis_labels: tuple[str, ...] | None
    contrast_limits: tuple[float, float] | None

    @classmethod
    def of(cls, layer: Any) -> Placement:
        units = getattr(layer, "units", None)
        labels = getattr(layer, "axis_labels", None)
        limits = getattr(layer, "contrast_limits", None)
        return cls(
            name=str(layer.name),
            scale=tuple(float(s) for s in layer.scale),
            translate=tuple(float(t) for t in layer.translate),
            units=None if units is None else tuple(str(u) for u in units),
            axis_labels=None if labels is None else tuple(str(a) for a in labels),
            contrast_limits=None if limits is None else (float(limits[0]), float(limits[1])),
        )

    def kwargs(self, offset: tuple[float, ...] | None = None) -> dict[str, Any]:
        """``add_image`` keyword arguments for a result of the source's dimensionality,
        shifted by ``offset`` pixels per axis (a region or a plane of the source)."""
        translate = np.asarray(self.translate, dtype=float)
        if offset is not None:
            translate = translate + np.asarray(offset, dtype=float) * np.asarray(self.scale)
        kwargs: dict[str, Any] = {"scale": self.scale, "translate": tuple(translate.tolist())}
        if self.units is not None:
            kwargs["units"] = self.units
        if self.axis_labels is not None:
            kwargs["axis_labels"] = self.axis_labels
        return kwargs


class ProgressRate:
    """Rate (megapixels per second) and time left of a run, from its :class:`Progress`
    ``(done, total)`` units and the pixels they stand for."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: int | None = None

    def text(self, done: int, total: int, pixels_total: float, unit: str = "tiles") -> str:
        """``"12 / 40 tiles · 1.3 MP/s · 4 s left"`` (rate and time once measurable)."""
        if self.first is None:  # (units done before this run, e.g. resumed: not counted)
            self.first = done
            self.start = time.perf_counter()
        parts = [f"{done} / {total} {unit}"]
        elapsed = time.perf_counter() - self.start
        moved = done - self.first
        if moved > 0 and elapsed > 0 and total > 0:
            rate = moved / elapsed
            parts.append(f"{rate * pixels_total / total / 1e6:.2f} MP/s")
            parts.append(f"{_duration((total - done) / rate)} left")
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


class _Counted:
    """Re-yields a generator's items and counts them (the worker's own count, read by tests
    and :meth:`WorkerDockWidget.cancel_workers` to check how soon a cancel lands)."""

    def __init__(self) -> None:
        self.count = 0

    def run(self, steps: Generator) -> Generator:
        try:
            while True:
                try:
                    item = next(steps)
                except StopIteration as stop:
                    return stop.value
                except RuntimeError as exc:
                    # (a worker takes a RuntimeError for its own deletion and only warns)
                    raise WorkError(str(exc)) from exc
                self.count += 1
                yield item
        finally:
            steps.close()  # a cancelled run cleans up (threads, partial stores) here


class WorkError(Exception):
    """A ``RuntimeError`` raised by the work (out of memory, a device error), passed on."""


def _drive(counter: _Counted, make: Callable[..., Generator], args: tuple) -> Generator:
    """Worker body: the core generator built and driven in the worker thread."""
    return (yield from counter.run(make(*args)))


def _worker_class() -> type:
    from napari.qt.threading import GeneratorWorker

    class Worker(GeneratorWorker):
        """A ``GeneratorWorker`` that closes its generator, in its own thread, when it is
        cancelled (so the core's clean-up runs before ``finished``)."""

        def work(self) -> Any:
            try:
                return super().work()
            finally:
                if self.abort_requested:
                    self._gen.close()

    return Worker


class WorkerDockWidget(QWidget):
    """Base of the plugin's dock widgets: status line, progress, worker lifecycle.

    Attributes
    ----------
    viewer : napari.Viewer
    status_label : QLabel
        The status line (errors in red).
    progress : QProgressBar
        Determinate progress of the running work (hidden when idle).
    last_error : str or None
        The last error shown.
    closed : bool
        The widget was closed: running work was cancelled, nothing more is added.
    """

    #: name shown before error notifications
    title = "napari-diffdenoise"

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.last_error: str | None = None
        self.closed = False
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setVisible(False)
        self.pickers: list[LayerPicker] = []
        self._workers: dict[Any, dict[str, Any]] = {}
        self._removed_cb = (self.viewer.layers.events.removed, self._on_layer_removed)
        self._removed_cb[0].connect(self._removed_cb[1])

    # ------------------------------------------------------------------ status
    def set_status(self, text: str) -> None:
        """Show ``text`` in the status line."""
        set_status(self.status_label, text)

    def show_error(self, exc: BaseException, *, notify: bool = True) -> None:
        """Show ``exc`` in red in the status line and (``notify``) as a napari notification."""
        self.last_error = set_error(self.status_label, exc, notify=notify, source=self.title)

    def show_progress(self, done: int, total: int, text: str | None = None) -> None:
        """Set the determinate progress bar (``text`` shown on it)."""
        self.progress.setVisible(True)
        self.progress.setRange(0, max(1, int(total)))
        self.progress.setValue(min(int(done), max(1, int(total))))
        if text is not None:
            self.progress.setFormat(text)

    # ------------------------------------------------------------------ workers
    def start_worker(
        self,
        make: Callable[..., Generator],
        *args: Any,
        on_yield: Callable[[Any], Any] | None = None,
        on_return: Callable[[Any], Any] | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
        on_abort: Callable[[], Any] | None = None,
        on_finish: Callable[[], Any] | None = None,
        layers: Iterable[Any] = (),
        start: bool = True,
    ) -> GeneratorWorker:
        """Run the generator ``make(*args)`` in a ``thread_worker``.

        The callbacks run in the GUI thread and are dropped once the widget is closed. Errors
        are shown (status line and notification) unless ``on_error`` handles them. The work is
        cancelled when one of ``layers`` leaves the viewer. ``worker.counter.count`` is the
        number of items the generator has yielded so far.
        """
        counter = _Counted()
        worker = _worker_class()(_drive, counter, make, args)
        worker.counter = counter
        entry = {"layers": {lay.unique_id for lay in layers}, "cancelled": None}
        self._workers[worker] = entry

        def live(callback: Callable | None) -> Callable:
            def call(*a: Any) -> None:
                if callback is not None and not self.closed:
                    callback(*a)

            return call

        def errored(exc: BaseException) -> None:
            if self.closed:
                return
            if on_error is not None:
                on_error(exc)
            else:
                self.show_error(exc)

        def finished() -> None:
            self._workers.pop(worker, None)
            live(on_finish)()

        worker.yielded.connect(live(on_yield))
        worker.returned.connect(live(on_return))
        worker.errored.connect(errored)
        worker.aborted.connect(live(on_abort))
        worker.finished.connect(finished)
        if start:
            worker.start()
        return worker

    @property
    def workers(self) -> list[GeneratorWorker]:
        """The workers started and not finished yet."""
        return list(self._workers)

    def cancel_worker(self, worker: GeneratorWorker | None, reason: str = "cancelled") -> None:
        """Ask ``worker`` to stop at its next yield (it emits ``aborted``, then ``finished``)."""
        if worker is None or worker not in self._workers:
            return
        entry = self._workers[worker]
        if entry["cancelled"] is None:
            entry["cancelled"] = (reason, worker.counter.count)
            worker.cancel_count = worker.counter.count  # (items yielded when asked to stop)
        worker.quit()

    def cancelled(self, worker: GeneratorWorker) -> tuple[str, int] | None:
        """``(reason, yields when cancelled)`` of a cancelled running worker, else ``None``."""
        entry = self._workers.get(worker)
        return None if entry is None else entry["cancelled"]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every running worker of this widget has finished, for console use.

        The Qt event loop keeps running meanwhile (the viewer stays live, progress and layers
        are added as usual), so ``widget.run(); widget.wait()`` in napari's console or a
        script behaves like pressing the button and waiting. Returns ``False`` when
        ``timeout`` (seconds) ran out first.
        """
        import time

        from qtpy.QtCore import QCoreApplication, QEventLoop

        end = None if timeout is None else time.monotonic() + timeout
        while self._workers:
            if end is not None and time.monotonic() > end:
                return False
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)
        QCoreApplication.processEvents()
        return True

    def cancel_workers(self, reason: str = "cancelled") -> None:
        """Cancel every running worker."""
        for worker in self.workers:
            self.cancel_worker(worker, reason)

    def _on_layer_removed(self, event: Any) -> None:
        uid = getattr(event.value, "unique_id", None)
        for worker, entry in list(self._workers.items()):
            if uid in entry["layers"]:
                self.cancel_worker(worker, f"layer {event.value.name!r} was removed")

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        """Cancel running work, stop following the viewer; nothing is added afterwards.

        Called when the dock widget is closed (its ``x``), or when the widget is closed.
        """
        if self.closed:
            return
        self.closed = True
        self.cancel_workers("the widget was closed")
        for picker in self.pickers:
            picker.disconnect_viewer()
        try:
            self._removed_cb[0].disconnect(self._removed_cb[1])
        except (TypeError, ValueError, RuntimeError):  # pragma: no cover
            pass
        self.on_shutdown()

    def on_shutdown(self) -> None:
        """Hook for subclasses: release what they connected (called once, on close)."""

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)

    def event(self, event: Any) -> bool:
        # napari closes a plugin dock widget by taking it out of its dock (setParent(None))
        if (
            event.type() == QEvent.Type.ParentChange
            and self.parent() is None
            and getattr(self, "_docked", False)
        ):
            self.shutdown()
        elif event.type() == QEvent.Type.ParentChange and self.parent() is not None:
            self._docked = True
        return super().event(event)
