"""What every dock widget of the plugin repeats, in one place.

- :class:`LayerPicker`: a combo box of layers that follows the viewer's layer list (and, on
  request, the layer selected in it, but not the layers the plugin adds), with a filter that
  says *why* a layer is refused; :func:`refuse_image` is the filter of image inputs (helper
  layers the plugin adds, previews, σ maps, uncertainty, are never inputs).
- :class:`WorkerDockWidget`: a ``QWidget`` base with a status line (errors in red and as napari
  notifications), a determinate progress bar with rate (MP/s) and ETA, and the worker lifecycle:
  a core generator run in a ``thread_worker``, cancelled when the widget is closed (nothing is
  added afterwards) or, on request, when one of its layers is removed; viewer connections undone
  on close (:meth:`~WorkerDockWidget.connect_viewer`); preview layers added or updated in place
  (:meth:`~WorkerDockWidget.show_preview`) over the region :func:`preview_region` picks.
- :class:`Placement` (from ``_layers``): where a result goes (scale, translate, units, axis
  labels, contrast limits), captured from the source layer when a run starts.

To adopt it, subclass :class:`WorkerDockWidget`, build the form, put :attr:`status_label` and
:attr:`progress` in the layout, and start work with :meth:`WorkerDockWidget.start_worker`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QComboBox, QLabel, QProgressBar, QWidget

from ._combo import layer_by_id, refill, set_error, set_status
from ._layers import HELPER_ROLES, Placement, image_plane_index, layer_array, layer_role

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.qt.threading import GeneratorWorker

__all__ = [
    "LayerPicker",
    "ModelCombo",
    "Placement",
    "ProgressRate",
    "WorkerDockWidget",
    "duration",
    "preview_region",
    "refuse_image",
]

#: layer-list events after which pickers refresh
LAYER_EVENTS = ("inserted", "removed", "moved", "reordered", "renamed")
#: a visible (or drawn) region narrower than this many pixels is taken as the whole axis
MIN_REGION = 16
_HELPER_TEXT = {
    "preview": "a preview",
    "fine_tune_preview": "a fine-tuning preview",
    "sigma_map": "a σ map",
    "uncertainty": "an uncertainty map",
}


def refuse_image(layer: Any, *, allow_rgb: bool = False) -> str | None:
    """``None`` for a layer that may be an image input, else why not: not an Image layer, RGB
    (unless ``allow_rgb``: the caller says why later), or a helper layer the plugin added (a
    preview, a σ map, an uncertainty map: views of another image). Denoised results are
    accepted (they may be denoised or inspected again)."""
    from napari.layers import Image, Labels

    if isinstance(layer, Labels):
        return f"{layer.name!r} is a Labels layer (a segmentation or a time map), not an image"
    if not isinstance(layer, Image):
        return f"{layer.name!r} is a {type(layer).__name__} layer, not an image"
    if getattr(layer, "rgb", False) and not allow_rgb:
        return f"{layer.name!r} is an RGB(A) layer; split its channels first"
    role = layer_role(layer)
    if role in HELPER_ROLES:
        what = _HELPER_TEXT.get(role, "a helper layer")
        return f"{layer.name!r} is {what}; pick the image itself"
    return None


def preview_region(
    viewer: napari.Viewer, layer: Any, side: int, box: np.ndarray | None = None
) -> tuple[tuple[int, ...], slice, slice]:
    """``(plane, rows, cols)`` of ``layer`` that a preview denoises: the plane on screen and, in
    it, ``box`` (``[[r0, c0], [r1, c1]]`` in the layer's pixels, e.g. a drawn rectangle) or else
    the visible region (the whole axis where it is at most ``side`` pixels); at most ``side``
    pixels a side around its centre."""
    h, w = (int(s) for s in layer_array(layer).shape[-2:])
    plane = image_plane_index(viewer, layer)
    drawn = box is not None
    if box is None:
        box = np.asarray(layer.corner_pixels, dtype=float)[:, -2:]
        if getattr(layer, "multiscale", False):
            factors = np.asarray(layer.downsample_factors[layer.data_level], dtype=float)
            box = box * factors[-2:]
    box = np.asarray(box, dtype=float)
    spans = []
    for axis, n in enumerate((h, w)):
        lo, hi = int(np.floor(box[0, axis])), int(np.ceil(box[1, axis])) + 1
        lo, hi = max(0, lo), min(n, hi)
        if hi - lo < MIN_REGION or (not drawn and n <= side):  # a sliver, or it fits whole
            lo, hi = 0, n
        if hi - lo > side:
            centre = (lo + hi) // 2
            lo = max(0, min(n - side, centre - side // 2))
            hi = lo + side
        spans.append(slice(lo, hi))
    return plane, spans[0], spans[1]


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
        Pick the layer selected in the layer list whenever it is accepted, except a layer the
        plugin itself adds (one with a role, ``_layers.tagged``: napari selects every layer it
        adds, and a result of one widget must not become another widget's input unasked).
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
        self._inserted: Any = None  # unique_id of a layer the plugin just added
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
        """Relist the accepted layers, keeping the current choice where it is still there;
        ``currentIndexChanged`` is emitted once when the choice changed."""
        added = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        if added is not None and layer_role(added) is not None:
            self._inserted = added.unique_id  # (napari selects it next: not followed)
        items = list(self.extra)
        items += [(self.label(lay), lay.unique_id) for lay in self.viewer.layers if self._ok(lay)]
        before = current = self.currentData()
        before_index = self.currentIndex()
        if current not in [d for _, d in items] and not self.extra:
            active = self.viewer.layers.selection.active
            ok = active is not None and self._ok(active) and active.unique_id != self._inserted
            current = active.unique_id if ok else None
            if current is None and items:
                current = next((d for _, d in reversed(items) if d != self._inserted), items[-1][1])
        blocked = self.blockSignals(True)
        try:
            refill(self, items, current)
        finally:
            self.blockSignals(blocked)
        if self.currentData() != before or self.currentIndex() != before_index:
            self.currentIndexChanged.emit(self.currentIndex())

    def _ok(self, layer: Any) -> bool:
        return self.refuse(layer) is None

    def _on_active(self, event: Any = None) -> None:
        active = self.viewer.layers.selection.active
        if active is None:
            return
        if active.unique_id == self._inserted:
            return  # (selected by napari as the plugin added it, until another is selected)
        self._inserted = None
        if self.hold or not self._ok(active):
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
            parts.append(f"{duration((total - done) / rate)} left")
        return " · ".join(parts)


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``."""
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
        self._viewer_callbacks: list[tuple[Any, Callable]] = []
        self._previews: dict[Any, tuple] = {}  # preview layer id -> what it shows (its source)
        self.connect_viewer(self.viewer.layers.events.removed, self._on_layer_removed)

    # ------------------------------------------------------------------ viewer
    def connect_viewer(self, emitter: Any, callback: Callable) -> None:
        """Connect ``callback`` to ``emitter`` (a viewer or layer event) until the widget
        closes (:meth:`shutdown` disconnects it)."""
        emitter.connect(callback)
        self._viewer_callbacks.append((emitter, callback))

    def disconnect_viewer(self, emitter: Any, callback: Callable) -> None:
        """Undo :meth:`connect_viewer` before the widget closes (e.g. a layer no longer
        watched)."""
        try:
            emitter.disconnect(callback)
        except (TypeError, ValueError, RuntimeError):  # pragma: no cover - already gone
            pass
        self._viewer_callbacks = [
            (e, c) for e, c in self._viewer_callbacks if not (e is emitter and c == callback)
        ]

    @contextmanager
    def holding(self) -> Iterator[None]:
        """While inside, the widget's pickers do not follow the selection (its own additions,
        which napari selects)."""
        pickers = list(self.pickers)
        for picker in pickers:
            picker.hold += 1
        try:
            yield
        finally:
            for picker in pickers:
                picker.hold -= 1

    def show_preview(
        self,
        layer: Any,
        data: Any,
        placement: Placement,
        *,
        name: str,
        metadata: dict[str, Any],
        offset: tuple[float, ...] | None = None,
    ) -> Any:
        """Show ``data`` (a region of ``placement``'s source, ``offset`` pixels from its origin)
        in the preview layer ``layer``, updated in place (the user's contrast kept) while it
        previews the same source, else (``None``, removed, or another source: another name,
        scale, units or axes) removed and added again with the source's name, placement and
        contrast limits. Returns the layer."""
        where = placement.kwargs(offset=offset)
        shows = (
            placement.source_id,
            placement.name,
            placement.scale,
            placement.units,
            placement.axis_labels,
            np.ndim(data),
        )
        if layer is not None and layer in self.viewer.layers:
            if self._previews.get(layer.unique_id) == shows:
                layer.data = data
                layer.translate = where["translate"]
                layer.metadata = metadata
                return layer
            self._previews.pop(layer.unique_id, None)
            self.viewer.layers.remove(layer)
        with self.holding():
            layer = self.viewer.add_image(
                data,
                name=name,
                contrast_limits=placement.contrast_limits,
                metadata=metadata,
                **where,
            )
        self._previews[layer.unique_id] = shows
        return layer

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
        are shown (status line and notification) unless ``on_error`` handles them; a cancel is
        shown (status line, progress hidden) unless ``on_abort`` handles it, and ``on_abort``
        runs for every cancelled run that returned nothing, also one whose cancel landed after
        its last step (superqt then emits neither ``returned`` nor ``aborted``). The work is
        cancelled when one of ``layers`` leaves the viewer. ``worker.counter.count`` is the
        number of items the generator has yielded so far.
        """
        counter = _Counted()
        worker = _worker_class()(_drive, counter, make, args)
        worker.counter = counter
        entry: dict[str, Any] = {
            "layers": {lay.unique_id for lay in layers},
            "cancelled": None,
            "ended": False,  # returned, aborted or errored was delivered
        }
        self._workers[worker] = entry
        if on_abort is None:

            def on_abort() -> None:
                self._show_cancelled(entry)

        def live(callback: Callable | None) -> Callable:
            def call(*a: Any) -> None:
                if callback is not None and not self.closed:
                    callback(*a)

            return call

        def ended(callback: Callable | None) -> Callable:
            def call(*a: Any) -> None:
                entry["ended"] = True
                live(callback)(*a)

            return call

        def errored(exc: BaseException) -> None:
            entry["ended"] = True
            if self.closed:
                return
            if on_error is not None:
                on_error(exc)
            else:
                self.show_error(exc)

        def finished() -> None:
            if not entry["ended"] and (entry["cancelled"] is not None or worker.abort_requested):
                live(on_abort)()  # (quit landed after the last step: no signal said so)
            self._workers.pop(worker, None)
            live(on_finish)()

        worker.yielded.connect(live(on_yield))
        worker.returned.connect(ended(on_return))
        worker.errored.connect(errored)
        worker.aborted.connect(ended(on_abort))
        worker.finished.connect(finished)
        if start:
            worker.start()
        return worker

    def _show_cancelled(self, entry: dict[str, Any]) -> None:
        """The default ``on_abort``: say that (and why) the work was cancelled."""
        reason = (entry["cancelled"] or ("cancelled", 0))[0]
        self.progress.setVisible(False)
        self.set_status("Cancelled." if reason == "cancelled" else f"Cancelled ({reason}).")

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
        self._previews.pop(uid, None)
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
        for emitter, callback in list(self._viewer_callbacks):
            self.disconnect_viewer(emitter, callback)
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
