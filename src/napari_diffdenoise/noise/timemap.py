"""Per-pixel diffusion time maps: derivation from a σ map, quantisation to paintable levels,
and the tools of the time-map editor (new map, smooth, scale, reset, TIFF files).

A time map ``τ`` holds, per pixel, the diffusion time in ``[0, 1]`` at which the pixel sits:
``τ · σ_max`` is its noise standard deviation. ``τ = 0`` means "leave this pixel alone".
For painting in napari (a Labels layer) the map is quantised to integer levels
``0..levels``; level 0 keeps its meaning. A painted map is described by its metadata
(:func:`time_map_metadata`: ``levels``, ``sigma_max`` and the image's intensity ``units``),
stored under ``layer.metadata["napari_diffdenoise"]["time_map"]`` on a napari Labels layer and
in the ImageDescription of a TIFF (:func:`save_time_map`, :func:`load_time_map`).

Everything here works on plain arrays (no napari, no Qt): a script does what the *Time map*
widget does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import METADATA_KEY, TIME_MAP_KEY, check_int, check_number

__all__ = [
    "DEFAULT_TIME_LEVELS",
    "NotATimeMapFile",
    "TimeMapFile",
    "intensity_units",
    "level_to_sigma",
    "levels_to_time_map",
    "load_time_map",
    "new_time_map",
    "reset_time_map",
    "save_time_map",
    "scale_time_map",
    "sigma_to_level",
    "smooth_time_map",
    "time_map_from_sigma",
    "time_map_metadata",
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
    return np.asarray(np.rint(tau.astype(np.float64) * levels), dtype=_level_dtype(levels))


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


# ------------------------------------------------------------------ description (metadata)
def time_map_metadata(
    levels: int,
    sigma_max: float,
    *,
    units: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The metadata that makes a napari Labels layer a time map.

    Returns ``{"napari_diffdenoise": {"time_map": {"levels": ..., "sigma_max": ..., "units":
    ..., "source": ...}}}``: pass it as ``metadata=`` to ``viewer.add_labels`` (or merge it into a
    layer's ``metadata``). :func:`~napari_diffdenoise.denoise` reads ``levels`` and
    ``sigma_max`` from it and refuses Labels layers without it.

    Parameters
    ----------
    levels
        Label L stands for τ = L / levels (1..65535).
    sigma_max
        Noise std (image intensity units) that τ = 1 stands for (> 0).
    units
        The image's intensity unit, for display ("counts", "grey levels", ...).
    source
        Name of the image the map belongs to.
    """
    info: dict[str, Any] = {
        "levels": _check_levels(levels),
        "sigma_max": check_number(
            sigma_max, "sigma_max", low=0.0, strict_low=True, error=TypeError
        ),
    }
    if units is not None:
        info["units"] = str(units)
    if source is not None:
        info["source"] = str(source)
    return {METADATA_KEY: {TIME_MAP_KEY: info}}


def intensity_units(dtype: Any, metadata: dict[str, Any] | None = None) -> str:
    """The name of an image's intensity unit, for σ shown to users.

    ``metadata["intensity_units"]`` when the image carries one, else ``"counts"`` for integer
    images (camera counts, grey levels) and ``"intensity units"`` for float images.
    """
    unit = (metadata or {}).get("intensity_units")
    if isinstance(unit, str) and unit.strip():
        return unit.strip()
    return "counts" if np.dtype(dtype).kind in "ui" else "intensity units"


def sigma_to_level(sigma: float, sigma_max: float, levels: int = DEFAULT_TIME_LEVELS) -> int:
    """The label that stands for noise std ``sigma`` (image units): ``round(σ / σ_max · levels)``
    clipped to ``0..levels``. A σ > 0 never rounds to 0 ("leave alone")."""
    levels = _check_levels(levels)
    sigma = check_number(sigma, "sigma", low=0.0, error=TypeError)
    smax = check_number(sigma_max, "sigma_max", low=0.0, strict_low=True, error=TypeError)
    level = int(np.clip(np.rint(sigma / smax * levels), 0, levels))
    return max(level, 1) if sigma > 0 else level


def level_to_sigma(level: int, sigma_max: float, levels: int = DEFAULT_TIME_LEVELS) -> float:
    """The noise std (image units) that label ``level`` stands for: ``level / levels · σ_max``."""
    levels = _check_levels(levels)
    level = check_int(level, "level", low=0, high=levels, error=TypeError)
    smax = check_number(sigma_max, "sigma_max", low=0.0, strict_low=True, error=TypeError)
    return float(level) / levels * smax


# ------------------------------------------------------------------ editing tools
def _level_dtype(levels: int) -> np.dtype:
    return np.dtype(np.uint8 if levels <= 255 else np.uint16)


def _check_level_array(level_array: Any, levels: int) -> np.ndarray:
    levels_to_time_map(level_array, levels)  # dtype and range checks, with their messages
    arr = np.asarray(level_array)
    if arr.ndim < 2:
        raise ValueError(f"a time map has at least 2 dimensions, got shape {arr.shape}")
    return arr


