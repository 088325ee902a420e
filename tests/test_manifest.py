"""The npe2 manifest: valid, importable, and registers only working contributions."""

from __future__ import annotations

from pathlib import Path

import pytest

npe2 = pytest.importorskip("npe2")

import napari_diffdenoise  # noqa: E402

MANIFEST = Path(napari_diffdenoise.__file__).parent / "napari.yaml"


def test_manifest_file_validates():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-diffdenoise"
    assert manifest.display_name == "napari-diffdenoise"
    manifest.validate_imports()  # every python_name resolves


def test_manifest_is_discovered_from_the_entry_point():
    manifest = npe2.PluginManifest.from_distribution("napari-diffdenoise")
    assert manifest.name == "napari-diffdenoise"


def test_npe2_validate_cli():
    from npe2.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["validate", "napari-diffdenoise", "--imports"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output.lower()


def test_contributions():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    contrib = manifest.contributions
    assert [w.display_name for w in contrib.widgets] == [
        "Noise inspector",
        "Denoiser",
        "Time map",
        "Fine-tune",
    ]
    assert {s.key for s in contrib.sample_data} == {
        "gaussian",
        "poisson",
        "salt_and_pepper",
        "spatially_variant",
    }
    commands = {c.id: c for c in contrib.commands}
    for sample in contrib.sample_data:
        assert sample.command in commands
    from npe2.manifest.utils import import_python_name
    from qtpy.QtWidgets import QWidget

    widget_cls = import_python_name(commands[contrib.widgets[0].command].python_name)

    assert issubclass(widget_cls, QWidget)
