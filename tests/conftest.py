"""Fixtures shared by the whole test suite."""
from __future__ import annotations

from pathlib import Path

import pytest

#: project root (the folder holding pyproject.toml)
ROOT = Path(__file__).resolve().parents[1]
#: public data sets kept next to the project (see ../shared/data/README.md); never packaged
SHARED_DATA = ROOT.parent / "shared" / "data"


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
