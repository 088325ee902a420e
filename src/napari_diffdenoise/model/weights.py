"""Weight files: ``<name>.safetensors`` (tensors only, never pickled) plus ``<name>.json``.

The JSON sidecar holds the architecture, σ_max, the normalisation, the training data and recipe
and the format version, so a weight file is self-describing and loads offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_write
from .unet import TimeUNet, UNetConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FORMAT_VERSION", "ModelInfo", "save_model", "read_info", "read_tensors", "load_weights"]

FORMAT_VERSION = 1


@dataclass
class ModelInfo:
    """What the JSON sidecar says about a model."""

    name: str
    architecture: UNetConfig
    sigma_max: float
    normalisation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "format_version": self.format_version,
            "architecture": self.architecture.to_dict(),
            "sigma_max": self.sigma_max,
            "normalisation": self.normalisation,
            "training": self.training,
        }


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    elif path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    return path, path.with_suffix(".json")


def save_model(model: TimeUNet, path: str | Path, info: ModelInfo, *, half: bool = False) -> Path:
    """Write ``model`` (weights) and ``info`` (sidecar) atomically; returns the weights path."""
    from safetensors.torch import save_file

    weights_path, json_path = _paths(path)
    tensors = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    meta = {"format": "napari-diffdenoise", "format_version": str(FORMAT_VERSION)}
    atomic_write(weights_path, lambda p: save_file(tensors, str(p), metadata=meta))
    text = json.dumps(info.to_dict(), indent=2, sort_keys=True)
    atomic_write(json_path, lambda p: p.write_text(text + "\n"))
    return weights_path


def read_info(path: str | Path) -> ModelInfo:
    """Read and validate a JSON sidecar (``OSError`` if missing or unreadable)."""
    _, json_path = _paths(path)
    try:
        data = json.loads(Path(json_path).read_text())
    except FileNotFoundError as exc:
        raise OSError(
            f"model description {json_path} is missing (every .safetensors file "
            "needs its .json sidecar)"
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OSError(f"model description {json_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OSError(f"model description {json_path} must hold a JSON object")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise OSError(
            f"{json_path}: unsupported model format version {version!r} "
            f"(this napari-diffdenoise reads version {FORMAT_VERSION})"
        )
    try:
        arch = UNetConfig.from_dict(data["architecture"])
        sigma_max = float(data["sigma_max"])
        name = str(data.get("name") or Path(json_path).stem)
    except (KeyError, TypeError, ValueError) as exc:
        raise OSError(f"{json_path}: malformed model description ({exc})") from exc
    if not sigma_max > 0:
        raise OSError(f"{json_path}: sigma_max must be positive, got {sigma_max}")
    return ModelInfo(
        name=name,
        architecture=arch,
        sigma_max=sigma_max,
        normalisation=dict(data.get("normalisation", {})),
        training=dict(data.get("training", {})),
        description=str(data.get("description", "")),
    )


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU), never unpickled.

    ``OSError`` when the file is missing, is not a valid safetensors file (a pickle, truncated,
    junk) or holds non-finite floating-point values. Shared by model loading and warm starts.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise OSError(f"{path} not found")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise OSError(f"{path} is not a valid safetensors file: {exc}") from exc
    for key, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise OSError(f"{path} holds non-finite values (in {key})")
    return tensors


def load_weights(path: str | Path) -> tuple[TimeUNet, ModelInfo]:
    """Build the network described by the sidecar and load its safetensors weights (float32)."""
    import torch

    weights_path, _ = _paths(path)
    if not weights_path.is_file():
        raise OSError(f"model weights {weights_path} not found")
    info = read_info(weights_path)
    tensors = read_tensors(weights_path)
    model = TimeUNet(info.architecture)
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise OSError(
            f"{weights_path} does not match its architecture description: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    model.eval()
    # Channels-last weights take oneDNN's fast convolution path: 2× faster on this 2-core CPU
    # (benchmarks/bench_denoise.py, speed section); outputs agree to ~1e-6.
    return model.to(memory_format=torch.channels_last), info
