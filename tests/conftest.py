"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

#: project root (the folder holding pyproject.toml)
ROOT = Path(__file__).resolve().parents[1]
#: public data sets kept next to the project (see ../shared/data/README.md); never packaged
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def models_dir(tmp_path, monkeypatch) -> Path:
    """Every test saves models into its own (not yet created) folder, never the user's:
    ``$NAPARI_DIFFDENOISE_MODELS`` = ``tmp_path / "models"``."""
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(folder))
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data``; skips the test where the folder is absent (e.g. a fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found: {SHARED_DATA}")
    return SHARED_DATA


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item, call):
    """Give napari's ``make_napari_viewer`` teardown a ``rep_call`` when setup failed.

    Its teardown reads ``request.node.rep_call``; without this, a failing fixture setup (e.g. a
    widget that is not registered) is reported twice, the second time as an unrelated
    ``AttributeError``.
    """
    outcome = yield
    report = outcome.get_result()
    if report.when == "setup" and report.failed and not hasattr(item, "rep_call"):
        item.rep_call = report


def _gpu_kind() -> str | None:
    """``"cuda"`` or ``"mps"`` when this machine has that accelerator, else ``None``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` (``@pytest.mark.gpu`` for any accelerator,
    ``@pytest.mark.gpu("cuda")`` for one kind) where the machine has none, with the reason.

    ``pytest -m gpu`` selects them on a GPU machine.
    """
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not marked:
        return
    kind = _gpu_kind()
    for item in marked:
        kinds = item.get_closest_marker("gpu").args or ("cuda", "mps")
        if kind not in kinds:
            wanted = " or ".join(k.upper() for k in kinds)
            item.add_marker(
                pytest.mark.skip(reason=f"needs a {wanted} device; none on this machine")
            )
