"""Tiles of a plane: where each one is read (with context), kept and blended.

A plane larger than the tile size is cut into overlapping tiles. Each tile is run with up to
``context`` pixels of real image around it (so the network sees the neighbourhood it would see
in a whole-plane run), then only the tile itself is kept and blended with its neighbours by a
smooth weight that ramps over the overlap. The weights of every pixel sum to one after
normalisation (:func:`accumulate` / :func:`finish`), so the result does not depend on the tile
size beyond float rounding (the UNet has no normalisation layer, so tiles agree).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TILE_CONTEXT",
    "TILE_OVERLAP",
    "Tile",
    "blend_weight",
    "plan_tiles",
    "tile_slices",
]

#: overlap of neighbouring tiles, blended smoothly (pixels)
TILE_OVERLAP = 32
#: real image read around a tile and dropped after the network (pixels)
TILE_CONTEXT = 48


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
    """A separable float32 weight that ramps from ~0 to 1 over ``overlap`` pixels at every edge."""

    def ramp(n: int) -> np.ndarray:
        r = np.ones(n, dtype=np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (np.arange(k, dtype=np.float32) + 0.5) / k
            r[:k] = edge
            r[n - k :] = edge[::-1]
        return r

    return np.outer(ramp(h), ramp(w))


@dataclass(frozen=True)
class Tile:
    """One tile of a plane: ``read`` is the region run through the network (the tile and its
    context), ``keep`` the tile itself in plane coordinates, ``inner`` the tile inside ``read``."""

    read: tuple[slice, slice]
    keep: tuple[slice, slice]
    inner: tuple[slice, slice]
    weight: np.ndarray

    @property
    def read_shape(self) -> tuple[int, int]:
        return (self.read[0].stop - self.read[0].start, self.read[1].stop - self.read[1].start)


def plan_tiles(
    shape: tuple[int, int],
    tile_size: int,
    *,
    overlap: int = TILE_OVERLAP,
    context: int = TILE_CONTEXT,
) -> list[Tile]:
    """The tiles of a plane of ``shape``: one (the whole plane, no context) when it fits in
    ``tile_size``, else overlapping tiles with ``context`` pixels read around each."""
    h, w = int(shape[0]), int(shape[1])
    overlap = min(overlap, tile_size // 4)
    if max(h, w) <= tile_size:
        whole = (slice(0, h), slice(0, w))
        return [Tile(whole, whole, whole, np.ones((h, w), dtype=np.float32))]
    tiles = []
    for rs, cs in tile_slices((h, w), tile_size, overlap):
        r0, r1 = max(rs.start - context, 0), min(rs.stop + context, h)
        c0, c1 = max(cs.start - context, 0), min(cs.stop + context, w)
        inner = (
            slice(rs.start - r0, rs.stop - r0),
            slice(cs.start - c0, cs.stop - c0),
        )
        weight = blend_weight(rs.stop - rs.start, cs.stop - cs.start, overlap)
        tiles.append(Tile((slice(r0, r1), slice(c0, c1)), (rs, cs), inner, weight))
    return tiles
