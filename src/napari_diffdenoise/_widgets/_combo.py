"""Small Qt helpers under the dock widgets: refilling a combo box's items (what
:class:`~._base.LayerPicker` uses), layer lookup by id, and the status line (errors in red and
notified). The layer pickers themselves live in :mod:`._base`."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QLabel

__all__ = ["refill", "layer_by_id", "set_status", "set_error"]


def refill(combo: QComboBox, items: list[tuple[str, Any]], current: Any) -> None:
    """Replace ``combo``'s (text, data) items, keeping the item whose data is ``current``."""
    datas = [data for _, data in items]
    old = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    if old != items:
        blocked = combo.blockSignals(True)
        combo.clear()
        for text, data in items:
            combo.addItem(text, data)
        combo.blockSignals(blocked)
    index = datas.index(current) if current in datas else 0 if items else -1
    if index != combo.currentIndex():
        combo.setCurrentIndex(index)


def layer_by_id(viewer: Any, unique_id: Any) -> Any:
    """The layer with ``unique_id`` or ``None`` (plugin widgets get layer proxies, so identity
    comparisons do not work)."""
    for layer in viewer.layers:
        if layer.unique_id == unique_id:
            return layer
    return None


def set_status(label: QLabel, text: str) -> None:
    """Show ``text`` in a widget's status line (normal colour)."""
    label.setStyleSheet("")
    label.setText(text)


def set_error(label: QLabel, exc: BaseException, *, notify: bool, source: str) -> str:
    """Show ``exc`` in red in the status line and, with ``notify``, as a napari notification
    prefixed by ``source``; returns the message."""
    label.setStyleSheet("color: #ff6b6b;")
    label.setText(f"Error: {exc}")
    if notify:
        from napari.utils.notifications import show_error

        show_error(f"{source}: {exc}")
    return str(exc)
