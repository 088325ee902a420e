"""nD stacks: which planes to fit on, ROIs, plane access (one plane at a time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Roi", "parse_roi", "pick_planes", "plane_of"]


@dataclass
class Roi:
    """Where to fit: the planes (flat index over the leading axes) and a pixel mask."""

    plane_ids: np.ndarray  # planes (flat leading index) to fit on
    mask2d: np.ndarray | None  # same 2D mask for every plane
    full: np.ndarray | None  # full-shape mask

    def plane_mask(self, arr: np.ndarray, i: int, lead: tuple[int, ...]) -> np.ndarray | None:
        if self.full is not None:
            return np.asarray(self.full[np.unravel_index(i, lead)] if lead else self.full)
        return self.mask2d


def parse_roi(roi: Any, shape: tuple[int, ...]) -> Roi:
    """Validate ``roi`` (None, tuple of slices, 2D or full-shape boolean mask) for ``shape``."""
    lead = shape[:-2]
    n_lead = int(np.prod(lead)) if lead else 1
    all_ids = np.arange(n_lead)
    if roi is None:
        return Roi(all_ids, None, None)
    if isinstance(roi, tuple):
        ok = (
            len(roi) in (2, len(shape))
            and all(isinstance(r, slice) for r in roi[-2:])
            and all(isinstance(r, (slice, int, np.integer)) for r in roi)
        )
        if not ok:
            raise ValueError(
                f"roi as a tuple must hold 2 slices (rows, columns) or one slice/int per axis "
                f"({len(shape)}) with slices for the last two, got {roi!r}"
            )
        mask2d = np.zeros(shape[-2:], dtype=bool)
        mask2d[roi[-2:]] = True
        ids = all_ids
        if len(roi) == len(shape) and lead:
            ids = np.atleast_1d(np.arange(n_lead).reshape(lead)[roi[:-2]]).ravel()
        if not mask2d.any() or ids.size == 0:
            raise ValueError(f"roi {roi!r} selects no pixels of an image of shape {shape}")
        return Roi(ids, mask2d, None)
    mask = np.asarray(roi)
    if mask.dtype != bool:
        raise TypeError(f"roi must be None, a tuple of slices or a boolean mask, got {mask.dtype}")
    if mask.shape == shape[-2:]:
        if not mask.any():
            raise ValueError("roi mask selects no pixels")
        return Roi(all_ids, mask, None)
    if mask.shape == shape:
        flat = mask.reshape((n_lead,) + shape[-2:])
        ids = np.flatnonzero(flat.any(axis=(1, 2)))
        if ids.size == 0:
            raise ValueError("roi mask selects no pixels")
        return Roi(ids, None, mask)
    raise ValueError(
        f"roi mask shape {mask.shape} matches neither the image {shape} nor its last two "
        f"dimensions {shape[-2:]}"
    )


def plane_of(arr: np.ndarray, i: int) -> np.ndarray:
    """The ``i``-th plane (flat index over the leading axes) of an nD array, as a view."""
    lead = arr.shape[:-2]
    return arr[np.unravel_index(i, lead)] if lead else arr


def pick_planes(ids: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` of ``ids``, evenly spread."""
    if ids.size <= k:
        return ids
    return ids[np.unique(np.linspace(0, ids.size - 1, k).round().astype(int))]
