"""A structured noise model fitted to one noisy image: white noise plus row and column stripes.

Cameras add more than independent pixel noise: sCMOS sensors read each row (or column) through
its own amplifier, so every row carries its own offset that changes from frame to frame. The
model fitted here is

    y = x + w + r_row + c_col

with ``w`` the pixel noise that :func:`~napari_diffdenoise.estimate_noise` describes (Gaussian,
Poisson-Gaussian or spatially variant; fitted on the destriped image) and ``r``, ``c`` zero-mean
Gaussian offsets per row and per column with standard deviations ``row_sigma``, ``col_sigma``.

The stripe levels come from the medians along each row of the vertical differences
``y[i + 1, :] − y[i, :]``: the image's own structure mostly cancels in a median over a whole
row, the pixel noise shrinks by the row length, and what is left is ``r[i + 1] − r[i]``, of
variance ``2 · row_sigma²``. Everything here is numpy (no torch): it runs in the library and
in tests without a network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StructuredNoise", "fit_structured_noise", "stripe_offsets", "destripe"]

#: rows of the vertical running median that :func:`stripe_offsets` removes the image with
STRIPE_WINDOW = 7
#: stripes weaker than this share of the pixel noise σ are reported as absent
MIN_STRIPE_SHARE = 0.15


@dataclass
class StructuredNoise:
    """Pixel noise (an :class:`~napari_diffdenoise.NoiseReport` of the destriped image) plus
    Gaussian row and column offsets; all levels in the image's own intensity units."""

    white: Any  # NoiseReport
    row_sigma: float
    col_sigma: float

    @property
    def white_sigma(self) -> float:
        """The pixel noise's global std (the report's ``sigma``)."""
        return float(self.white.sigma)

    def white_std(self, signal: np.ndarray) -> np.ndarray:
        """Per-pixel std of the pixel noise at ``signal`` (image units): the fitted
        Poisson-Gaussian curve for signal-dependent noise, else the report's σ map (or σ)."""
        signal = np.asarray(signal, dtype=np.float64)
        if self.white.kind == "poisson":
            return self.white.noise_std(signal)
        smap = np.asarray(self.white.sigma_map, dtype=np.float64)
        if smap.shape == signal.shape:
            return smap
        return np.full(signal.shape, self.white_sigma)

    def total_sigma(self, signal: np.ndarray) -> np.ndarray:
        """Per-pixel std of all the noise (pixel noise, row and column offsets together)."""
        return np.sqrt(self.white_std(signal) ** 2 + self.row_sigma**2 + self.col_sigma**2)

    def sample(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A fresh noise draw for the clean image ``signal`` (float64, its shape)."""
        h, w = np.shape(signal)
        noise = self.white_std(signal) * rng.standard_normal((h, w))
        if self.row_sigma > 0:
            noise += self.row_sigma * rng.standard_normal((h, 1))
        if self.col_sigma > 0:
            noise += self.col_sigma * rng.standard_normal((1, w))
        return noise

    def describe(self) -> str:
        parts = [f"{self.white.kind} pixel noise (σ {self.white_sigma:.4g})"]
        if self.row_sigma > 0:
            parts.append(f"row stripes σ {self.row_sigma:.4g}")
        if self.col_sigma > 0:
            parts.append(f"column stripes σ {self.col_sigma:.4g}")
        return " + ".join(parts)


def stripe_offsets(image: np.ndarray, axis: int = 0) -> np.ndarray:
    """Estimated offset of every row (``axis=0``) or column (``axis=1``) of ``image``: the median
    along the line of the image minus its running median across lines (a classical destripe)."""
    from scipy.ndimage import median_filter

    arr = np.asarray(image, dtype=np.float64)
    if axis == 1:
        return stripe_offsets(arr.T, 0)
    size = min(STRIPE_WINDOW, arr.shape[0] - (arr.shape[0] + 1) % 2)
    if size < 3:
        return np.zeros(arr.shape[0])
    smooth = median_filter(arr, size=(size, 1), mode="reflect")
    offsets = np.median(arr - smooth, axis=1)
    return offsets - np.median(offsets)


def destripe(image: np.ndarray, rows: bool = True, columns: bool = True) -> np.ndarray:
    """``image`` (float64 copy) minus its estimated row and/or column offsets."""
    out = np.array(image, dtype=np.float64)
    if rows:
        out -= stripe_offsets(out, 0)[:, None]
    if columns:
        out -= stripe_offsets(out, 1)[None, :]
    return out


def _stripe_sigma(image: np.ndarray, white_var: float) -> float:
    """Std of the per-row offsets of ``image`` from the row medians of its vertical differences
    (robust spread over rows, the pixel noise's share removed)."""
    d = np.median(np.diff(image, axis=0), axis=1)
    if d.size < 8:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    var = (1.4826 * mad) ** 2 / 2.0
    # the median of W differences of variance 2·s² has variance ≈ (π/2)·2·s²/W
    var -= (np.pi / 2.0) * white_var / image.shape[1]
    return float(np.sqrt(max(var, 0.0)))


def fit_structured_noise(image: Any) -> StructuredNoise:
    """Fit :class:`StructuredNoise` to one noisy 2D image (image units; never modified).

    Raises ``ValueError`` for anything but a finite 2D image of at least 16 × 16 pixels.
    """
    from ..noise.estimate import estimate_noise

    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"fit_structured_noise needs a 2D image, got shape {arr.shape}")
    if min(arr.shape) < 16:
        raise ValueError(f"image {arr.shape} is too small to fit a noise model (16 × 16 at least)")
    if not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values")
    clean_lines = destripe(arr)
    white = estimate_noise(clean_lines.astype(np.float32))
    white_var = float(np.mean(np.asarray(white.sigma_map, dtype=np.float64) ** 2))
    row = _stripe_sigma(arr, white_var)
    col = _stripe_sigma(arr.T, white_var)
    floor = MIN_STRIPE_SHARE * np.sqrt(white_var)
    return StructuredNoise(
        white=white,
        row_sigma=row if row > floor else 0.0,
        col_sigma=col if col > floor else 0.0,
    )