def new_time_map(
    shape: tuple[int, ...],
    *,
    sigma: Any = None,
    sigma_max: float,
    levels: int = DEFAULT_TIME_LEVELS,
) -> np.ndarray:
    """A new integer time map of ``shape``: blank, from a constant σ, or from a σ map.

    Parameters
    ----------
    shape
        Shape of the map: an image's shape (a full nD map) or its last two axes (one 2D map the
        denoiser applies to every plane).
    sigma
        ``None``: a blank map (level 0 everywhere, "leave alone" until painted); a number: that
        constant noise std; an array (e.g. ``NoiseReport.start_sigma_map``, or a plane of it):
        a per-pixel σ map, broadcast to ``shape``. Image intensity units.
    sigma_max
        Noise std that τ = 1 stands for (image units, > 0).
    levels
        Label L stands for τ = L / levels; uint8 labels up to 255 levels, uint16 above.

    Returns
    -------
    numpy.ndarray
        uint8 or uint16 levels of ``shape`` (a new array, writable).
    """
    levels = _check_levels(levels)
    shape = tuple(check_int(n, "shape", low=1) for n in shape)
    if len(shape) < 2:
        raise ValueError(f"a time map has at least 2 dimensions, got shape {shape}")
    if sigma is None:
        return np.zeros(shape, dtype=_level_dtype(levels))
    sig = np.asarray(sigma)
    if sig.ndim and sig.shape != shape:
        try:
            sig = np.broadcast_to(sig, shape)
        except ValueError:
            raise ValueError(
                f"the σ map of shape {sig.shape} does not fit a time map of shape {shape}"
            ) from None
    tau = time_map_from_sigma(sig, sigma_max)
    return np.array(np.broadcast_to(time_map_to_levels(tau, levels), shape))


def smooth_time_map(
    level_array: Any,
    sigma_px: float,
    *,
    levels: int = DEFAULT_TIME_LEVELS,
    keep_zero: bool = True,
) -> np.ndarray:
    """Smooth a time map with a Gaussian of ``sigma_px`` pixels, plane by plane (last two axes).

    With ``keep_zero`` (default), level-0 pixels ("leave alone") stay 0 and do not pull their
    neighbours down: the average runs over the non-zero pixels only (normalised convolution).
    Without it, everything is smoothed and painted edges fade into the "leave alone" area.
    Never modifies ``level_array``; returns a new array of its dtype.
    """
    from scipy import ndimage

    levels = _check_levels(levels)
    arr = _check_level_array(level_array, levels)
    sigma_px = check_number(sigma_px, "sigma_px", low=0.0, error=TypeError)
    if sigma_px == 0:
        return arr.copy()
    per_axis = (0.0,) * (arr.ndim - 2) + (sigma_px, sigma_px)
    values = arr.astype(np.float64)
    if keep_zero:
        inside = (arr > 0).astype(np.float64)
        num = ndimage.gaussian_filter(values, per_axis, mode="nearest")
        den = ndimage.gaussian_filter(inside, per_axis, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(inside > 0, num / np.maximum(den, 1e-12), 0.0)
        out = np.where(inside > 0, np.maximum(out, 1.0), 0.0)  # painted stays painted
    else:
        out = ndimage.gaussian_filter(values, per_axis, mode="nearest")
    return np.clip(np.rint(out), 0, levels).astype(arr.dtype)


def scale_time_map(
    level_array: Any, factor: float, *, levels: int = DEFAULT_TIME_LEVELS
) -> np.ndarray:
    """Multiply a time map's noise levels by ``factor`` (``round``, clipped to ``0..levels``).

    Level 0 stays 0 and, for ``factor > 0``, a non-zero level stays at least 1 (scaling never
    turns "denoise lightly" into "leave alone"). Never modifies ``level_array``.
    """
    levels = _check_levels(levels)
    arr = _check_level_array(level_array, levels)
    factor = check_number(factor, "factor", low=0.0, error=TypeError)
    out = np.clip(np.rint(arr.astype(np.float64) * factor), 0, levels)
    if factor > 0:
        out = np.where(arr > 0, np.maximum(out, 1), 0)
    return out.astype(arr.dtype)


def reset_time_map(level_array: Any, estimate: Any, mask: Any = None) -> np.ndarray:
    """Put ``estimate``'s levels back into ``level_array`` inside ``mask`` (everywhere if None).

    Parameters
    ----------
    level_array
        The (painted) integer map.
    estimate
        Integer levels to restore, e.g. :func:`new_time_map` of the noise estimate; of the
        map's shape or of its last two axes (then used for every plane).
    mask
        Boolean region: the map's shape or its last two axes (the region in every plane).

    Returns
    -------
    numpy.ndarray
        A new array of ``level_array``'s dtype; the inputs are not modified.
    """
    arr = np.asarray(level_array)
    if arr.dtype.kind not in "ui" or arr.ndim < 2:
        raise TypeError(f"level_array must be an integer map (Labels data), got {arr.dtype}")
    est = np.asarray(estimate)
    if est.dtype.kind not in "ui":
        raise TypeError(f"estimate must hold integer levels, got {est.dtype}")
    if est.shape not in (arr.shape, arr.shape[-2:]):
        raise ValueError(
            f"estimate of shape {est.shape} fits neither the map {arr.shape} nor its planes"
        )
    if est.size and int(est.max()) > np.iinfo(arr.dtype).max:
        raise ValueError(f"estimate levels up to {est.max()} do not fit the map's {arr.dtype}")
    est = np.broadcast_to(est, arr.shape)
    out = arr.copy()
    if mask is None:
        out[...] = est
        return out
    m = np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"mask must be boolean, got {m.dtype}")
    if m.shape not in (arr.shape, arr.shape[-2:]):
        raise ValueError(f"mask of shape {m.shape} fits neither the map {arr.shape} nor its planes")
    m = np.broadcast_to(m, arr.shape)
    out[m] = est[m]
    return out


