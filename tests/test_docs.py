"""Every Python recipe in the README and the user docs runs, in order, as a user would run it.

Each Markdown file is one test: its ```python blocks run one after the other in one namespace,
in a temporary folder holding the files the docs name (``stack.ome.zarr``, ``noisy.tif``); where
a recipe shows what a ``print`` gives (``# ...`` lines right after it), the printed output must
be exactly that. A file whose recipes use ``viewer`` (napari's console) gets a real viewer with
the Poisson sample open, as after File > Open Sample. Recipes that train or denoise large images run with a smaller
budget (``SHRINK``: the same code, a smaller number); a block that imports a package this
machine lacks (a cluster's ``dask_jobqueue``, ``dask_cuda``) is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)

#: (old, new) substitutions per file: the recipe's code with a budget fit for a test
SHRINK: dict[str, list[tuple[str, str]]] = {
    "README.md": [("data.camera()", "data.camera()[:96, :128]")],
    "training.md": [("replace(steps=2000)", "replace(steps=2, val_every=1, batch_size=2)")],
    "scaling.md": [("n_workers=4", "n_workers=1")],
    "fine_tuning.md": [
        ("max_minutes=5,", "max_steps=2, settings={'patch_size': 48, 'batch_size': 2},")
    ],
    "console.md": [("max_steps=30,", "max_steps=3,")],
}


def _blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def _shown_output(block: str) -> list[str]:
    """The output a recipe shows: the ``# ...`` lines right after a line that starts with
    ``print(``, without a trailing ``  (explanation)``."""
    shown, after_print = [], False
    for line in block.splitlines():
        if after_print and line.startswith("# "):
            shown.append(re.sub(r"\s{2,}\(.*\)$", "", line[2:]).rstrip())
            continue
        after_print = line.startswith("print(")
    return shown


def _missing_import(block: str) -> str | None:
    """The first top-level package a block imports that is not installed here."""
    for name in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", block, re.M):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _write_files(folder: Path) -> None:
    """The input files the recipes name, small: an OME-Zarr (T, Z, Y, X), a TIFF, the recipes."""
    import tifffile
    import zarr

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    clean = 800 + 300 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    stack = np.clip(clean + rng.normal(0, 40, (2, 12, 64, 64)), 0, 65535).astype(np.uint16)
    root = zarr.open_group(str(folder / "stack.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=stack.shape, chunks=(1, 1, 64, 64), dtype=stack.dtype)[:] = stack
    kinds = {"t": "time", "z": "space", "y": "space", "x": "space"}
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a, "type": kinds[a]} for a in "tzyx"],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1] * 4}]}
            ],
        }
    ]
    tifffile.imwrite(folder / "noisy.tif", stack[0, 0])
    shutil.copytree(ROOT / "recipes", folder / "recipes")  # the docs run from a source checkout


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_recipes_in_the_docs_run(path, tmp_path, monkeypatch, request):
    blocks = _blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no Python recipe")
    _write_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    # (models a recipe saves go to the temporary folder of conftest's models_dir fixture)
    import matplotlib.pyplot as plt

    plt.switch_backend("Agg")  # plt.show() in a recipe must not open a window
    namespace: dict = {"__name__": "__docs__"}
    if any(re.search(r"\bviewer\b", b) for b in blocks):
        viewer = request.getfixturevalue("make_napari_viewer")()
        viewer.open_sample("napari-diffdenoise", "poisson")
        namespace["viewer"] = viewer
        from napari.utils.notifications import notification_manager

        first_notice = len(notification_manager.records)
    shrink = SHRINK.get(path.name, [])
    unused = [old for old, _ in shrink if not any(old in b for b in blocks)]
    assert not unused, f"SHRINK entries that no longer match {path.name}: {unused}"
    skipped = []
    for i, block in enumerate(blocks):
        for old, new in shrink:
            block = block.replace(old, new)
        missing = _missing_import(block)
        if missing is not None:
            skipped.append(f"block {i + 1} needs {missing}")
            continue
        out = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            # plt.show() under the Agg backend says it cannot show; nothing else is tolerated
            warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
            try:
                exec(compile(block, f"{path.name} block {i + 1}", "exec"), namespace)
            except Exception as exc:  # the block's text in the failure message
                raise AssertionError(f"{path.name} block {i + 1} failed:\n{block}") from exc
        shown = _shown_output(block)
        if shown:  # the output the doc shows is the output the recipe prints
            assert out.getvalue().splitlines() == shown, f"{path.name} block {i + 1}"
    if "viewer" in namespace:
        # napari's "Inconsistent units across layers": a recipe (or a widget) added a layer
        # without its source's units
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()  # (napari checks units when it next draws)
        said = [str(n.message) for n in notification_manager.records[first_notice:]]
        assert not [m for m in said if "units" in m], said
    if skipped and len(skipped) == len(blocks):
        pytest.skip("; ".join(skipped))


#: a shell line that runs the command line (after an optional `$ ` prompt)
CLI_LINE = re.compile(r"^\s*(?:\$\s*)?napari-diffdenoise\s+(.*?)(?:\s+#.*)?$")


def _cli_lines(path: Path) -> list[str]:
    """Every ``napari-diffdenoise ...`` line of the doc's shell code (fenced bash, sh, console
    or untagged blocks, and indented blocks), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text("utf-8"))
    lines, fence = [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:].strip() if fence is None else None
            continue
        shell = fence in ("", "bash", "sh", "console") or (
            fence is None and line.startswith("    ")
        )
        if shell and (match := CLI_LINE.match(line)):
            lines.append(match.group(1))
    return lines


#: the docs that show command lines
CLI_DOCS = [p for p in DOCS if _cli_lines(p)]


def test_the_readme_and_the_fine_tuning_guide_show_command_lines():
    assert {"README.md", "fine_tuning.md", "scaling.md"} <= {p.name for p in CLI_DOCS}


@pytest.mark.parametrize("path", CLI_DOCS, ids=[p.name for p in CLI_DOCS])
def test_command_lines_in_the_docs_parse(path):
    """The CLI examples use commands and flags that exist (argparse parses each of them)."""
    import shlex

    from napari_diffdenoise.cli import build_parser

    parser = build_parser()
    lines = _cli_lines(path)
    for line in lines:
        try:
            parser.parse_args(shlex.split(line))
        except SystemExit as exc:
            if exc.code != 0:
                msg = f"{path.name}: `napari-diffdenoise {line}` does not parse"
                raise AssertionError(msg) from None
