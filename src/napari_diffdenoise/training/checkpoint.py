"""Resumable training checkpoints in safetensors + JSON (model, EMA, optimiser moments, RNG-free
counters). Nothing is pickled, so a checkpoint from anywhere is safe to load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "init_weights"]


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for k, v in ema.state_dict().items():
        tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    opt_state = optimizer.state_dict()
    steps = {}
    for idx, st in opt_state["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val) and val.ndim > 0:
                tensors[f"opt.{idx}.{name}"] = val.detach().cpu().contiguous()
            else:
                steps[f"{idx}.{name}"] = float(val)
    meta = dict(state)
    meta["optimizer_scalars"] = steps
    meta["param_groups"] = [
        {k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]
    ]
    atomic_write(path.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
    text = json.dumps(meta, indent=2, default=float)
    atomic_write(path.with_suffix(".json"), lambda p: p.write_text(text))
    return path.with_suffix(".safetensors")


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    from safetensors.torch import load_file

    path = Path(path)
    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_state = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = val
    for key, val in meta.pop("optimizer_scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = torch.tensor(val)
    opt_state["state"] = state
    for group, saved in zip(opt_state["param_groups"], meta.pop("param_groups", [])):
        group.update({k: v for k, v in saved.items() if k in group})
    optimizer.load_state_dict(opt_state)
    return meta


def init_weights(path: str | Path, model: torch.nn.Module, ema: torch.nn.Module) -> dict[str, Any]:
    """Load the weights of a checkpoint (raw → ``model``, EMA → ``ema``), of a model file or of a
    named model such as ``"default"`` (into both) for a warm restart or a fine-tuning run;
    returns what is known of where they came from.

    Names and paths follow :func:`~napari_diffdenoise.model.registry.model_path`; ``OSError`` for
    a missing, unreadable or non-finite file, ``LookupError`` for an unknown name, ``ValueError``
    when the tensors do not fit the architecture. Nothing is unpickled.
    """
    from ..model.registry import model_path
    from ..model.weights import read_tensors

    try:
        path, _ = model_path(path)
    except OSError as exc:
        raise OSError(f"init_from: {exc}") from exc
    try:
        tensors = read_tensors(path)
    except OSError as exc:
        raise OSError(f"init_from: {exc}") from exc
    if any(k.startswith("ema.") for k in tensors):
        raw = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        avg = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    else:
        raw = avg = tensors
    raw = {k: v.float() for k, v in raw.items()}
    avg = {k: v.float() for k, v in avg.items()}
    deepened = False
    if set(raw) < set(model.state_dict()):
        # a shallower model of the same widths (fewer blocks per level): deepen it, each
        # extra block starting as the identity (``deepen_state_dict``)
        from ..model.unet import deepen_state_dict

        try:
            raw, avg = deepen_state_dict(raw, model), deepen_state_dict(avg, model)
        except ValueError as exc:
            raise ValueError(
                f"init_from: {path} does not fit the architecture of this run: {exc}"
            ) from exc
        deepened = True
    try:
        model.load_state_dict(raw, strict=True)
        ema.load_state_dict(avg, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"init_from: {path} does not fit the architecture of this run: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    origin: dict[str, Any] = {"path": str(path)}
    if deepened:
        origin["deepened"] = True
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = {}
        steps = meta.get("step", meta.get("training", {}).get("steps"))
        if isinstance(steps, (int, float)):
            origin["steps"] = int(steps)
        base = meta.get("training", {}).get("init_from") or meta.get("init_from")
        if isinstance(base, dict) and isinstance(base.get("total_steps"), int):
            origin["total_steps"] = base["total_steps"] + origin.get("steps", 0)
        elif "steps" in origin:
            origin["total_steps"] = origin["steps"]
    return origin
