"""Argument checks shared by every public function: the one place where they are written.

Bad input fails early with a clear message that names the argument, instead of a traceback
from deep inside numpy, scipy or torch. Images go through :func:`as_image` (and
:func:`check_not_rgb`); scalar arguments through :func:`check_int`, :func:`check_number`,
:func:`check_bool` and :func:`check_choice`; dtypes through :func:`check_dtype`. napari layers
are recognised by their type (:func:`is_layer`), without importing napari.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "as_image",
    "check_bool",
    "check_choice",
    "check_dtype",
    "check_image_layout",
    "check_int",
    "check_not_rgb",
    "check_number",
    "check_plane_size",
    "is_layer",
    "is_labels_layer",
    "is_time_map_layer",
    "layer_data",
    "looks_rgb",
    "time_map_info",
    "MIN_IMAGE_SIZE",
    "METADATA_KEY",
    "TIME_MAP_KEY",
]

#: The one size rule: every plane (the last two dimensions) is at least this many pixels on each
#: side, for the noise estimate, the denoiser and the noise simulator alike (the estimate's
#: patches and the blind denoiser need it).
MIN_IMAGE_SIZE = 8

#: A time-map Labels layer is recognised by ``layer.metadata[METADATA_KEY][TIME_MAP_KEY]``, a dict
#: with ``levels`` (int, label L means τ = L / levels), ``sigma_max`` (noise std, image units,
#: that τ = 1 stands for) and optionally ``units`` (the image's intensity unit, text) and
#: ``source`` (the image layer's name). See :func:`time_map_info`.
METADATA_KEY = "napari_diffdenoise"
TIME_MAP_KEY = "time_map"


def is_layer(obj: Any) -> bool:
    """True for a napari layer. napari is not imported: a layer exists only where it was."""
    layers = sys.modules.get("napari.layers")
    return layers is not None and isinstance(obj, layers.Layer)


def is_labels_layer(obj: Any) -> bool:
    """True for a napari Labels layer (napari is not imported)."""
    layers = sys.modules.get("napari.layers")
    return layers is not None and isinstance(obj, layers.Labels)


def time_map_info(obj: Any) -> dict[str, Any]:
    """The time-map description of a napari Labels layer (``metadata[METADATA_KEY][TIME_MAP_KEY]``)
    with ``levels`` as ``int`` and ``sigma_max`` as ``float``; ``ValueError`` saying how to make
    one when ``obj`` is not a time-map layer (a segmentation, a plain Labels layer)."""
    name = repr(getattr(obj, "name", "layer"))
    how = (
        "make one with Plugins > napari-diffdenoise > Time map (New time map) or the Noise "
        "inspector's Create time map, or in code with "
        "metadata=napari_diffdenoise.time_map_metadata(levels, sigma_max)"
    )
    if not is_labels_layer(obj):
        raise ValueError(f"{name} is not a napari Labels layer; a time map is one ({how})")
    entry = (obj.metadata or {}).get(METADATA_KEY, {})
    info = entry.get(TIME_MAP_KEY) if isinstance(entry, dict) else None
    if not isinstance(info, dict):
        raise ValueError(
            f"Labels layer {name} is not a time map (its metadata has no "
            f"[{METADATA_KEY!r}][{TIME_MAP_KEY!r}] entry, so its labels would be read as noise "
            f"levels by accident); {how}"
        )
    try:
        levels = check_int(info.get("levels"), "levels", low=1, high=65535)
        sigma_max = check_number(info.get("sigma_max"), "sigma_max", low=0.0, strict_low=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"time-map layer {name} has broken metadata: {exc}") from None
    return {**info, "levels": levels, "sigma_max": sigma_max}


def is_time_map_layer(obj: Any) -> bool:
    """True for a napari Labels layer carrying a valid time-map description
    (:func:`time_map_info`): the layers the denoiser offers and accepts as ``time_map``."""
    try:
        time_map_info(obj)
    except ValueError:
        return False
    return True


def check_plane_size(shape: tuple[int, ...], *, name: str = "image", extra: str = "") -> None:
    """Refuse planes smaller than :data:`MIN_IMAGE_SIZE` pixels on a side (the one size rule)."""
    if len(shape) >= 2 and min(shape[-2:]) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"{name} is too small: its planes (last two dimensions) must be at least "
            f"{MIN_IMAGE_SIZE} × {MIN_IMAGE_SIZE} pixels, got shape {tuple(shape)}{extra}"
        )


def layer_data(obj: Any) -> Any:
    """``obj.data`` for a napari layer (level 0 of a multiscale one), ``obj`` otherwise."""
    if is_layer(obj):
        data = obj.data
        if getattr(obj, "multiscale", False):
            data = data[0]
        return data
    return obj


def looks_rgb(shape: tuple[int, ...]) -> bool:
    """The RGB(A) rule: three dimensions, the last 3 or 4 long, the two others longer than 4.

    ``(rows, columns, 3)`` is a colour image; ``(3, rows, columns)`` is a stack of three planes.
    """
    return len(shape) == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4


def check_not_rgb(obj: Any, shape: tuple[int, ...], *, name: str = "image") -> None:
    """Refuse RGB(A) images (by :func:`looks_rgb`, or a napari layer's ``rgb`` flag): noise is
    estimated and removed one channel at a time."""
    if is_layer(obj) and getattr(obj, "rgb", False):
        raise ValueError(
            f"{name} is an RGB(A) layer; noise is estimated and removed one channel at a time: "
            "split its channels first (right-click the layer > Split RGB)"
        )
    if looks_rgb(tuple(shape)):
        raise ValueError(
            f"{name} of shape {tuple(shape)} looks like RGB(A) (3 or 4 channels last); noise is "
            f"estimated and removed one channel at a time: pass one, e.g. {name}[..., 0]"
        )


def as_image(
    image: Any,
    *,
    name: str = "image",
    min_ndim: int = 2,
    allow_nonfinite: bool = False,
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
    check_image_layout(arr.shape, arr.dtype, name=name, min_ndim=min_ndim)
    if not looks_rgb(arr.shape):  # (an RGB image's last two axes are width and channels)
        check_plane_size(arr.shape, name=name)
    if not allow_nonfinite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); replace them first "
            "(e.g. np.nan_to_num) so they are not mistaken for noise"
        )
    return arr


def check_image_layout(
    shape: tuple[int, ...], dtype: Any, *, name: str = "image", min_ndim: int = 2
) -> None:
    """The checks of :func:`as_image` that need only the shape and dtype (so a lazy array is
    checked without being read): real integer or float data, not empty, enough dimensions."""
    dtype = np.dtype(dtype)
    if dtype.kind == "O":
        raise TypeError(f"{name} has dtype object; expected a real numeric array")
    if dtype.kind == "c":
        raise TypeError(f"{name} is complex ({dtype}); pass a real image, e.g. np.abs(image)")
    if dtype.kind == "b":
        raise TypeError(f"{name} is boolean; expected intensities (integer or float)")
    if dtype.kind not in "uif":
        raise TypeError(f"{name} has unsupported dtype {dtype}; expected integer or float")
    if 0 in tuple(shape):
        raise ValueError(f"{name} is empty (shape {tuple(shape)})")
    if len(shape) < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions (rows, columns), got shape "
            f"{tuple(shape)}"
        )


def check_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    error: type[Exception] = ValueError,
) -> int:
    """``value`` as an ``int`` in ``[low, high]``; booleans and non-integers are refused.

    A value that is not an integer raises ``error`` (``ValueError`` by default, ``TypeError``
    where the caller's contract says so); one out of range raises ``ValueError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        what = "an integer" if low is None else f"an integer >= {low}"
        raise error(f"{name} must be {what}, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    strict_low: bool = False,
    error: type[Exception] = ValueError,
) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low, high]`` with ``strict_low``).

    Booleans, strings and arrays are refused with ``error`` (``ValueError`` by default); NaN,
    infinities and values out of range with ``ValueError``.
    """
    if isinstance(value, (bool, np.bool_, str, bytes)) or not np.isscalar(value):
        raise error(f"{name} must be a real number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise error(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (number < low or (strict_low and number == low)):
        op = ">" if strict_low else ">="
        raise ValueError(f"{name} must be {op} {low}, got {value!r}")
    if high is not None and number > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return number


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool``: only ``True``/``False`` (and numpy's) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    options = tuple(choices)

    def same(choice: Any) -> bool:
        # True is not 1 here, and "1" is not 1
        if isinstance(value, (bool, np.bool_)) or isinstance(choice, (bool, np.bool_)):
            return (
                isinstance(choice, (bool, np.bool_))
                and isinstance(value, (bool, np.bool_))
                and bool(value) == bool(choice)
            )
        if isinstance(value, str) or isinstance(choice, str):
            return isinstance(value, str) and isinstance(choice, str) and value == choice
        return np.isscalar(value) and value == choice

    if any(same(choice) for choice in options):
        return value
    listed = ", ".join(repr(c) for c in options)
    raise ValueError(f"unknown {name} {value!r}; choose one of {listed}")


def check_dtype(value: Any, name: str, *, kinds: str = "uif") -> np.dtype:
    """``value`` as a numpy dtype whose kind is one of ``kinds`` (``TypeError`` otherwise)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be a numpy dtype, got {value!r}") from None
    if dtype.kind not in kinds:
        allowed = {"u": "unsigned integer", "i": "integer", "f": "float", "b": "boolean"}
        names = " or ".join(sorted({allowed.get(k, k) for k in kinds}))
        raise TypeError(f"{name} must be a {names} dtype, got {dtype}")
    return dtype
