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
    "is_layer",
    "is_labels_layer",
    "layer_data",
    "looks_rgb",
]


def is_layer(obj: Any) -> bool:
    """True for a napari layer. napari is not imported: a layer exists only where it was."""
    layers = sys.modules.get("napari.layers")
    return layers is not None and isinstance(obj, layers.Layer)


def is_labels_layer(obj: Any) -> bool:
    """True for a napari Labels layer (napari is not imported)."""
    layers = sys.modules.get("napari.layers")
    return layers is not None and isinstance(obj, layers.Labels)


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
    check_image_layout(arr.shape, arr.dtype, name=name, min_ndim=min_ndim)
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
