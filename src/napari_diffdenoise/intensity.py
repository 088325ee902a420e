"""Robust intensity normalisation shared by the noise engine, the denoiser and training.

The denoiser works on images mapped to roughly [0, 1] by robust percentiles. Noise levels shown
to users and painted by users are in the image's own units; ``scale`` converts between the two:
``sigma_normalised = sigma_image / scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SIGMA_MAX",
    "IntensityRange",
    "robust_range",
]

#: Noise level that diffusion time t = 1 stands for, in normalised units (the image's robust
#: range mapped to [0, 1]). The bundled models are trained with this value and store it.
SIGMA_MAX: float = 0.5

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.8
_SAMPLE_PIXELS = 1 << 20


@dataclass(frozen=True)
class IntensityRange:
    """An affine map between image units and normalised units: ``(x - low) / scale``."""

    low: float
    high: float

    @property
    def scale(self) -> float:
        return float(self.high - self.low)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) - np.float32(self.low)) / np.float32(self.scale)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) * np.float32(self.scale) + np.float32(self.low)


def _smooth_sample(image: np.ndarray) -> np.ndarray:
    """A lightly smoothed sample of the last two axes (noise would inflate the percentiles)."""
    from scipy import ndimage

    arr = np.asarray(image)
    if arr.ndim > 2:
        lead = int(np.prod(arr.shape[:-2]))
        flat = arr.reshape((lead,) + arr.shape[-2:])
        idx = np.unique(np.linspace(0, lead - 1, num=min(lead, 8)).round().astype(int))
        planes = [flat[i] for i in idx]
    else:
        planes = [arr]
    out = []
    budget = max(_SAMPLE_PIXELS // len(planes), 4096)
    for plane in planes:
        plane = np.asarray(plane, dtype=np.float32)
        step = max(1, int(np.sqrt(plane.size / budget)))
        if step > 1:
            plane = plane[::step, ::step]
        out.append(ndimage.gaussian_filter(plane, 1.0, mode="reflect").ravel())
    return np.concatenate(out)


def robust_range(image: np.ndarray) -> IntensityRange:
    """Robust intensity range (0.5 / 99.8 percentiles of a lightly smoothed sample).

    Works on nD stacks by sampling at most 8 planes, so it never reads a whole large stack.
    A constant image gets a unit scale so that normalisation never divides by zero.
    """
    sample = _smooth_sample(image)
    low, high = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    low, high = float(low), float(high)
    if not high - low > 1e-12 * max(1.0, abs(low), abs(high)):
        # (near-)constant image: fall back to the full range, then to a unit scale
        lo_all, hi_all = float(sample.min()), float(sample.max())
        if hi_all - lo_all > 1e-12 * max(1.0, abs(lo_all)):
            low, high = lo_all, hi_all
        else:
            low, high = lo_all, lo_all + 1.0
    return IntensityRange(low, high)
