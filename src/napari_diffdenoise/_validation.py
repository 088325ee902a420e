"""Input checks shared by every public function.

Every public entry point calls :func:`as_image` first so that bad input fails early with a
clear message instead of a traceback from deep inside numpy, scipy or torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_image", "layer_data"]


def layer_data(obj: Any) -> Any:
    """Return ``obj.data`` for a napari layer (duck-typed), ``obj`` otherwise."""
    if hasattr(obj, "data") and hasattr(obj, "_type_string"):
        data = obj.data
        if getattr(obj, "multiscale", False):
            data = data[0]
        return data
    return obj


def as_image(
    image: Any,
    *,
    name: str = "image",
    min_ndim: int = 2,
    allow_nonfinite: bool = False,
    min_size: int = 2,
) -> np.ndarray:
    """Validate an image-like input and return it as a numpy array (never a copy we write to).

    Accepts numpy arrays, array-likes (dask/zarr are materialised: only pass those where a full
    read is intended) and napari layers. Raises ``TypeError`` for non-numeric, complex, boolean
    or object data and ``ValueError`` for empty, too small, too few dimensions or non-finite
    values. The caller must not write into the returned array: it may be the user's array.
    """
    data = layer_data(image)
    if data is None:
        raise TypeError(f"{name} is None; expected a 2D (or nD) numeric array")
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(data).__name__}")
    arr = np.asarray(data)
    if arr.dtype == object:
        raise TypeError(f"{name} has dtype object; expected a real numeric array")
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{name} is complex ({arr.dtype}); pass a real image, e.g. np.abs(image)"
        )
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} is boolean; expected intensities (integer or float)")
    if arr.dtype.kind not in "uif":
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}; expected integer or float")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions (rows, columns), got shape {arr.shape}"
        )
    if min(arr.shape[-2:]) < min_size:
        raise ValueError(
            f"{name} is too small: its last two dimensions must be at least {min_size} pixels, "
            f"got shape {arr.shape}"
        )
    if not allow_nonfinite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); replace them first "
            "(e.g. np.nan_to_num) so they are not mistaken for noise"
        )
    return arr
