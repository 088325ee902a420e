"""Fine-tuning a saved model on the user's data: one loop for pairs and for noisy images alone.

:func:`iter_fine_tune` is the generator (it yields a :class:`FineTuneProgress` per step and
returns the saved model's name); :func:`fine_tune` drives it to the end; the CLI and the
widget drive the same generator. What the run trains on is an
:class:`~napari_diffdenoise.training.tasks.AdaptationTask`: pairs (``training.pairs``) or noisy
images alone (``training.selfsup``).

The loop: the base model's weights, AdamW with a linear warm-up and a cosine decay over the
budget (steps and/or minutes, whichever ends first), gradient clipping, mixed precision on CUDA
(bfloat16, else float16 with loss scaling), the task's validation figure computed first on the
base model (step 0) and every ``val_every`` steps, the best weights kept, early stopping when
the figure stops improving for ``patience`` validations. The base model wins when no checkpoint
beats it: the saved model is then the base weights, unchanged, and its JSON says so.

Where things go (all under :func:`~napari_diffdenoise.model.registry.user_models_dir`):
``<name>.safetensors`` + ``<name>.json`` (the model, written atomically, the JSON last: a model
is listed only once both are complete) and ``.checkpoints/<name>/checkpoint.{safetensors,json}``
(weights, best weights, optimiser, counters, written atomically during the run; ``resume=True``
carries a run on from it).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .._validation import check_bool, check_int, check_number

if TYPE_CHECKING:  # pragma: no cover
    import threading

    import torch

    from .tasks import AdaptationTask

__all__ = [
    "FineTuneProgress",
    "FineTuneSettings",
    "fine_tune",
    "iter_fine_tune",
    "default_name",
    "checkpoint_dir",
    "DEFAULT_MINUTES",
]

#: seconds between two checkpoints during a run (one is also written at its end)
CHECKPOINT_EVERY_S = 60.0
#: the budget when neither ``max_steps`` nor ``max_minutes`` is given
DEFAULT_MINUTES = 5.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FineTuneSettings(BaseModel):
    """The optimiser and data settings of a fine-tuning run (defaults chosen on stripe noise
    on the 2-core CPU, ``benchmarks/bench_finetune.py``; ``docs/design/adaptation.md``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    lr: float = Field(5e-4, gt=0.0)
    """Peak learning rate (AdamW)."""
    lr_min_ratio: float = Field(0.05, ge=0.0, le=1.0)
    """Learning rate at the end of the cosine decay, as a share of ``lr``."""
    weight_decay: float = Field(1e-4, ge=0.0)
    """AdamW weight decay."""
    warmup_steps: int = Field(10, ge=0)
    """Steps of linear warm-up."""
    batch_size: int = Field(8, ge=1)
    """Patches per step."""
    patch_size: int | None = Field(None, ge=16, multiple_of=8)
    """Side of the square training patches, a multiple of the base network's size multiple (8
    for the bundled models); ``None``: the task's default (pairs 64, noisy-only 96, as
    measured in ``bench_finetune.py``; smaller images use their own size)."""
    grad_clip: float = Field(1.0, ge=0.0)
    """Gradient norm clipping (0: off)."""
    val_every: int = Field(25, ge=1)
    """Steps between two validations."""
    patience: int = Field(8, ge=1)
    """Validations without improvement before the run stops early."""
    min_gain: float = Field(0.0, ge=0.0)
    """Improvement of the validation figure that counts as one."""
    time_map: str = Field("estimate", pattern="^(estimate|residual)$")
    """Pairs: the time map the pairs are trained with (``training.pairs``)."""
    p_at_observation: float = Field(0.8, ge=0.0, le=1.0)
    """Pairs: share of the samples trained at ``t = τ`` (the direct sampler's only step)."""


@dataclass
class FineTuneProgress:
    """One progress record (yielded after each step; step 0 is the base model's validation)."""

    step: int
    #: ``max_steps`` when the budget is in steps, else None (see ``fraction``)
    total: int | None
    loss: float | None
    lr: float
    elapsed_s: float
    #: share of the budget used, 0 to 1 (steps or minutes, whichever is further)
    fraction: float
    #: the task's validation figures when computed at this step, else None
    validation: dict[str, float] | None
    #: best validation figure so far (the base model's at first) and the step it came from
    #: (0: the base model)
    best: float
    best_step: int
    base: float
    figure_name: str
    name: str
    #: why the run stopped ("budget", "early stop", "cancelled", "diverged", "nothing to learn":
    #: the task said no checkpoint can beat the base), on the last record
    stopped: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: on records where the validation found a new best (the base at step 0): a CPU copy of
    #: those weights (a state dict of the base model's architecture), e.g. for a live preview
    best_weights: dict[str, Any] | None = field(default=None, repr=False)


def default_name(base: str = "default") -> str:
    """A new model name from the base's name and the date, e.g. ``default-ft-20260314-1502``."""
    stem = Path(str(base)).name.removesuffix(".safetensors").removesuffix(".json")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip("-_.") or "model"
    return f"{stem}-ft-{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_dir(name: str) -> Path:
    """The folder of a run's checkpoint: ``<user_models_dir>/.checkpoints/<name>``."""
    from ..model.registry import user_models_dir

    return user_models_dir() / ".checkpoints" / name


def _check_name(name: Any, base: Any) -> str:
    from ..model.registry import PRESETS

    if name is None:
        return default_name(base if isinstance(base, str) else "model")
    if (
        not isinstance(name, str)
        or not _NAME.match(name)
        or name.endswith((".json", ".safetensors"))
    ):
        raise ValueError(
            f"name must be a plain model name (letters, digits, '_', '-', '.'; no folder or "
            f"suffix), got {name!r}"
        )
    if name in PRESETS:
        raise ValueError(f"{name!r} is a bundled preset's name; choose another name")
    return name


def _model_exists(name: str) -> bool:
    from ..model.registry import user_models_dir

    folder = user_models_dir()
    return (folder / f"{name}.safetensors").exists() or (folder / f"{name}.json").exists()


def _refuse_existing(name: str) -> None:
    from ..model.registry import user_models_dir

    raise FileExistsError(
        f"a model named {name!r} exists in {user_models_dir()}; pass replace=True (--replace) "
        "to replace it, or choose another name"
    )


def _lr(step: int, fraction: float, s: FineTuneSettings) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine from ``lr`` to ``lr·lr_min_ratio``
    over the budget (``fraction`` of it used)."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    low = s.lr * s.lr_min_ratio
    return low + 0.5 * (s.lr - low) * (1 + math.cos(math.pi * min(1.0, fraction)))


def _make_task(pairs, noisy, validation_fraction, seed, settings) -> AdaptationTask:
    patch = {} if settings.patch_size is None else {"patch_size": settings.patch_size}
    if noisy is not None:
        from .selfsup import make_noisy_task

        return make_noisy_task(noisy, validation_fraction=validation_fraction, seed=seed, **patch)
    from .pairs import make_pair_task

    return make_pair_task(
        pairs,
        validation_fraction=validation_fraction,
        seed=seed,
        time_map=settings.time_map,
        p_at_observation=settings.p_at_observation,
        **patch,
    )


def _validate(task, model, device) -> dict[str, float]:
    import torch

    model.eval()
    with torch.no_grad():
        figures = task.validate(model, device)
    model.train()
    if "figure" not in figures:
        raise RuntimeError(f"the {task.kind} task's validation gave no 'figure': {figures}")
    # a diverged network scores NaN: the worst figure (JSON gets None)
    return {k: float(v) if math.isfinite(float(v)) else None for k, v in figures.items()}


def _figure(val: dict[str, float | None]) -> float:
    return -math.inf if val["figure"] is None else val["figure"]


def _autocast(device: torch.device):
    """Mixed precision on CUDA (bfloat16 where supported, else float16 + a scaler)."""
    import torch

    if device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    if hasattr(torch.amp, "GradScaler"):  # (torch >= 2.3)
        return torch.float16, torch.amp.GradScaler("cuda")
    return torch.float16, torch.cuda.amp.GradScaler()  # pragma: no cover - older torch


def iter_fine_tune(
    pairs: Any = None,
    *,
    noisy: Any = None,
    base: str = "default",
    name: str | None = None,
    replace: bool = False,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    device: Any = "auto",
    validation_fraction: float = 0.1,
    seed: int | None = None,
    resume: bool = False,
    cancel: threading.Event | None = None,
    settings: FineTuneSettings | dict | None = None,
) -> Generator[FineTuneProgress, None, str]:
    """Fine-tune ``base`` on ``pairs`` or ``noisy`` images; yields progress, returns the name.

    Same arguments as :func:`fine_tune`. Closing the generator (``.close()``, a widget's
    ``worker.quit()``), setting ``cancel`` or a ``KeyboardInterrupt`` stops the run and still
    saves the best model so far (a ``KeyboardInterrupt`` is re-raised after the save).
    Everything is checked before the first yield. A run stopped at any point, even at the
    step-0 record, saves a model (the base, unchanged, when nothing was trained).
    """
    import numpy as np
    import torch

    from .. import __version__
    from ..engine.device import resolve_device
    from ..model.registry import model_path
    from ..model.weights import ModelInfo, load_weights, save_model
    from .checkpoint import load_checkpoint, save_checkpoint

    t_start = time.perf_counter()
    # ---- arguments, all checked before anything is read or written
    if (pairs is None) == (noisy is None):
        raise ValueError(
            "pass either pairs=... (noisy/clean pairs) or noisy=... (noisy images alone)"
            + (", not both" if pairs is not None else "; no data was given")
        )
    name = _check_name(name, base)
    replace = check_bool(replace, "replace")
    resume = check_bool(resume, "resume")
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", low=1)
    if max_minutes is not None:
        max_minutes = check_number(max_minutes, "max_minutes", low=0.0, strict_low=True)
    if max_steps is None and max_minutes is None:
        max_minutes = DEFAULT_MINUTES
    validation_fraction = check_number(
        validation_fraction, "validation_fraction", low=0.0, high=0.5
    )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = check_int(seed, "seed", low=0)
    if isinstance(settings, dict):
        settings = FineTuneSettings(**settings)
    settings = settings or FineTuneSettings()
    ckpt = checkpoint_dir(name) / "checkpoint"
    has_ckpt = ckpt.with_suffix(".safetensors").is_file() and ckpt.with_suffix(".json").is_file()
    if resume and not has_ckpt:
        raise FileNotFoundError(
            f"no checkpoint of a run named {name!r} to resume ({ckpt.parent}); "
            "start it without resume=True"
        )
    if resume:  # the run goes on as it started: same base, seed (data split) and hold-out
        recorded = _checkpoint_record(ckpt)
        if base not in ("default", recorded["base"]):
            raise ValueError(
                f"the run {name!r} started from {recorded['base']!r}, not {base!r}: resume it "
                "without base= (its own base is used)"
            )
        base, seed = recorded["base"], int(recorded["seed"])
        validation_fraction = float(recorded.get("validation_fraction", validation_fraction))
    # a resumed run replaces the model it saved itself
    if _model_exists(name) and not (replace or resume):
        _refuse_existing(name)
    dev = resolve_device(device)
    base_path, _ = model_path(base)
    net, info = load_weights(base_path)
    multiple = int(info.architecture.multiple)
    if settings.patch_size is not None and settings.patch_size % multiple:
        raise ValueError(
            f"patch_size {settings.patch_size} is not a multiple of {multiple}, the size "
            f"multiple of the base model {base!r}"
        )
    net = net.to(dev).eval()
    task = _make_task(pairs, noisy, validation_fraction, seed, settings)
    task.sigma_max = float(info.sigma_max)
    prepare = getattr(task, "prepare", None)
    if prepare is not None:  # (before a checkpoint replaces the base weights)
        with torch.no_grad():
            prepare(net, dev)
    net.train()

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    best_net = copy.deepcopy(net).eval()
    for p in best_net.parameters():
        p.requires_grad_(False)
    step, elapsed_before, history = 0, 0.0, []
    if resume:
        meta = load_checkpoint(ckpt, net, best_net, opt)
        if meta.get("kind") != task.kind:
            raise ValueError(
                f"the checkpoint of {name!r} is a {meta.get('kind')!r} run; this one is "
                f"{task.kind!r}: resume it with the same kind of data"
            )
        step, elapsed_before = int(meta["step"]), float(meta["elapsed_s"])
        base_figure, best, best_step = meta["base_figure"], meta["best"], int(meta["best_step"])
        history = list(meta.get("history", []))
    else:
        base_figures = _validate(task, net, dev)
        base_figure = best = _figure(base_figures)
        best_step = 0
        history.append({"step": 0, **base_figures})
    # the task may ask for more (noisy-only: inf where its figure cannot be trusted)
    min_gain = max(settings.min_gain, float(getattr(task, "min_gain", 0.0)))
    generator = torch.Generator(device=dev).manual_seed(seed * 7919 + step)
    amp_dtype, scaler = _autocast(dev)
    t0 = time.perf_counter()
    setup_s = 0.0 if resume else t0 - t_start

    def elapsed() -> float:
        return elapsed_before + setup_s + time.perf_counter() - t0

    def fraction() -> float:
        parts = []
        if max_steps is not None:
            parts.append(step / max_steps)
        if max_minutes is not None:
            parts.append(elapsed() / (60.0 * max_minutes))
        return min(1.0, max(parts))

    def record(loss, lr, val=None, stopped=None) -> FineTuneProgress:
        return FineTuneProgress(
            step=step,
            total=max_steps,
            loss=loss,
            lr=lr,
            elapsed_s=elapsed(),
            fraction=fraction(),
            validation=val,
            best=best,
            best_step=best_step,
            base=base_figure,
            figure_name=task.figure_name,
            name=name,
            stopped=stopped,
            history=list(history),  # (a copy: the loop goes on appending to its own)
            best_weights=(
                {k: v.detach().to("cpu", copy=True) for k, v in best_net.state_dict().items()}
                if val is not None and best_step == step
                else None
            ),
        )

    last_ckpt = [time.perf_counter()]

    def write_checkpoint() -> None:
        from safetensors import SafetensorError

        last_ckpt[0] = time.perf_counter()
        try:
            _write_checkpoint()
        except (OSError, SafetensorError) as exc:
            raise OSError(f"could not write the run's checkpoint in {ckpt.parent}: {exc}") from exc

    def _write_checkpoint() -> None:
        save_checkpoint(
            ckpt,
            net,
            best_net,
            opt,
            {
                "name": name,
                "kind": task.kind,
                "base": str(base),
                "step": step,
                "elapsed_s": elapsed(),
                "base_figure": base_figure,
                "best": best,
                "best_step": best_step,
                "history": history,
                "seed": seed,
                "validation_fraction": validation_fraction,
                "settings": settings.model_dump(),
            },
        )

    def save(stopped: str, resumable: bool) -> None:
        kept_base = best_step == 0
        if kept_base and not resume:
            weights = load_weights(base_path)[0]  # unchanged, bit for bit
        else:
            weights = best_net
        gain = best - base_figure
        training = {
            "method": f"fine-tune ({task.kind})",
            "base": {"name": str(base), "path": str(base_path), "description": info.description},
            "data": task.summary(),
            "validation": {
                "figure_name": task.figure_name,
                "base": base_figure,
                "best": best,
                "best_step": best_step,
                "gain": gain,
                "history": history,
            },
            "kept_base": kept_base,
            "steps": step,
            "elapsed_s": round(elapsed(), 1),
            "stopped": stopped,
            "device": str(dev),
            "seed": seed,
            "settings": settings.model_dump(),
            "budget": {"max_steps": max_steps, "max_minutes": max_minutes},
            "checkpoint": str(ckpt.parent),
            "package_version": __version__,
        }
        what = (
            f"no checkpoint beat the base on held-out data ({task.figure_name} "
            f"{base_figure:.2f}): the base weights, unchanged"
            if kept_base
            else f"{task.figure_name} {base_figure:.2f} -> {best:.2f} on held-out data"
        )
        out = ModelInfo(
            name=name,
            architecture=info.architecture,
            sigma_max=info.sigma_max,
            normalisation=info.normalisation,
            training=training,
            description=f"{Path(str(base)).name} fine-tuned on {task.kind} ({step} steps): {what}",
        )
        _save_model(weights, name, out, replace or resume, save_model, resumable)

    def finish(stopped: str) -> None:
        """The checkpoint first (so that a failed save can be resumed), then the model."""
        resumable = step > 0
        if resumable:
            try:
                write_checkpoint()
            except OSError as exc:
                resumable = False
                warnings.warn(f"{exc}: the run cannot be resumed", RuntimeWarning, stacklevel=3)
        save(stopped, resumable)

    def judge_last() -> None:
        """Validate the weights of the steps since the last validation (a stopped run)."""
        nonlocal best, best_step
        if step > last_val_step:
            val = _validate(task, net, dev)
            history.append({"step": step, "elapsed_s": round(elapsed(), 1), **val})
            if _figure(val) > best + min_gain:
                best, best_step = _figure(val), step
                best_net.load_state_dict(net.state_dict())

    stopped = None
    lr = _lr(step, fraction(), settings)
    last_val_step = step
    bad = 0
    loss_value = None
    try:
        yield record(None, lr, history[-1] if not resume else None)
        while True:
            if math.isinf(min_gain):  # the task knows no checkpoint can beat the base: stop
                stopped = "nothing to learn"  # (rather than spend the budget to keep it)
                yield record(None, lr, None, stopped)
                break
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
                break
            if fraction() >= 1.0:
                stopped = "budget"
                break
            lr = _lr(step, fraction(), settings)
            for group in opt.param_groups:
                group["lr"] = lr
            with (
                torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            ):
                loss = task.loss(net, settings.batch_size, generator, dev)
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss.detach()):
                stopped = "diverged"  # (the best weights so far are kept)
                yield record(float("nan"), lr, None, stopped)
                break
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            step += 1
            loss_value = float(loss.detach())
            val = None
            last = fraction() >= 1.0 or (cancel is not None and cancel.is_set())
            if step % settings.val_every == 0 or last:
                val = _validate(task, net, dev)
                history.append({"step": step, "elapsed_s": round(elapsed(), 1), **val})
                last_val_step = step
                if _figure(val) > best + min_gain:
                    best, best_step, bad = _figure(val), step, 0
                    best_net.load_state_dict(net.state_dict())
                else:
                    bad += 1
                if time.perf_counter() - last_ckpt[0] > CHECKPOINT_EVERY_S:
                    write_checkpoint()
                if bad >= settings.patience:
                    stopped = "early stop"
            if stopped is None and last:
                stopped = "cancelled" if fraction() < 1.0 else "budget"
            yield record(loss_value, lr, val, stopped)
            if stopped:
                break
    except (GeneratorExit, KeyboardInterrupt) as exc:
        judge_last()
        finish("cancelled")
        if isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt(
                f"interrupted; the best model so far is saved as {name!r} (continue the run "
                "with resume=True / --resume)"
            ) from None
        return name
    judge_last()
    finish(stopped or "budget")
    return name


