"""Where a run's starting weights come from: model names, paths and ``recipe:<name>`` links.

A recipe's ``init_from`` (warm restart) or ``resume_from`` (carry a run on) may name another
recipe, ``"recipe:stage3_warm_restart"``: that recipe file in the same folder, whose run's
checkpoint (``<output>/checkpoint.safetensors``) is the start. This is how the stages of the
bundled model chain (``docs/training.md``).
"""

from __future__ import annotations

from pathlib import Path

from .config import RECIPE_PREFIX, TrainingConfig

__all__ = ["recipe_name", "referenced_recipe", "resolve_start"]


def recipe_name(value: str | None) -> str | None:
    """The recipe named by a ``recipe:<name>`` value, else None."""
    if value is None or not value.startswith(RECIPE_PREFIX):
        return None
    name = value[len(RECIPE_PREFIX) :]
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"{value!r}: expected 'recipe:<file stem in the recipe folder>'")
    return name


def referenced_recipe(value: str, recipe_dir: str | Path) -> Path:
    """The recipe file a ``recipe:<name>`` value names; ``OSError`` when it does not exist."""
    name = recipe_name(value)
    if name is None:
        raise ValueError(f"{value!r} is not a recipe reference ('{RECIPE_PREFIX}<name>')")
    path = Path(recipe_dir) / f"{name}.json"
    if not path.is_file():
        raise OSError(f"{value}: recipe file {path} not found")
    return path


def resolve_start(value: str, recipe_dir: str | Path) -> str:
    """What ``init_from``/``resume_from`` loads: for ``recipe:<name>`` the checkpoint of that
    recipe's run (``OSError`` "train <recipe> first" when it has not run yet), else ``value``
    unchanged (a model name or path, resolved by ``model.registry.model_path``)."""
    if recipe_name(value) is None:
        return value
    recipe = referenced_recipe(value, recipe_dir)
    checkpoint = Path(TrainingConfig.from_json(recipe).output) / "checkpoint.safetensors"
    if not checkpoint.is_file():
        raise OSError(
            f"{value}: {checkpoint} not found; train {recipe} first "
            f"(napari-diffdenoise train --config {recipe})"
        )
    return str(checkpoint)
