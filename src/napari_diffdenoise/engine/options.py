"""One options object for every entry point of the denoiser (API, widget, CLI, dask).

:class:`DenoiseOptions` holds what the user chooses; :meth:`DenoiseOptions.resolve` checks it,
loads the model and fills in the preset's defaults, giving the :class:`Settings` the engine
runs with. ``Settings.metadata()`` is what result layers and zarr outputs record, so that
``denoise(image, **metadata)`` reproduces a result.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

import numpy as np

from .._validation import check_choice, check_dtype, check_int, check_number

__all__ = ["AUTO_FALLBACK", "DenoiseOptions", "Settings", "model_hash"]

#: the Wiener weight ``wiener="auto"`` falls back to with stochastic sampling (no SURE there)
AUTO_FALLBACK = 0.5
#: bytes of working memory per pixel of a tile in one network pass (float32 activations of
#: TimeUNet [32, 64, 96, 128], measured on CPU: about 500; with margin)
BYTES_PER_PIXEL = 800
#: the CPU's share of the memory that is available when a run starts
CPU_MEMORY_SHARE = 0.25
#: at most this much memory for one batch on a CPU: a 1024² plane in one pass fits, and larger
#: passes or batches gain nothing there (they only raise the peak memory)
CPU_MEMORY_CAP = 1 << 30
#: the GPU's share of its free memory
GPU_MEMORY_SHARE = 0.6


@dataclass(frozen=True)
class DenoiseOptions:
    """What the user chooses; ``None`` means "the model preset's default" (or "chosen from free
    memory" for ``tile_size`` and ``batch_size``)."""

    model: Any = "default"
    sampler: str | None = None
    steps: int | None = None
    eta: float = 0.0
    samples: int = 1
    ensemble: int | None = None
    wiener: float | str | None = None
    device: Any = "auto"
    precision: str | None = None
    seed: int | None = None
    tile_size: int | None = None
    batch_size: int | None = None
    output_dtype: Any = None
    threads: int | None = None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> DenoiseOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown denoise option(s): {', '.join(unknown)}")
        return cls(**kwargs)

    def resolve(self) -> Settings:
        """Check every option, load the model, apply its preset; raises before any work."""
        from ..diffusion.samplers import check_sampler_args
        from ..model.registry import load_model
        from .device import resolve_device, resolve_precision

        loaded = load_model(self.model)
        eta = check_number(self.eta, "eta", low=0.0, high=1.0)
        sampler = loaded.sampler if self.sampler is None else self.sampler
        steps = check_sampler_args(sampler, loaded.steps if self.steps is None else self.steps, eta)
        ensemble = loaded.ensemble if self.ensemble is None else self.ensemble
        check_choice(ensemble, "ensemble (flip/rotation copies)", (1, 2, 4, 8))
        wiener, auto = check_wiener(loaded.wiener if self.wiener is None else self.wiener)
        samples = check_int(self.samples, "samples", low=1)
        if samples > 1 and eta == 0:
            raise ValueError(
                "samples > 1 needs a stochastic sampler: use sampler='indi' with eta > 0"
            )
        if auto and (eta > 0 or samples > 1):  # SURE needs a deterministic estimate
            auto, wiener = False, AUTO_FALLBACK
        tile_size = (
            None if self.tile_size is None else check_int(self.tile_size, "tile_size", low=64)
        )
        batch_size = (
            None if self.batch_size is None else check_int(self.batch_size, "batch_size", low=1)
        )
        output_dtype = (
            None if self.output_dtype is None else check_dtype(self.output_dtype, "output_dtype")
        )
        threads = None if self.threads is None else check_int(self.threads, "threads", low=1)
        seed = None if self.seed is None else check_int(self.seed, "seed", low=0)
        device = resolve_device(self.device)
        amp = resolve_precision(
            loaded.precision if self.precision is None else self.precision,
            device,
            preferred=self.precision is None,
        )
        return Settings(
            options=self,
            loaded=loaded,
            sampler=sampler,
            steps=steps,
            eta=eta,
            samples=samples,
            ensemble=int(ensemble),
            wiener=wiener,
            auto_wiener=auto,
            device=device,
            amp=amp,
            seed=seed,
            tile_size=tile_size,
            batch_size=batch_size,
            output_dtype=output_dtype,
            threads=threads,
        )


def check_wiener(wiener: Any) -> tuple[float, bool]:
    """``(weight, auto)`` from a ``wiener`` argument: a weight in [0, 1] or ``"auto"``."""
    if isinstance(wiener, str) and wiener == "auto":
        return 0.0, True
    try:
        return check_number(wiener, "wiener", low=0.0, high=1.0), False
    except ValueError:
        raise ValueError(f"wiener must be a weight in [0, 1] or 'auto', got {wiener!r}") from None


@dataclass
class Settings:
    """Resolved, checked options and the loaded model: what the engine runs with."""

    options: DenoiseOptions
    loaded: Any
    sampler: str
    steps: int
    eta: float
    samples: int
    ensemble: int
    wiener: float
    auto_wiener: bool
    device: Any
    amp: Any
    seed: int | None
    tile_size: int | None
    batch_size: int | None
    output_dtype: np.dtype | None
    threads: int | None
    _memory: int | None = field(default=None, repr=False)

    @property
    def sigma_max(self) -> float:
        return float(self.loaded.sigma_max)

    @property
    def multiple(self) -> int:
        return int(self.loaded.net.config.multiple)

    def memory_budget(self) -> int:
        """Bytes one batch of tiles may use: a share of the free GPU memory
        (``torch.cuda.mem_get_info``) or of the available RAM (capped on CPUs)."""
        if self._memory is None:
            if self.device.type == "cuda":
                import torch

                free, _ = torch.cuda.mem_get_info(self.device)
                self._memory = int(GPU_MEMORY_SHARE * free)
            else:
                import psutil

                available = psutil.virtual_memory().available
                self._memory = int(min(CPU_MEMORY_SHARE * available, CPU_MEMORY_CAP))
        return self._memory

    def choose_tile_size(self, plane_shape: tuple[int, int]) -> int:
        """The tile size: the user's, else the whole plane when one pass of it fits the memory
        budget, else the largest multiple of 64 that does."""
        if self.tile_size is not None:
            return self.tile_size
        budget = self.memory_budget()
        side = int(np.sqrt(budget / BYTES_PER_PIXEL))
        if plane_shape[0] * plane_shape[1] * BYTES_PER_PIXEL <= budget:
            return max(64, int(max(plane_shape)))
        return max(256, side // 64 * 64)

    def choose_batch_size(self, tile_pixels: int) -> int:
        """Tiles per network call: the user's, else as many as the memory budget holds (at
        most 4 on a CPU, where larger batches gain nothing; 64 on a GPU)."""
        if self.batch_size is not None:
            return self.batch_size
        cap = 4 if self.device.type == "cpu" else 64
        fits = self.memory_budget() // max(1, tile_pixels * BYTES_PER_PIXEL)
        return int(max(1, min(cap, fits)))

    def metadata(self, noise: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameters of the run as plain JSON values (recorded with every result), with
        the noise input's description (``Plan.describe_noise``) when given."""
        opts = asdict(self.options)
        model = self.options.model
        opts["model"] = model if isinstance(model, str) else self.loaded.name
        opts["output_dtype"] = None if self.output_dtype is None else str(self.output_dtype)
        opts["device"] = str(self.options.device)
        return {
            "model": opts.pop("model"),
            "model_hash": model_hash(self.loaded.path),
            "parameters": opts,
            "resolved": {
                "sampler": self.sampler,
                "steps": self.steps,
                "ensemble": self.ensemble,
                "wiener": "auto" if self.auto_wiener else self.wiener,
            },
            **({} if noise is None else {"noise": noise}),
        }


def model_hash(path: os.PathLike | str) -> str:
    """SHA-256 of a model's weight file (cached by path, size and modification time)."""
    st = os.stat(path)
    return _hash(os.fspath(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
