"""Named models: bundled presets, user-saved models (e.g. from fine-tuning) and plain paths.

A *preset* is a bundled weight file plus sampling defaults (sampler, steps, self-ensemble), so
users pick a point on the speed/quality trade-off by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .weights import ModelInfo, load_weights

if TYPE_CHECKING:  # pragma: no cover
    from .fast import FastTimeUNet
    from .unet import TimeUNet

__all__ = [
    "PRESETS",
    "LoadedModel",
    "list_models",
    "load_model",
    "model_path",
    "user_models_dir",
    "bundled_dir",
]


@dataclass(frozen=True)
class Preset:
    weights: str
    sampler: str
    steps: int
    ensemble: int
    description: str
    precision: str = "float32"
    #: weight of the collaborative Wiener estimate blended with the network's output (0: off;
    #: "auto": chosen per plane by SURE, with a hard-thresholding estimate in the pilot)
    wiener: float | str = 0.0
    #: run the network through :class:`~.fast.FastTimeUNet` (a bfloat16 pass on CPUs with
    #: native bfloat16; ``precision`` still applies on GPUs)
    fast_cpu: bool = False


#: The bundled presets, points on the speed/quality trade-off (measured in
#: docs/bench_denoise.md; why these settings: docs/design/denoiser.md).
PRESETS: dict[str, Preset] = {
    "default": Preset(
        "default", "direct", 1, 1, "bundled model, one step: fast, best PSNR per second"
    ),
    "fast": Preset(
        "default",
        "direct",
        1,
        1,
        "bundled model, one step in bfloat16 where that is faster: on CPUs with native "
        "bfloat16 (AMX, AVX-512 BF16; a one-off timing decides) a fused bfloat16 pass, on CUDA "
        "GPUs bfloat16 autocast; elsewhere the same as default",
        "bfloat16",
        fast_cpu=True,
    ),
    "quality": Preset(
        "default",
        "direct",
        1,
        8,
        "bundled model with 8-fold flip/rotation "
        "self-ensemble, blended with BM3D-style collaborative filters that use "
        "similar patches across the image (weights chosen by SURE)",
        wiener="auto",
    ),
}


def bundled_dir() -> Path:
    return Path(__file__).resolve().parent / "weights"


def user_models_dir() -> Path:
    """Where fine-tuned models are saved: ``$NAPARI_DIFFDENOISE_MODELS`` or the user data dir."""
    env = os.environ.get("NAPARI_DIFFDENOISE_MODELS")
    if env:
        return Path(env)
    from platformdirs import user_data_path

    return user_data_path("napari-diffdenoise", appauthor=False, roaming=True) / "models"


@dataclass
class LoadedModel:
    """A ready network with its description and sampling defaults."""

    name: str
    path: Path
    net: TimeUNet | FastTimeUNet
    info: ModelInfo
    sampler: str = "direct"
    steps: int = 1
    ensemble: int = 1
    precision: str = "float32"
    wiener: float | str = 0.0

    @property
    def sigma_max(self) -> float:
        return self.info.sigma_max

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, sampler={self.sampler!r}, steps={self.steps}, "
            f"ensemble={self.ensemble}, precision={self.precision!r}, wiener={self.wiener!r}, parameters={self.net.parameter_count()}, "
            f"sigma_max={self.sigma_max})"
        )


def _user_models() -> dict[str, Path]:
    folder = user_models_dir()
    if not folder.is_dir():
        return {}
    return {
        p.stem: p for p in sorted(folder.glob("*.safetensors")) if p.with_suffix(".json").is_file()
    }


def list_models() -> list[str]:
    """Names accepted by :func:`load_model` and ``denoise(model=...)``: presets first, then the
    user's saved models (fine-tuned ones)."""
    bundled = [
        name
        for name, p in PRESETS.items()
        if (bundled_dir() / f"{p.weights}.safetensors").is_file()
    ]
    return bundled + [n for n in _user_models() if n not in PRESETS]


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> tuple[TimeUNet, ModelInfo]:
    return load_weights(path)


@lru_cache(maxsize=8)
def _fast_cached(net: TimeUNet):
    from .fast import FastTimeUNet

    return FastTimeUNet(net)


def load_model(name_or_path: str | os.PathLike | LoadedModel = "default") -> LoadedModel:
    """Load a preset, a saved model by name, or a ``.safetensors`` file (with its ``.json``).

    Raises ``LookupError`` for unknown names (listing the available ones) and ``OSError`` for
    missing, corrupt or non-safetensors files. Loaded weights are cached; the returned network is
    shared, so treat it as read-only.
    """
    if isinstance(name_or_path, LoadedModel):
        return name_or_path
    path, preset = model_path(name_or_path)
    if preset is not None:
        name, settings = os.fspath(name_or_path), preset
    else:
        name, settings = path.stem, Preset(path.stem, "direct", 1, 1, "")
    net, info = _load_cached(str(path.resolve()), path.stat().st_mtime)
    if settings.fast_cpu:
        net = _fast_cached(net)
    return LoadedModel(
        name=name,
        path=path,
        net=net,
        info=info,
        sampler=settings.sampler,
        steps=settings.steps,
        ensemble=settings.ensemble,
        precision=settings.precision,
        wiener=settings.wiener,
    )


def model_path(name_or_path: str | os.PathLike) -> tuple[Path, Preset | None]:
    """Where the weights named by ``name_or_path`` are, and the preset it names (if any).

    The one rule for names and paths, shared by :func:`load_model` and training warm starts:
    a preset name, then a saved model's name, then a path (anything with a ``.safetensors`` or
    ``.json`` suffix, a separator, or that exists; ``run/checkpoint`` means
    ``run/checkpoint.safetensors``). ``LookupError`` (listing the available names) for an
    unknown name, ``OSError`` for a missing or non-``.safetensors`` file. Loads nothing.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model must be a name or a path, got {type(name_or_path).__name__}")
    key = os.fspath(name_or_path)
    preset = PRESETS.get(key)
    if preset is not None:
        path = bundled_dir() / f"{preset.weights}.safetensors"
        if not path.is_file():
            raise OSError(f"the bundled model file {path} is missing; reinstall napari-diffdenoise")
        return path, preset
    user = _user_models()
    if key in user:
        return user[key], None
    p = Path(key)
    if not (p.suffix in (".safetensors", ".json") or p.exists() or os.sep in key or "/" in key):
        raise LookupError(f"unknown model {key!r}; available: {', '.join(list_models()) or 'none'}")
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    elif p.suffix != ".safetensors" and not p.is_file():
        p = p.with_name(p.name + ".safetensors")
    if not p.is_file():
        raise OSError(f"model file {p} not found")
    if p.suffix != ".safetensors":
        raise OSError(f"{p} is not a .safetensors weight file")
    return p, None