def _checkpoint_record(ckpt: Path) -> dict[str, Any]:
    """The JSON record of a run's checkpoint (base, seed, hold-out), checked."""
    path = ckpt.with_suffix(".json")
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "base" not in record or "seed" not in record:
            raise ValueError("no base or seed recorded")
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"the checkpoint {path} is unreadable ({exc}); start the run again without resume=True"
        ) from exc
    return record


def _save_model(
    weights, name: str, info, replace: bool, save_model, resumable: bool = False
) -> None:
    """Write the model beside the user's models, then swap it in.

    The weights and JSON are first written (each atomically) into the hidden ``.staging/``
    folder of the model folder; only when both are complete is the old JSON removed (the old
    model is then no longer listed), the weights moved in, and the JSON moved in last (a model
    is listed only once both are in place). A failure while writing (a full disk) leaves the
    existing model, if any, untouched and nothing half-written."""
    import shutil

    from safetensors import SafetensorError

    from ..model.registry import user_models_dir

    folder = user_models_dir()
    target = folder / f"{name}.safetensors"
    meta = target.with_suffix(".json")
    if (target.exists() or meta.exists()) and not replace:
        _refuse_existing(name)
    staging = folder / ".staging" / f"{name}-{os.getpid()}"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        new_weights = save_model(weights, staging / target.name, info)
        meta.unlink(missing_ok=True)
        os.replace(new_weights, target)
        os.replace(new_weights.with_suffix(".json"), meta)
    except (OSError, SafetensorError) as exc:  # (safetensors' own error for a full disk)
        raise OSError(
            f"could not save the model {name!r} in {folder}: {exc}; "
            + ("the existing model is unchanged" if target.exists() else "nothing was saved")
            + (
                " (the run's checkpoint is kept: free some space and continue it with resume=True)"
                if resumable
                else ""
            )
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.parent.rmdir()  # (only when empty: another run may be saving)
        except OSError:
            pass


def fine_tune(
    pairs: Any = None,
    *,
    noisy: Any = None,
    base: str = "default",
    name: str | None = None,
    replace: bool = False,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    device: Any = "auto",
    validation_fraction: float = 0.1,
    seed: int | None = None,
    progress: Callable[[FineTuneProgress], Any] | None = None,
    resume: bool = False,
    cancel: threading.Event | None = None,
    settings: FineTuneSettings | dict | None = None,
) -> str:
    """Adapt a model to your microscope; returns the saved model's name.

    Parameters
    ----------
    pairs
        Noisy/clean pairs: a list of ``(noisy, clean)`` arrays or napari layers, one
        ``(noisy, clean)`` tuple of equal-shape nD stacks (planes become samples), or a
        ``(noisy_folder, clean_folder)`` tuple of folders whose files (TIFF, PNG, ``.npy``,
        zarr) are matched by name. Checked first: equal shapes, finite values, at least one
        patch per plane; a misaligned pair is reported (a warning with the shift); the clean
        image's offset and gain are fitted and removed.
    noisy
        Noisy images alone (arrays, layers, a folder or an nD stack): self-supervised
        adaptation. Give ``pairs`` or ``noisy``, not both.
    base
        The model to start from: a name from :func:`list_models` or a ``.safetensors`` path.
    name
        The new model's name (default: the base's name and the date). An existing name is
        refused unless ``replace=True``.
    replace
        Replace an existing model of that name.
    max_steps, max_minutes
        The budget: the run stops at whichever comes first (default: 5 minutes); the learning
        rate decays over it.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    validation_fraction
        Share of the planes (or, for a single image, of its rows) held out to validate.
    seed
        Makes the run reproducible (default: random, recorded in the model's JSON).
    progress
        Called with a :class:`FineTuneProgress` after every step (step 0: the base model's
        validation figure).
    resume
        Carry on the run of this ``name`` from its checkpoint: pass the same data (and kind);
        the base model, seed and validation split are the checkpoint's. Pass a larger budget
        to extend a finished run.
    cancel
        A ``threading.Event``: set it to stop the run; the best model so far is saved.
    settings
        :class:`FineTuneSettings` (or a dict of them): learning rate, batch and patch size...

    Returns
    -------
    str
        The saved model's name, usable as ``denoise(image, model=name)`` at once and in any
        later process (``list_models()`` lists it).

    Notes
    -----
    The base model's validation figure is computed first; when no checkpoint beats it, the
    saved model is the base, unchanged (its JSON says ``"kept_base": true``). A
    ``KeyboardInterrupt`` (from ``progress`` or Ctrl-C) saves the best model so far, then is
    re-raised.
    """
    from .._progress import run_to_end

    name = _check_name(name, base)
    steps = iter_fine_tune(
        pairs,
        noisy=noisy,
        base=base,
        name=name,
        replace=replace,
        max_steps=max_steps,
        max_minutes=max_minutes,
        device=device,
        validation_fraction=validation_fraction,
        seed=seed,
        resume=resume,
        cancel=cancel,
        settings=settings,
    )
    try:
        return run_to_end(steps, progress)
    except KeyboardInterrupt:
        if steps.gi_frame is None:  # raised inside the generator, after it saved
            raise
        steps.close()  # interrupted in ``progress``: closing the generator saves
        raise KeyboardInterrupt(
            f"interrupted; the best model so far is saved as {name!r} (continue the run with "
            "resume=True)"
        ) from None
