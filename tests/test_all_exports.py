"""Every name a core module lists in ``__all__`` exists (``from module import *`` works)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import napari_diffdenoise

CORE = [
    m.name
    for m in pkgutil.walk_packages(napari_diffdenoise.__path__, "napari_diffdenoise.")
    if "._widgets" not in m.name
]


@pytest.mark.parametrize("name", CORE)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    missing = [n for n in getattr(module, "__all__", []) if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists undefined names: {missing}"
