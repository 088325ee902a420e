"""Spatially variant noise: a smooth per-pixel σ map from local weak-texture estimates.

The plane is cut into a grid of cells. Each cell's noise variance is the mean per-patch noise
energy (projection on the noise subspace, see :mod:`.patches`) over its weak-texture patches,
with a threshold set by the cell's own level. Empty or unreliable cells are filled by
normalised convolution, the grid is smoothed and interpolated bilinearly to full resolution.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .bands import Bands, band_energies, group_noise_variance
from .patches import PatchSample, sample_patches, texture_threshold

__all__ = [
    "cell_grid_shape",
    "cell_index",
    "interpolate_grid",
    "local_sigma_map",
    "local_variance_grid",
    "smooth_grid",
]

#: Cells along the longer image axis (cells are at least ``MIN_CELL`` pixels).
GRID_CELLS = 24
MIN_CELL = 16


def cell_grid_shape(
    shape: tuple[int, int], cells: int = GRID_CELLS, min_cell: int = MIN_CELL
) -> tuple[int, int]:
    """Grid shape ``(ny, nx)`` with roughly square cells."""
    h, w = shape
    size = max(float(min_cell), max(h, w) / float(cells))
    return max(1, int(round(h / size))), max(1, int(round(w / size)))


def cell_index(sample: PatchSample, shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Flat cell index of every patch centre."""
    h, w = shape
    ny, nx = grid
    iy = np.clip((sample.cy * ny / h).astype(np.int64), 0, ny - 1)
    ix = np.clip((sample.cx * nx / w).astype(np.int64), 0, nx - 1)
    return iy * nx + ix


def local_variance_grid(
    sample: PatchSample,
    energy: np.ndarray,
    weak: np.ndarray,
    shape: tuple[int, int],
    grid: tuple[int, int],
    bands: Bands,
    *,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise variance and its degrees of freedom per cell, ``grid``-shaped (NaN: no data).

    The weak-texture selection is refined with a gradient-energy threshold that follows the
    current (smoothed) local noise level.
    """
    ny, nx = grid
    idx = cell_index(sample, shape, grid)
    thr_unit = texture_threshold(sample.patch)
    keep = weak
    var = dof = np.full(ny * nx, np.nan)
    for it in range(iterations):
        var, dof, _ = group_noise_variance(energy, keep, idx, ny * nx, bands)
        if it == iterations - 1 or not np.isfinite(var).any():
            break
        level = smooth_grid(var.reshape(grid), np.nan_to_num(dof).reshape(grid)).ravel()
        new_keep = weak & (sample.texture < thr_unit * level[idx])
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return var.reshape(grid), np.nan_to_num(dof).reshape(grid)


def smooth_grid(values: np.ndarray, weights: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Normalised-convolution smoothing that also fills NaN cells from their neighbours."""
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return np.zeros_like(values, dtype=np.float64)
    w = np.where(ok, weights, 0.0).astype(np.float64)
    v = np.where(ok, values, 0.0).astype(np.float64)
    num = ndimage.gaussian_filter(v * w, sigma, mode="nearest")
    den = ndimage.gaussian_filter(w, sigma, mode="nearest")
    out = np.empty_like(num)
    good = den > 1e-12 * den.max()
    out[good] = num[good] / den[good]
    if not good.all():  # far from any data: nearest filled value
        _, (iy, ix) = ndimage.distance_transform_edt(~good, return_indices=True)
        out = out[iy, ix]
    return out


def _axis_weights(n_cells: int, n_pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = (np.arange(n_pixels) + 0.5) * n_cells / n_pixels - 0.5
    centres = np.clip(centres, 0.0, n_cells - 1.0)
    i0 = np.floor(centres).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_cells - 1)
    return i0, i1, centres - i0


def interpolate_grid(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of cell-centre values to a full ``shape`` plane (float32)."""
    g = np.asarray(grid, dtype=np.float32)
    y0, y1, fy = _axis_weights(g.shape[0], shape[0])
    x0, x1, fx = _axis_weights(g.shape[1], shape[1])
    fx32 = fx.astype(np.float32)
    rows = g[:, x0] * (1 - fx32) + g[:, x1] * fx32  # (ny, W)
    fy32 = fy.astype(np.float32)[:, None]
    return rows[y0] * (1 - fy32) + rows[y1] * fy32


def local_sigma_map(
    plane: np.ndarray,
    *,
    patch: int,
    bands: Bands,
    exclude: np.ndarray | None = None,
    max_patches: int = 40_000,
) -> np.ndarray:
    """Per-pixel noise std of one plane from local weak-texture estimates (float32).

    Parameters
    ----------
    plane
        2D float array.
    patch, bands
        Patch size and its DCT bands (:func:`.bands.bands_for`).
    exclude
        Pixels no patch may touch (impulses).
    max_patches
        Patch budget; the sampling stride grows with the plane.
    """
    hw = plane.shape
    sample = sample_patches(plane, patch=patch, max_patches=max_patches, exclude=exclude)
    if len(sample) == 0:
        return np.zeros(hw, dtype=np.float32)
    energy, structure = band_energies(sample, bands)
    weak = structure < bands.ratio_threshold * energy
    var, dof = local_variance_grid(sample, energy, weak, hw, cell_grid_shape(hw), bands)
    smoothed = smooth_grid(var, dof, sigma=1.0)
    return np.sqrt(np.maximum(interpolate_grid(smoothed, hw), 0.0))
