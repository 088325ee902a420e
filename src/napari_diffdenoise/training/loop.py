"""The training loop, as a generator that yields progress (for the API, the CLI and widgets)."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import TrainingConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["TrainProgress", "iter_train", "train_model", "default_train_dir"]


@dataclass
class TrainProgress:
    """One progress report: the step just done and, every ``val_every`` steps, validation PSNR."""

    step: int
    total: int
    loss: float
    lr: float
    elapsed_s: float
    val_psnr: dict[str, float] | None = None


def default_train_dir() -> Path:
    """``<project>/../shared/data/train400`` when running from a source checkout."""
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "train400"


def _lr_at(step: int, cfg: TrainingConfig) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine decay from ``lr``
    to ``lr_min`` over the rest of ``cfg.steps``. A function of the step alone, so a run gives
    the same schedule on any machine (``max_minutes`` only stops it)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(1.0, frac)))


def _build_images(cfg: TrainingConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from .data import load_clean_images

    train_dir = Path(cfg.train_dir) if cfg.train_dir else default_train_dir()
    natural = load_clean_images(train_dir)
    holdout = natural[-cfg.holdout :] if cfg.holdout else []
    natural = natural[: len(natural) - cfg.holdout]
    kinds = ("cells", "blobs", "filaments", "mixed")
    if cfg.synthetic_images:
        from ..synthetic import synthetic_fluorescence
    synth = [
        np.asarray(
            synthetic_fluorescence(
                (cfg.synthetic_size, cfg.synthetic_size),
                kind=kinds[i % 4],
                seed=cfg.seed * 100003 + i,
            ),
            dtype=np.float32,
        )
        for i in range(cfg.synthetic_images)
    ]
    textures = []
    if cfg.texture_images:
        from ..synthetic import synthetic_texture

        textures = [
            synthetic_texture(
                (cfg.synthetic_size, cfg.synthetic_size), seed=cfg.seed * 100003 + 50021 + i
            )
            for i in range(cfg.texture_images)
        ]
    return natural + synth + textures, holdout


def _describe_data(cfg: TrainingConfig, n_images: int) -> str:
    n_nat = n_images - cfg.synthetic_images - cfg.texture_images
    text = (
        f"{n_nat} natural images ({Path(cfg.train_dir or default_train_dir()).name}) + "
        f"{cfg.synthetic_images} synthetic fluorescence images"
    )
    return text + (f" + {cfg.texture_images} synthetic textures" if cfg.texture_images else "")


def _image_weights(cfg: TrainingConfig, n_images: int) -> list[float] | None:
    """Per-image draw probabilities for ``[natural..., synthetic..., textures...]``: the
    synthetic and texture shares from the recipe (each, when unset, in proportion to its
    count), the rest spread evenly over the natural images; None (uniform) when no share is
    set or only one kind of image is there."""
    if cfg.p_synthetic is None and cfg.p_texture is None:
        return None
    n_synth, n_tex = cfg.synthetic_images, cfg.texture_images
    n_nat = n_images - n_synth - n_tex
    p_syn = cfg.p_synthetic if cfg.p_synthetic is not None else n_synth / n_images
    p_tex = cfg.p_texture if cfg.p_texture is not None else n_tex / n_images
    groups = [
        (n, share)
        for n, share in ((n_nat, 1 - p_syn - p_tex), (n_synth, p_syn), (n_tex, p_tex))
        if n
    ]
    if len(groups) < 2:  # one kind of image only: uniform (a share of nothing is ignored)
        return None
    return [share / n for n, share in groups for _ in range(n)]


VAL_SIGMAS = (25, 50)


def validation_pairs(holdout: list[np.ndarray]) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(σ in grey levels, clean, noisy)`` for every held-out image and validation σ, with the
    same seeded noise every time (``benchmarks/bench_holdout.py`` scores baselines on it)."""
    import torch

    g = torch.Generator().manual_seed(1234)
    for sigma255 in VAL_SIGMAS:
        for im in holdout:
            s = (min(im.shape) // 8) * 8
            x0 = torch.from_numpy(np.ascontiguousarray(im[:s, :s])).view(1, 1, s, s)
            yield sigma255, x0, x0 + (sigma255 / 255.0) * torch.randn(x0.shape, generator=g)


def _validate(ema, holdout, cfg, device) -> dict[str, float]:
    import torch

    from ..diffusion.samplers import sample

    psnrs: dict[int, list[float]] = {s: [] for s in VAL_SIGMAS}
    for sigma255, x0, y in validation_pairs(holdout):
        tau = torch.full_like(x0, sigma255 / 255.0 / cfg.sigma_max)
        with torch.no_grad():
            x = sample(ema, y.to(device), tau.to(device), sampler="direct").cpu()
        mse = float(((x.clamp(0, 1) - x0) ** 2).mean())
        psnrs[sigma255].append(10 * math.log10(1.0 / max(mse, 1e-12)))
    return {f"gaussian{s}": float(np.mean(v)) for s, v in psnrs.items()}


def iter_train(
    cfg: TrainingConfig, *, resume: bool = True, stop_at_step: int | None = None
) -> Generator[TrainProgress, None, Any]:
    """Train (or resume) the model described by ``cfg``; yields progress, returns the EMA model.

    Where the weights start: the run's own checkpoint in ``<output>`` when ``resume`` is true
    and there is one (the run goes on); else ``cfg.resume_from``, another run's checkpoint
    carried on under this recipe (weights, EMA, optimiser moments, step and time counters);
    else ``cfg.init_from``, weights with a fresh optimiser and schedule; else a new network.
    ``recipe:<name>`` values resolve to that recipe's checkpoint (``training.references``).

    ``stop_at_step`` pauses the run at that step (checkpoint and model written) without
    changing its learning-rate schedule, so a later resume continues the same run.

    Writes ``<output>/checkpoint.{safetensors,json}`` every ``checkpoint_every`` steps and at the
    end, ``<output>/train_log.jsonl`` (one line per log/validation step) and
    ``<output>/<name>.{safetensors,json}`` (the EMA weights, the deliverable).
    """
    import torch

    from ..engine.device import resolve_device
    from ..model.unet import TimeUNet, UNetConfig
    from ..model.weights import ModelInfo, save_model
    from .checkpoint import init_weights, load_checkpoint, save_checkpoint
    from .data import PatchSampler, corrupt, shift_black_level
    from .references import recipe_name, resolve_start

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    arch = UNetConfig(channels=cfg.channels, blocks_per_level=cfg.blocks_per_level)
    # channels-last: oneDNN's fast convolutions (1.2–1.5× more steps/s on a 2-core CPU)
    model = TimeUNet(arch).to(device, memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    # fused AdamW: one kernel for the whole update on a GPU (the CPU keeps the reference one)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        **({"fused": True} if device.type == "cuda" else {}),
    )
    ckpt = out_dir / "checkpoint"
    start, elapsed_before = 0, 0.0
    origin: dict[str, Any] | None = None  # the weights a warm restart started from
    resumed: dict[str, Any] | None = None  # the run this one carries on
    if resume and ckpt.with_suffix(".safetensors").is_file():
        meta = load_checkpoint(ckpt, model, ema, opt)
        start, elapsed_before = int(meta["step"]), float(meta.get("elapsed_s", 0.0))
        origin, resumed = meta.get("init_from"), meta.get("resumed_from")
    elif cfg.resume_from:
        other = Path(resolve_start(cfg.resume_from, cfg.recipe_dir)).with_suffix("")
        if not all(other.with_suffix(x).is_file() for x in (".safetensors", ".json")):
            raise OSError(f"resume_from: checkpoint {other}.safetensors (+ .json) not found")
        meta = load_checkpoint(other, model, ema, opt)
        start, elapsed_before = int(meta["step"]), float(meta.get("elapsed_s", 0.0))
        if start >= cfg.steps:
            raise ValueError(
                f"resume_from: {other} is at step {start}, not below this "
                f"recipe's steps ({cfg.steps})"
            )
        origin = meta.get("init_from")
        resumed = {"path": str(other.with_suffix(".safetensors")), "step": start}
    elif cfg.init_from:
        origin = init_weights(resolve_start(cfg.init_from, cfg.recipe_dir), model, ema)
        if recipe_name(cfg.init_from):
            origin["recipe"] = cfg.init_from
    images, holdout = _build_images(cfg)
    weights = _image_weights(cfg, len(images))
    sampler = PatchSampler(images, cfg.patch_size, seed=cfg.seed + start, weights=weights)
    # noise is synthesised where the network runs (on a GPU, the CPU only crops patches)
    noise_generator = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + start)
    bf16 = cfg.precision == "bfloat16"
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    log_path = out_dir / "train_log.jsonl"
    t0 = time.perf_counter()
    running = 0.0
    step = start

    def write_model() -> None:
        base = origin.get("total_steps") if origin else None
        info = ModelInfo(
            name=cfg.name,
            architecture=arch,
            sigma_max=cfg.sigma_max,
            normalisation={"kind": "robust_percentiles", "low": 0.5, "high": 99.8},
            training={
                "steps": step,
                "elapsed_s": round(elapsed_before + time.perf_counter() - t0, 1),
                "device": str(device),
                "data": _describe_data(cfg, len(images)),
                "recipe": cfg.to_dict(),
                **({"init_from": origin, "total_steps": (base or 0) + step} if origin else {}),
                **({"resumed_from": resumed} if resumed else {}),
            },
            description=f"TimeUNet {list(cfg.channels)}"
            + (f" × {cfg.blocks_per_level} blocks per level" if cfg.blocks_per_level > 1 else "")
            + f", trained {step} steps"
            + (f" from a {base}-step model ({base + step} in all)" if base is not None else ""),
        )
        save_model(ema, out_dir / cfg.name, info)

    def checkpoint() -> None:
        save_checkpoint(
            ckpt,
            model,
            ema,
            opt,
            {
                "step": step,
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
                "config": cfg.to_dict(),
                **({"init_from": origin} if origin else {}),
                **({"resumed_from": resumed} if resumed else {}),
            },
        )

    from ..diffusion.forward import mixed_path, sample_train_time, straight_path

    if stop_at_step is not None and stop_at_step < 1:
        raise ValueError(f"stop_at_step must be >= 1, got {stop_at_step}")
    end = cfg.steps if stop_at_step is None else min(cfg.steps, stop_at_step)
    while step < end:
        elapsed = elapsed_before + time.perf_counter() - t0
        if cfg.max_minutes and elapsed > 60 * cfg.max_minutes:
            break
        lr = _lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x0 = sampler.batch(cfg.batch_size).to(device, non_blocking=True)
        x0 = shift_black_level(x0, cfg, noise_generator)
        y, tau_y = corrupt(x0, cfg, noise_generator)
        t = sample_train_time(
            tau_y,
            p_at_observation=cfg.p_at_observation,
            p_smooth_field=cfg.p_smooth_time,
            generator=noise_generator,
        )
        if cfg.p_fresh_noise > 0:
            b = x0.shape[0]
            rho = torch.rand(b, 1, 1, 1, generator=noise_generator, device=device)
            fresh = (
                torch.rand(b, 1, 1, 1, generator=noise_generator, device=device) < cfg.p_fresh_noise
            )
            rho = torch.where(fresh, rho, torch.ones_like(rho))
            x_t = mixed_path(
                x0,
                y,
                t,
                tau_y,
                rho,
                cfg.sigma_max,
                torch.randn(x0.shape, generator=noise_generator, device=device),
            )
        else:
            x_t = straight_path(x0, y, t, tau_y)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(x_t, y, t)
        loss = torch.sqrt((pred.float() - x0) ** 2 + cfg.charbonnier_eps**2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            # the same arithmetic as a per-tensor mul_/add_ loop, in a few fused kernels
            torch._foreach_mul_(ema_params, decay)
            torch._foreach_add_(ema_params, model_params, alpha=1 - decay)
        step += 1
        running += loss.item()
        val = None
        if step % cfg.val_every == 0 and holdout:
            val = _validate(ema, holdout, cfg, device)
        if step % cfg.log_every == 0 or val is not None:
            record: dict[str, Any] = {
                "step": step,
                "loss": running / max(1, step % cfg.log_every or cfg.log_every),
                "lr": lr,
                "elapsed_s": round(elapsed_before + time.perf_counter() - t0, 1),
            }
            if val:
                record["val_psnr"] = val
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if step % cfg.log_every == 0:
                running = 0.0
        if step % cfg.checkpoint_every == 0:
            checkpoint()
            write_model()
        yield TrainProgress(
            step, cfg.steps, loss.item(), lr, elapsed_before + time.perf_counter() - t0, val
        )
    checkpoint()
    write_model()
    return ema


def train_model(
    config: TrainingConfig | dict | None = None,
    *,
    resume: bool = True,
    stop_at_step: int | None = None,
    progress: Callable[[TrainProgress], Any] | None = None,
):
    """Train a denoiser from a :class:`TrainingConfig` (or dict); returns the EMA model.

    The model is written to ``<config.output>/<config.name>.safetensors`` (+ ``.json``), ready for
    :func:`napari_diffdenoise.load_model`.
    """
    if config is None:
        cfg = TrainingConfig()
    elif isinstance(config, dict):
        cfg = TrainingConfig.from_dict(config)
    else:
        cfg = config
    from .._progress import run_to_end

    return run_to_end(iter_train(cfg, resume=resume, stop_at_step=stop_at_step), progress)
