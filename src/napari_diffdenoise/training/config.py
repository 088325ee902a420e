"""Training configuration: one validated model, stored with checkpoints and in the model sidecar.

Every field is checked when a config is built or changed (``TrainingConfig(**kwargs)``,
:meth:`TrainingConfig.from_dict`, :meth:`TrainingConfig.from_json`, attribute assignment); a
bad value raises ``ValueError`` (pydantic's ``ValidationError``) naming the field. The history
behind the defaults is in ``docs/design/training.md``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..intensity import SIGMA_MAX

__all__ = ["TrainingConfig", "RECIPE_PREFIX"]

#: ``init_from`` / ``resume_from`` values with this prefix name another recipe (its file stem
#: in the same folder); they resolve to that recipe's ``<output>/checkpoint.safetensors``
RECIPE_PREFIX = "recipe:"

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Share = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Every = Annotated[int, Field(ge=1)]
# JSON gives lists: the tuples take them (their items stay strictly typed)
FloatPair = Annotated[tuple[float, float], Field(strict=False)]


class TrainingConfig(BaseModel):
    """Everything that defines a training run (the recipe).

    Noise levels are in normalised units (the image's robust range mapped to [0, 1]). The
    learning-rate schedule depends on ``steps`` alone: ``max_minutes`` may stop a run early,
    never reshape its schedule.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )

    name: str = "default"
    """Name of the trained model (``<output>/<name>.safetensors``); a file stem."""
    output: str = Field("runs/default", min_length=1)
    """Folder of the run: checkpoint, log and model."""
    channels: Annotated[
        tuple[Annotated[int, Field(ge=4)], ...], Field(strict=False, min_length=2)
    ] = (32, 64, 96, 128)
    """UNet feature channels per level, full resolution first."""
    blocks_per_level: int = Field(1, ge=1)
    """Residual blocks per UNet level."""
    sigma_max: float = Field(SIGMA_MAX, gt=0.0)
    """Noise std at time 1 (normalised units)."""
    steps: int = Field(10000, ge=1)
    """Optimiser steps of the run; the cosine schedule decays over them."""
    max_minutes: float | None = Field(None, gt=0.0)
    """Optional time budget: the run stops when it is spent (the schedule is unchanged)."""
    batch_size: int = Field(16, ge=1)
    """Patches per step."""
    patch_size: int = Field(64, ge=16)
    """Side of the square training patches (a multiple of the UNet's downsampling)."""
    lr: float = Field(2e-4, gt=0.0)
    """Peak learning rate (AdamW)."""
    lr_min: float = Field(1e-6, ge=0.0)
    """Learning rate at the end of the cosine decay."""
    weight_decay: float = Field(1e-4, ge=0.0)
    """AdamW weight decay."""
    warmup_steps: int = Field(200, ge=0)
    """Steps of linear learning-rate warm-up."""
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    """Decay of the exponential moving average of the weights (the delivered model)."""
    charbonnier_eps: float = Field(1e-3, gt=0.0)
    """ε of the Charbonnier loss ``sqrt(err² + ε²)``."""
    grad_clip: float = Field(1.0, ge=0.0)
    """Gradient-norm clipping threshold (0: off)."""
    # data
    train_dir: str | None = Field(None, min_length=1)
    """Folder of clean training images (None: ``../shared/data/train400`` of a checkout)."""
    holdout: Count = 8
    """The last images of ``train_dir`` kept out for validation."""
    synthetic_images: Count = 400
    """Synthetic fluorescence images added to the training set."""
    synthetic_size: int = Field(192, ge=16)
    """Side of the synthetic images and textures."""
    p_synthetic: Share | None = None
    """Share of patches from the synthetic images (None: in proportion to the counts)."""
    texture_images: Count = 0
    """Synthetic oriented periodic textures (``synthetic_texture``) added to the set."""
    p_texture: Share | None = None
    """Share of patches from the textures (None: in proportion to the counts)."""
    # noise mixture (probabilities, normalised when drawn)
    p_gaussian: float = Field(0.35, ge=0.0)
    """Weight of Gaussian noise of one σ per patch."""
    p_spatially_variant: float = Field(0.25, ge=0.0)
    """Weight of Gaussian noise with σ along a smooth field or ramp."""
    p_poisson: float = Field(0.30, ge=0.0)
    """Weight of Poisson-Gaussian noise."""
    p_salt_and_pepper: float = Field(0.10, ge=0.0)
    """Weight of salt-and-pepper impulses (filled from their neighbours)."""
    sigma_range: FloatPair = (0.004, 0.30)
    """Range of the Gaussian σ, ``0 <= low <= high <= sigma_max``."""
    photons_range: FloatPair = (5.0, 300.0)
    """Range of the photon count at signal 1 (Poisson noise), log-uniform."""
    read_noise_max: float = Field(0.05, ge=0.0)
    """Largest read-noise std added to Poisson noise."""
    impulse_range: FloatPair = (0.03, 0.5)
    """Range of the share of pixels hit by impulses."""
    p_correlated: Share = 0.0
    """Share of Gaussian/variant/Poisson samples with spatially correlated noise."""
    correlation_max: float = Field(0.3, ge=0.0, le=0.5)
    """Largest side tap ``a`` of the ``[a, 1, a]`` correlation kernel."""
    p_clip_black: Share = 0.0
    """Share of Gaussian/Poisson samples clamped at a black level near the darkest signal."""
    clip_black_range: FloatPair = (-1.0, 0.75)
    """Black level above the darkest signal, in noise stds (low, high)."""
    photon_floor: float = Field(0.0, ge=0.0, le=10.0)
    """Floor of the Poisson time map in photon steps (0: none; inference uses 1)."""
    p_black_shift: Share = 0.0
    """Share of clean patches lowered towards black before the noise is drawn."""
    black_shift_range: FloatPair = (0.7, 1.0)
    """How far (share of the patch's 1st percentile) they are lowered, within [0, 1]."""
    # schedule of the training times
    p_at_observation: Share = 0.5
    """Share of samples trained at the observation's own time ``t = τ_y``."""
    p_smooth_time: Share = 0.2
    """Share of the other samples whose time is a smooth field rather than a constant."""
    p_fresh_noise: Share = 0.0
    """Share of samples below ``τ_y`` whose noise is partly fresh (``mixed_path``)."""
    # where the weights start
    init_from: str | None = Field(None, min_length=1)
    """Start from these weights with a fresh optimiser and schedule (a warm restart): a model
    name, a model or checkpoint ``.safetensors`` path, or ``recipe:<name>``."""
    resume_from: str | None = Field(None, min_length=1)
    """Carry on another run's checkpoint (weights, EMA, optimiser, step) under this recipe:
    a checkpoint path or ``recipe:<name>``."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """Arithmetic of the network: float32, or bfloat16 autocast (float32 weights and loss)."""
    # bookkeeping
    seed: Count = 0
    """Seed of the patch sampler, the noise and the weights' initialisation."""
    threads: int | None = Field(None, ge=1)
    """CPU threads for torch (None: torch's default); a machine setting, not for recipes."""
    device: str = "auto"
    """``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    log_every: Every = 50
    """Steps between log lines."""
    val_every: Every = 500
    """Steps between validations on the held-out images."""
    checkpoint_every: Every = 500
    """Steps between checkpoints (and model files)."""

    _recipe_dir: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _file_stem(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"name must be a file stem (letters, digits, '_', '-', '.'), got {value!r}"
            )
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        levels = len(self.channels)
        if self.patch_size % 2 ** (levels - 1) or self.patch_size % 8:
            raise ValueError(
                f"patch_size must be a multiple of 8 and of 2^(levels - 1) = "
                f"{2 ** (levels - 1)}, got {self.patch_size}"
            )
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        if (self.synthetic_images or self.texture_images) and self.synthetic_size < self.patch_size:
            raise ValueError(
                f"synthetic_size ({self.synthetic_size}) must be >= patch_size "
                f"({self.patch_size}) when synthetic images or textures are used"
            )
        if (self.p_synthetic or 0.0) + (self.p_texture or 0.0) > 1.0:
            raise ValueError("p_synthetic + p_texture must not exceed 1")
        probs = (self.p_gaussian, self.p_spatially_variant, self.p_poisson, self.p_salt_and_pepper)
        if sum(probs) <= 0:
            raise ValueError(
                "noise mixture p_gaussian, p_spatially_variant, p_poisson, "
                "p_salt_and_pepper must not all be zero"
            )
        lo, hi = self.sigma_range
        if not 0 <= lo <= hi <= self.sigma_max:
            raise ValueError(
                f"sigma_range must satisfy 0 <= low <= high <= sigma_max "
                f"({self.sigma_max}), got {self.sigma_range}"
            )
        lo, hi = self.photons_range
        if not 0 < lo <= hi:
            raise ValueError(
                f"photons_range must satisfy 0 < low <= high, got {self.photons_range}"
            )
        if self.read_noise_max > self.sigma_max:
            raise ValueError(
                f"read_noise_max ({self.read_noise_max}) must not exceed sigma_max "
                f"({self.sigma_max})"
            )
        lo, hi = self.impulse_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError(
                f"impulse_range must satisfy 0 <= low <= high <= 1, got {self.impulse_range}"
            )
        lo, hi = self.clip_black_range
        if lo > hi:
            raise ValueError(
                f"clip_black_range must be (low, high) with low <= high, got "
                f"{self.clip_black_range}"
            )
        lo, hi = self.black_shift_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError(
                f"black_shift_range must satisfy 0 <= low <= high <= 1, got "
                f"{self.black_shift_range}"
            )
        if self.init_from is not None and self.resume_from is not None:
            raise ValueError(
                "init_from and resume_from exclude each other: a run either "
                "starts from weights or carries on a checkpoint"
            )
        return self

    # -- dict / JSON round trip (checkpoints, sidecars, recipes) -----------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field, tuples as lists (JSON-ready)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Build from a dict (a recipe, a checkpoint's or sidecar's record); unknown keys are
        refused."""
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainingConfig:
        """Read a recipe file; ``recipe:<name>`` references resolve next to it."""
        path = Path(path)
        cfg = cls.from_dict(json.loads(path.read_text()))
        cfg._recipe_dir = path.parent
        return cfg

    def replace(self, **changes: Any) -> TrainingConfig:
        """A validated copy with ``changes`` (keeps where ``recipe:`` references resolve)."""
        cfg = type(self).from_dict({**self.to_dict(), **changes})
        cfg._recipe_dir = self._recipe_dir
        return cfg

    @property
    def recipe_dir(self) -> Path:
        """Where ``recipe:<name>`` references are looked up: the folder of the recipe file this
        config was read from, else ``recipes/`` in the working directory."""
        return self._recipe_dir if self._recipe_dir is not None else Path("recipes")