# ------------------------------------------------------------------ TIFF files
#: The ``kind`` in a time-map TIFF's ImageDescription (JSON, tifffile's shaped format), beside
#: ``time_levels``, ``sigma_max`` and ``intensity_units``.
TIFF_KIND = "napari_diffdenoise time map"


class NotATimeMapFile(ValueError):
    """A TIFF without the time-map metadata of :func:`save_time_map` (a plain image)."""


@dataclass(frozen=True)
class TimeMapFile:
    """A time map read by :func:`load_time_map`: integer levels and their meaning."""

    data: np.ndarray
    levels: int
    sigma_max: float
    units: str | None = None

    def metadata(self, source: str | None = None) -> dict[str, Any]:
        """:func:`time_map_metadata` of this map (for ``viewer.add_labels(metadata=...)``)."""
        return time_map_metadata(self.levels, self.sigma_max, units=self.units, source=source)


def save_time_map(
    path: str | os.PathLike,
    level_array: Any,
    *,
    levels: int,
    sigma_max: float,
    units: str | None = None,
) -> None:
    """Write an integer time map to a TIFF, with ``kind`` (:data:`TIFF_KIND`),
    ``time_levels``, ``sigma_max`` and ``intensity_units`` (``units``: the image's intensity
    unit) in its ImageDescription (JSON). Written atomically (a temporary file renamed): an
    existing file is replaced whole or not at all."""
    import tifffile

    from .._atomic import atomic_write

    levels = _check_levels(levels)
    arr = _check_level_array(level_array, levels)
    info = time_map_metadata(levels, sigma_max, units=units)[METADATA_KEY][TIME_MAP_KEY]
    meta = {
        "kind": TIFF_KIND,
        "time_levels": info["levels"],
        "sigma_max": info["sigma_max"],
        "intensity_units": info.get("units"),
    }
    data = np.ascontiguousarray(arr.astype(_level_dtype(levels), copy=False))
    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, metadata=meta))


def load_time_map(
    path: str | os.PathLike, *, image_shape: tuple[int, ...] | None = None
) -> TimeMapFile:
    """Read a time map written by :func:`save_time_map`.

    Parameters
    ----------
    path
        The TIFF file.
    image_shape
        The image the map is for: the map must have this shape or that of its last two axes
        (a 2D map for every plane); a map of another shape is refused with both shapes named.

    Raises
    ------
    NotATimeMapFile
        (a ``ValueError``) A TIFF without the time-map metadata; its pixels are not read.
    ValueError
        Broken metadata, levels out of range, or the wrong shape.
    TypeError
        Pixels that are not integer levels.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        described = tif.shaped_metadata
        meta = described[0] if described else None
        ours = (
            isinstance(meta, dict)
            and "time_levels" in meta
            and "sigma_max" in meta
            and meta.get("kind", TIFF_KIND) == TIFF_KIND
        )
        data = tif.asarray() if ours else None
    if not ours:
        raise NotATimeMapFile(
            f"{os.fspath(path)!r} is not a time map saved by napari-diffdenoise: its TIFF "
            "metadata has no time_levels / sigma_max (save one with the Time map widget's "
            "Save… or napari_diffdenoise.noise.timemap.save_time_map)"
        )
    try:
        levels = _check_levels(meta["time_levels"])
        smax = check_number(meta["sigma_max"], "sigma_max", low=0.0, strict_low=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)!r} has broken time-map metadata: {exc}") from None
    if image_shape is not None:
        image_shape = tuple(int(n) for n in image_shape)
        if data.shape not in (image_shape, image_shape[-2:]):
            raise ValueError(
                f"the time map in {os.fspath(path)!r} has shape {data.shape}, the image "
                f"{image_shape}: a time map must have the image's shape or that of one plane "
                f"{image_shape[-2:]}"
            )
    _check_level_array(data, levels)
    units = meta.get("intensity_units")
    return TimeMapFile(data, levels, smax, units if isinstance(units, str) else None)
