"""Training configuration: one dataclass, stored with checkpoints and in the model sidecar."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..intensity import SIGMA_MAX

__all__ = ["TrainingConfig"]


@dataclass
class TrainingConfig:
    """Everything that defines a training run (the recipe).

    Noise levels are in normalised units (the image's robust range mapped to [0, 1]).
    """

    name: str = "default"
    output: str = "runs/default"
    channels: tuple[int, ...] = (32, 64, 96, 128)
    blocks_per_level: int = 1
    sigma_max: float = SIGMA_MAX
    steps: int = 10000
    max_minutes: float | None = None
    batch_size: int = 16
    patch_size: int = 64
    lr: float = 2e-4
    lr_min: float = 1e-6
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    ema_decay: float = 0.999
    charbonnier_eps: float = 1e-3
    grad_clip: float = 1.0
    # data
    train_dir: str | None = None
    holdout: int = 8
    synthetic_images: int = 400
    synthetic_size: int = 192
    #: share of patches drawn from the synthetic images (None: in proportion to the counts)
    p_synthetic: float | None = None
    #: oriented periodic textures (``synthetic_texture``, ``synthetic_size``²): how many, and
    #: their share of the patches (None: in proportion to the counts)
    texture_images: int = 0
    p_texture: float | None = None
    # noise mixture (probabilities, normalised when drawn)
    p_gaussian: float = 0.35
    p_spatially_variant: float = 0.25
    p_poisson: float = 0.30
    p_salt_and_pepper: float = 0.10
    sigma_range: tuple[float, float] = (0.004, 0.30)
    photons_range: tuple[float, float] = (5.0, 300.0)
    read_noise_max: float = 0.05
    impulse_range: tuple[float, float] = (0.03, 0.5)
    #: share of the Gaussian, spatially variant and Poisson samples whose noise is spatially
    #: correlated (as real cameras' often is): filtered by a separable 3-tap kernel
    #: ``[a, 1, a]`` per axis, ``a ~ U[0, correlation_max]``, variance kept; their time map is
    #: what the blind estimator reads off such noise (its high-frequency part, lower)
    p_correlated: float = 0.0
    correlation_max: float = 0.3
    #: share of the Gaussian and Poisson samples clipped at a black level, as cameras and PMT
    #: digitisers clamp what falls below their floor (the FMD frames: 77 % of the background at
    #: one grey value, sparse photon counts above it): ``y = max(y, black)`` with ``black`` the
    #: patch's darkest signal (2nd percentile) plus ``u`` times the noise std there,
    #: ``u ~ U[clip_black_range]``; the target stays the unclipped signal. (Stage 7b of
    #: docs/training.md: worse on the FMD pairs, whose background is not a clamp; off.)
    p_clip_black: float = 0.0
    clip_black_range: tuple[float, float] = (-1.0, 0.75)
    #: the Poisson samples' time map starts no pixel below this many photon steps
    #: (``photon_floor / photons``), as ``NoiseReport.start_sigma_map`` does at inference
    #: (``PHOTON_FLOOR``, 1.0); 0 (the default): the observed std alone, as the recipes up to
    #: stage 7 were trained
    photon_floor: float = 0.0
    #: share of the patches (every noise kind) whose clean signal is lowered towards black
    #: before the noise is drawn: ``x0 ← max(x0 − u·q, 0)``, ``q`` the patch's 1st percentile,
    #: ``u ~ U[black_shift_range]``; the lowered patch is also the target. Inference maps an
    #: image's 0.5th percentile to 0 (``intensity.robust_range``), so a fluorescence image's
    #: background arrives near 0, where Poisson counts are sparse pulses (the FMD frames: 0.2
    #: photons per pixel); the training images' backgrounds sit at 0.02-0.1 (docs/training.md,
    #: stage 8)
    p_black_shift: float = 0.0
    black_shift_range: tuple[float, float] = (0.7, 1.0)
    # schedule of the training times
    p_at_observation: float = 0.5
    p_smooth_time: float = 0.2
    #: share of the samples below the observation's time (t < τ_y) whose noise is only partly
    #: the observation's own (a random share ρ ~ U[0, 1], the rest fresh Gaussian noise; see
    #: ``diffusion.forward.mixed_path``): what multi-step and stochastic samplers produce
    p_fresh_noise: float = 0.0
    #: start a new run from these weights (a training ``checkpoint.safetensors``, whose EMA and
    #: raw weights are both taken, a model ``.safetensors`` file, or a model name such as
    #: ``"default"``): a warm restart or fine-tuning run with a fresh
    #: optimiser and learning-rate schedule. Ignored when ``output`` already holds a checkpoint
    #: (that run is resumed instead).
    init_from: str | None = None
    #: arithmetic of the network during training: "float32", or "bfloat16" autocast (for GPUs
    #: with bf16; weights, EMA, optimiser and loss stay float32)
    precision: str = "float32"
    # bookkeeping
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.sigma_range = tuple(float(s) for s in self.sigma_range)  # type: ignore[assignment]
        self.photons_range = tuple(float(s) for s in self.photons_range)  # type: ignore[assignment]
        self.impulse_range = tuple(float(s) for s in self.impulse_range)  # type: ignore[assignment]
        self.clip_black_range = tuple(float(s) for s in self.clip_black_range)  # type: ignore[assignment]
        self.black_shift_range = tuple(float(s) for s in self.black_shift_range)  # type: ignore[assignment]
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.patch_size < 16 or self.patch_size % 8:
            raise ValueError(f"patch_size must be a multiple of 8 and >= 16, got {self.patch_size}")
        if not 0 < self.sigma_max:
            raise ValueError("sigma_max must be positive")
        if not 0 <= self.sigma_range[0] <= self.sigma_range[1] <= self.sigma_max:
            raise ValueError("sigma_range must satisfy 0 <= low <= high <= sigma_max")
        if self.p_synthetic is not None and not 0.0 <= self.p_synthetic <= 1.0:
            raise ValueError(f"p_synthetic must be in [0, 1], got {self.p_synthetic}")
        if self.p_texture is not None and not 0.0 <= self.p_texture <= 1.0:
            raise ValueError(f"p_texture must be in [0, 1], got {self.p_texture}")
        if (self.p_synthetic or 0.0) + (self.p_texture or 0.0) > 1.0:
            raise ValueError("p_synthetic + p_texture must not exceed 1")
        if self.texture_images < 0 or self.synthetic_images < 0:
            raise ValueError("synthetic_images and texture_images must be >= 0")
        if not 0.0 <= self.p_fresh_noise <= 1.0:
            raise ValueError(f"p_fresh_noise must be in [0, 1], got {self.p_fresh_noise}")
        if not 0.0 <= self.p_correlated <= 1.0:
            raise ValueError(f"p_correlated must be in [0, 1], got {self.p_correlated}")
        if not 0.0 <= self.p_clip_black <= 1.0:
            raise ValueError(f"p_clip_black must be in [0, 1], got {self.p_clip_black}")
        if len(self.clip_black_range) != 2 or self.clip_black_range[0] > self.clip_black_range[1]:
            raise ValueError(f"clip_black_range must be (low, high) with low <= high, got "
                             f"{self.clip_black_range}")
        if not 0.0 <= self.photon_floor <= 10.0:
            raise ValueError(f"photon_floor must be in [0, 10], got {self.photon_floor}")
        if not 0.0 <= self.p_black_shift <= 1.0:
            raise ValueError(f"p_black_shift must be in [0, 1], got {self.p_black_shift}")
        if (len(self.black_shift_range) != 2
                or not 0.0 <= self.black_shift_range[0] <= self.black_shift_range[1] <= 1.0):
            raise ValueError(f"black_shift_range must be (low, high) with 0 <= low <= high <= 1, "
                             f"got {self.black_shift_range}")
        if not 0.0 <= self.correlation_max <= 0.5:
            raise ValueError(f"correlation_max must be in [0, 0.5], got {self.correlation_max}")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}")
        probs = (self.p_gaussian, self.p_spatially_variant, self.p_poisson, self.p_salt_and_pepper)
        if min(probs) < 0 or sum(probs) <= 0:
            raise ValueError("noise mixture probabilities must be >= 0 and not all zero")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainingConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
