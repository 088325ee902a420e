"""Small Qt helpers shared by the dock widgets: layer pickers kept in sync with the viewer."""
from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox

__all__ = ["refill", "select_text", "disconnect_all"]


def refill(combo: QComboBox, items: list[tuple[str, Any]], current: Any) -> None:
    """Replace ``combo``'s (text, data) items, keeping the item whose data is ``current``."""
    datas = [data for _, data in items]
    old = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    if old != items:
        combo.blockSignals(True)
        combo.clear()
        for text, data in items:
            combo.addItem(text, data)
        combo.blockSignals(False)
    index = datas.index(current) if current in datas else 0 if items else -1
    if index != combo.currentIndex():
        combo.setCurrentIndex(index)


def select_text(combo: QComboBox, text: str) -> None:
    """Select the item labelled ``text`` (``ValueError`` when there is none)."""
    index = combo.findText(text, Qt.MatchFlag.MatchExactly)
    if index < 0:
        raise ValueError(f"no layer named {text!r} in the list ({combo.count()} choices)")
    if index != combo.currentIndex():
        combo.setCurrentIndex(index)


def disconnect_all(callbacks: list) -> None:
    """Disconnect ``(emitter, callback)`` pairs (on widget destruction)."""
    for emitter, callback in callbacks:
        emitter.disconnect(callback)
