"""Per-pixel diffusion time maps: derivation from a σ map and quantisation to paintable levels.

A time map ``τ`` holds, per pixel, the diffusion time in ``[0, 1]`` at which the pixel sits:
``τ · σ_max`` is its noise standard deviation. ``τ = 0`` means "leave this pixel alone".
For painting in napari (a Labels layer) the map is quantised to integer levels
``0..levels``; level 0 keeps its meaning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int, check_number

__all__ = [
    "DEFAULT_TIME_LEVELS",
    "levels_to_time_map",
    "time_map_from_sigma",
    "time_map_to_levels",
]

#: Number of non-zero levels of a quantised time map (level 0 = leave alone, 255 = τ of 1).
DEFAULT_TIME_LEVELS: int = 255


def _check_levels(levels: Any) -> int:
    return check_int(levels, "levels", low=1, high=int(np.iinfo(np.uint16).max), error=TypeError)


def _real_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "uif":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def time_map_from_sigma(sigma_map: Any, sigma_max: float) -> np.ndarray:
    """Convert a noise-level map (image units) to a time map ``clip(σ / σ_max, 0, 1)``.

    Parameters
    ----------
    sigma_map
        Per-pixel noise standard deviation (any shape, >= 0, finite) or a scalar.
    sigma_max
        The noise level that τ = 1 stands for, in the same units (> 0, finite).

    Returns
    -------
    numpy.ndarray
        float32 array of the shape of ``sigma_map``, values in ``[0, 1]``.
    """
    sig = _real_array(sigma_map, "sigma_map")
    smax = check_number(sigma_max, "sigma_max", low=0.0, strict_low=True, error=TypeError)
    if sig.dtype.kind == "f" and not np.isfinite(sig).all():
        raise ValueError("sigma_map contains NaN or infinite values")
    if sig.size and sig.min() < 0:
        raise ValueError("sigma_map must be >= 0 everywhere (it is a standard deviation)")
    tau = np.clip(sig.astype(np.float32) / np.float32(smax), 0.0, 1.0)
    return np.asarray(tau, dtype=np.float32)


def time_map_to_levels(time_map: Any, levels: int = DEFAULT_TIME_LEVELS) -> np.ndarray:
    """Quantise a time map in ``[0, 1]`` to integer levels ``round(τ · levels)``.

    Returns uint8 for ``levels <= 255``, uint16 otherwise. Level 0 means "leave alone", so a
    small but non-zero τ may round to 0: that is the quantisation the painter sees.
    """
    levels = _check_levels(levels)
    tau = _real_array(time_map, "time_map")
    if tau.dtype.kind == "f" and not np.isfinite(tau).all():
        raise ValueError("time_map contains NaN or infinite values")
    if tau.size and (tau.min() < 0 or tau.max() > 1):
        raise ValueError(f"time_map values must lie in [0, 1], got [{tau.min()}, {tau.max()}]")
    dtype = np.uint8 if levels <= 255 else np.uint16
    return np.asarray(np.rint(tau.astype(np.float64) * levels), dtype=dtype)


def levels_to_time_map(level_array: Any, levels: int = DEFAULT_TIME_LEVELS) -> np.ndarray:
    """Inverse of :func:`time_map_to_levels`: ``level / levels`` as float32.

    ``level_array`` must be an integer array (e.g. napari Labels data) with values in
    ``0..levels``.
    """
    levels = _check_levels(levels)
    arr = np.asarray(level_array)
    if arr.dtype.kind not in "ui":
        raise TypeError(
            f"level_array must be an integer array (e.g. Labels data), got dtype {arr.dtype}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > levels):
        raise ValueError(
            f"levels must lie in 0..{levels}, got values in [{arr.min()}, {arr.max()}]"
        )
    return np.asarray(arr.astype(np.float32) / np.float32(levels), dtype=np.float32)
