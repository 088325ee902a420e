"""Add synthetic noise of a known kind to an image (for benchmarks, training data and demos).

All parameters are in the image's own intensity units. The result has the input's shape and
dtype: integer results are rounded and clipped to the dtype's range, float results are not
clipped. The input is never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .._validation import as_image, check_number

__all__ = ["NOISE_KINDS", "PROFILES", "add_noise", "sigma_profile"]

#: The noise kinds :func:`add_noise` simulates.
NOISE_KINDS: tuple[str, ...] = (
    "gaussian",
    "poisson",
    "poisson_gaussian",
    "salt_and_pepper",
    "spatially_variant",
)

#: The σ-map profiles of :func:`sigma_profile`.
PROFILES: tuple[str, ...] = ("ramp", "vignette", "patches")

# name -> (required parameters, optional parameters)
_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gaussian": (("sigma",), ()),
    "poisson": (("gain",), ()),
    "poisson_gaussian": (("gain", "read_noise"), ("offset",)),
    "salt_and_pepper": (("amount",), ("salt_vs_pepper", "low", "high")),
    "spatially_variant": ((), ("sigma", "profile", "sigma_min", "sigma_max")),
}


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _scalar(
    params: dict[str, Any],
    name: str,
    *,
    low: float = 0.0,
    high: float | None = None,
    strict_low: bool = False,
) -> float:
    return check_number(
        params[name], name, low=low, high=high, strict_low=strict_low, error=TypeError
    )


def _check_params(kind: str, params: dict[str, Any]) -> None:
    required, optional = _PARAMS[kind]
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(required + optional)
        raise TypeError(f"unexpected parameter(s) {unknown} for kind {kind!r}; allowed: {allowed}")
    missing = [name for name in required if name not in params]
    if missing:
        raise TypeError(f"kind {kind!r} needs parameter(s) {missing}")


def sigma_profile(
    shape: tuple[int, ...],
    profile: str,
    sigma_min: float,
    sigma_max: float,
    *,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Return a spatially variant noise-level map (float64, ``shape``), in image units.

    The profile is drawn over the last two axes and repeated over any leading axes.

    Parameters
    ----------
    shape
        Image shape, at least two dimensions.
    profile
        ``"ramp"``: σ rises linearly along the last axis from ``sigma_min`` to ``sigma_max``.
        ``"vignette"``: ``sigma_min`` at the centre rising quadratically with the radius to
        ``sigma_max`` in the corners. ``"patches"``: a mosaic of 3-5 x 3-5 tiles (jittered
        boundaries, soft edges, like a stitched tile scan), each at a level drawn uniformly
        in ``[sigma_min, sigma_max]`` and the map stretched to span that range (depends on
        ``seed``).
    sigma_min, sigma_max
        Range of the map, ``0 <= sigma_min <= sigma_max``.
    seed
        Seed (or generator) for ``"patches"``; ignored by the other profiles.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape must have at least two positive dimensions, got {shape}")
    params = {"sigma_min": sigma_min, "sigma_max": sigma_max}
    lo = _scalar(params, "sigma_min")
    hi = _scalar(params, "sigma_max")
    if hi < lo:
        raise ValueError(f"sigma_max ({hi}) must be >= sigma_min ({lo})")
    h, w = shape[-2:]
    if profile == "ramp":
        row = np.linspace(lo, hi, w)
        plane = np.broadcast_to(row, (h, w))
    elif profile == "vignette":
        yy = np.linspace(-1.0, 1.0, h)[:, None]
        xx = np.linspace(-1.0, 1.0, w)[None, :]
        r2 = (yy**2 + xx**2) / 2.0  # 0 at the centre, 1 in the corners
        plane = lo + (hi - lo) * r2
    elif profile == "patches":
        rng = _rng(seed)
        ny, nx = rng.integers(3, 6, size=2)
        levels = rng.uniform(0.0, 1.0, size=(ny, nx))
        # tile boundaries: evenly spaced, jittered by up to a quarter of a tile
        ey = (np.arange(1, ny) + rng.uniform(-0.25, 0.25, size=ny - 1)) / ny
        ex = (np.arange(1, nx) + rng.uniform(-0.25, 0.25, size=nx - 1)) / nx
        iy = np.searchsorted(ey, (np.arange(h) + 0.5) / h)
        ix = np.searchsorted(ex, (np.arange(w) + 0.5) / w)
        plane = levels[iy[:, None], ix[None, :]]
        plane = ndimage.gaussian_filter(plane, max(1.0, min(h, w) / 48.0), mode="nearest")
        span = plane.max() - plane.min()
        plane = (plane - plane.min()) / span if span > 0 else np.zeros_like(plane)
        plane = lo + (hi - lo) * plane
    else:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return np.array(np.broadcast_to(plane, shape), dtype=np.float64)


def _salt_and_pepper(
    x: np.ndarray, image: np.ndarray, rng: np.random.Generator, params: dict[str, Any]
) -> np.ndarray:
    amount = _scalar(params, "amount", high=1.0)
    params.setdefault("salt_vs_pepper", 0.5)
    salt_share = _scalar(params, "salt_vs_pepper", high=1.0)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = float(x.min()), float(x.max())
    if "low" in params:
        low = _scalar(params, "low", low=-np.inf)
    if "high" in params:
        high = _scalar(params, "high", low=-np.inf)
    u = rng.random(x.shape)
    out = x.copy()
    n_salt = amount * salt_share
    out[u < n_salt] = high
    out[(u >= n_salt) & (u < amount)] = low
    return out


def add_noise(
    image: Any,
    kind: str,
    *,
    seed: int | np.random.Generator | None = None,
    **params: Any,
) -> np.ndarray:
    """Return a noisy copy of ``image`` (same shape and dtype).

    Parameters
    ----------
    image
        2D or nD image (numpy array or array-like; napari layers accepted). Never modified.
    kind
        One of :data:`NOISE_KINDS`:

        - ``"gaussian"``: ``sigma`` (>= 0), additive white Gaussian noise.
        - ``"poisson"``: ``gain`` (> 0, image units per photon): ``y = gain * Poisson(x / gain)``;
          negative ``x`` counts as 0.
        - ``"poisson_gaussian"``: ``gain`` (> 0), ``read_noise`` (>= 0, std of the additive
          Gaussian) and optional ``offset`` (camera baseline added to the result, default 0):
          ``y = offset + gain * Poisson(max(x, 0) / gain) + N(0, read_noise**2)``, so
          ``Var[y | E[y]] = gain * E[y] + (read_noise**2 - gain * offset)``.
        - ``"salt_and_pepper"``: ``amount`` (fraction of pixels replaced, 0..1),
          ``salt_vs_pepper`` (share of salt among them, default 0.5); salt/pepper values are
          the dtype's max/min for integer images and the image's max/min for float images,
          unless ``high``/``low`` are given.
        - ``"spatially_variant"``: either ``sigma`` (a σ map broadcastable to the image, or a
          scalar) or ``profile`` in :data:`PROFILES` with ``sigma_min`` and ``sigma_max`` (see
          :func:`sigma_profile`; ``"patches"`` uses ``seed`` for its layout, so the map is
          ``sigma_profile(image.shape, "patches", sigma_min, sigma_max, seed=seed)``).
    seed
        Seed or ``numpy.random.Generator`` for reproducible noise.

    Returns
    -------
    numpy.ndarray
        Noisy image. Integer dtypes are rounded and clipped to the dtype's range; float dtypes
        are not clipped.

    Raises
    ------
    ValueError
        Unknown ``kind``, negative or non-finite parameters, bad input image.
    TypeError
        Unknown or missing parameters, non-numeric input.
    """
    if not isinstance(kind, str) or kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    arr = as_image(image, name="image", min_ndim=2)
    params = dict(params)
    _check_params(kind, params)
    x = arr.astype(np.float64)  # a copy: the input is never touched

    if kind == "spatially_variant":
        has_map = "sigma" in params
        has_profile = "profile" in params
        if has_map == has_profile:
            raise TypeError(
                "spatially_variant needs either sigma (a σ map) or profile with sigma_min and "
                "sigma_max, not both"
            )
        if has_profile:
            missing = [n for n in ("sigma_min", "sigma_max") if n not in params]
            if missing:
                raise TypeError(f"profile {params['profile']!r} needs parameter(s) {missing}")
        elif "sigma_min" in params or "sigma_max" in params:
            raise TypeError("sigma_min/sigma_max only go with profile=")

    rng = _rng(seed)
    if kind == "gaussian":
        sigma = _scalar(params, "sigma")
        y = x + rng.normal(0.0, 1.0, x.shape) * sigma
    elif kind == "poisson":
        gain = _scalar(params, "gain", strict_low=True)
        y = gain * rng.poisson(np.maximum(x, 0.0) / gain)
    elif kind == "poisson_gaussian":
        gain = _scalar(params, "gain", strict_low=True)
        read = _scalar(params, "read_noise")
        offset = _scalar(params, "offset", low=-np.inf) if "offset" in params else 0.0
        y = offset + gain * rng.poisson(np.maximum(x, 0.0) / gain)
        y += rng.normal(0.0, 1.0, x.shape) * read
    elif kind == "salt_and_pepper":
        y = _salt_and_pepper(x, arr, rng, params)
    else:  # spatially_variant
        if "profile" in params:
            sigma_map = sigma_profile(
                x.shape, params["profile"], params["sigma_min"], params["sigma_max"], seed=seed
            )
        else:
            try:
                sigma_map = np.asarray(params["sigma"], dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError("sigma must be a number or a numeric array") from None
            if not np.isfinite(sigma_map).all():
                raise ValueError("sigma map contains NaN or infinite values")
            if (sigma_map < 0).any():
                raise ValueError("sigma map must be >= 0 everywhere")
            try:
                sigma_map = np.broadcast_to(sigma_map, x.shape)
            except ValueError:
                raise ValueError(
                    f"sigma map of shape {sigma_map.shape} does not broadcast to the image "
                    f"shape {x.shape}"
                ) from None
        y = x + rng.normal(0.0, 1.0, x.shape) * sigma_map

    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    return y.astype(arr.dtype, copy=False)
