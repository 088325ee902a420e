"""Overlapping tiles with smooth blending weights, so images of any size fit in memory and the
seams do not show (the UNet has no normalisation layer, so overlapping tiles agree)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["tile_slices", "blend_weight"]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def tile_slices(shape: tuple[int, int], tile: int, overlap: int) -> Iterator[tuple[slice, slice]]:
    """Cover a 2D ``shape`` with tiles of at most ``tile`` pixels overlapping by ``overlap``."""
    if tile <= 2 * overlap:
        raise ValueError(f"tile size {tile} must exceed twice the overlap {overlap}")
    for r in _starts(shape[0], tile, overlap):
        for c in _starts(shape[1], tile, overlap):
            yield slice(r, min(r + tile, shape[0])), slice(c, min(c + tile, shape[1]))


def blend_weight(h: int, w: int, overlap: int) -> np.ndarray:
    """A separable weight that ramps from ~0 to 1 over ``overlap`` pixels at every edge."""

    def ramp(n: int) -> np.ndarray:
        r = np.ones(n, dtype=np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (np.arange(k, dtype=np.float32) + 0.5) / k
            r[:k] = edge
            r[n - k :] = edge[::-1]
        return r

    return np.outer(ramp(h), ramp(w))
