"""napari-diffdenoise: diffusion-model denoising for microscopy, as a library and a napari plugin.

The public API is importable from here and loaded lazily, so ``import napari_diffdenoise``
(which napari does at start-up) stays cheap and never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # noise engine
    "add_noise": "napari_diffdenoise.noise.simulate",
    "estimate_noise": "napari_diffdenoise.noise.estimate",
    "NoiseReport": "napari_diffdenoise.noise.report",
    "time_map_from_sigma": "napari_diffdenoise.noise.timemap",
    "time_map_to_levels": "napari_diffdenoise.noise.timemap",
    "levels_to_time_map": "napari_diffdenoise.noise.timemap",
    "new_time_map": "napari_diffdenoise.noise.timemap",
    "time_map_metadata": "napari_diffdenoise.noise.timemap",
    "save_time_map": "napari_diffdenoise.noise.timemap",
    "load_time_map": "napari_diffdenoise.noise.timemap",
    "synthetic_fluorescence": "napari_diffdenoise.synthetic",
    "robust_range": "napari_diffdenoise.intensity",
    # denoiser
    "denoise": "napari_diffdenoise.engine.denoise",
    "DenoiseResult": "napari_diffdenoise.engine.denoise",
    "list_models": "napari_diffdenoise.model.registry",
    "load_model": "napari_diffdenoise.model.registry",
    "export_model": "napari_diffdenoise.model.export",
    "train_model": "napari_diffdenoise.training.loop",
    "fine_tune": "napari_diffdenoise.training.finetune",
    "TrainingConfig": "napari_diffdenoise.training.config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_diffdenoise' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from .engine.denoise import DenoiseResult, denoise
    from .intensity import robust_range
    from .model.export import export_model
    from .model.registry import list_models, load_model
    from .noise.estimate import estimate_noise
    from .noise.report import NoiseReport
    from .noise.simulate import add_noise
    from .noise.timemap import (
        levels_to_time_map,
        load_time_map,
        new_time_map,
        save_time_map,
        time_map_from_sigma,
        time_map_metadata,
        time_map_to_levels,
    )
    from .synthetic import synthetic_fluorescence
    from .training.config import TrainingConfig
    from .training.finetune import fine_tune
    from .training.loop import train_model
