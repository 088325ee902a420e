"""napari sample data (File > Open Sample > napari-diffdenoise).

One sample per noise kind: a synthetic fluorescence-like image (cells, blobs or filaments blurred
by a PSF, from :func:`napari_diffdenoise.synthetic_fluorescence`) with noise from
:func:`napari_diffdenoise.add_noise`. Each sample returns two layers: the clean ground truth
(hidden) and the noisy image on top, so the noisy one is selected and ready to inspect.

The same images in a script::

    from napari_diffdenoise._sample_data import poisson_sample
    (clean, clean_kw, _), (noisy, noisy_kw, _) = poisson_sample()
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "SAMPLE_SHAPE",
    "gaussian_sample",
    "poisson_sample",
    "salt_and_pepper_sample",
    "spatially_variant_sample",
]

#: (rows, cols) of every sample image; small enough to generate in well under a second.
SAMPLE_SHAPE = (256, 256)

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]

# uint8 "8-bit camera" mapping for the Gaussian and salt-and-pepper samples
_U8_OFFSET, _U8_RANGE = 30.0, 190.0
# uint16 sCMOS-like camera for the Poisson sample: dark offset (ADU), gain (ADU per photon),
# peak signal (ADU above the offset), read noise (ADU)
CAMERA_OFFSET = 100.0
CAMERA_GAIN = 2.0
CAMERA_PEAK = 1200.0
CAMERA_READ_NOISE = 3.0
# physical pixel size of every sample (µm): one convention, so samples opened side by side are
# drawn at one size with one unit (and scale-aware code paths get exercised)
PIXEL_SIZE = 0.1
CAMERA_PIXEL_SIZE = PIXEL_SIZE


def _clean(kind: str, seed: int) -> np.ndarray:
    from napari_diffdenoise import synthetic_fluorescence

    return synthetic_fluorescence(SAMPLE_SHAPE, kind=kind, seed=seed)


def _to_uint8(clean01: np.ndarray) -> np.ndarray:
    return np.round(_U8_OFFSET + _U8_RANGE * clean01).astype(np.uint8)


def _pair(
    clean: np.ndarray,
    noisy: np.ndarray,
    *,
    name: str,
    noise: dict[str, Any],
    **layer_kwargs: Any,
) -> list[LayerDataTuple]:
    noisy_meta = {"noise": noise, "ground_truth": f"{name} (clean)"}
    layer_kwargs = {"scale": (PIXEL_SIZE, PIXEL_SIZE), "units": ("µm", "µm"), **layer_kwargs}
    clean_kw = {"name": f"{name} (clean)", "visible": False, **layer_kwargs}
    noisy_kw = {"name": f"{name} (noisy)", "metadata": noisy_meta, **layer_kwargs}
    return [(clean, clean_kw, "image"), (noisy, noisy_kw, "image")]


def gaussian_sample() -> list[LayerDataTuple]:
    """Cells, 8-bit, additive Gaussian noise σ = 15 (grey levels)."""
    from napari_diffdenoise import add_noise

    clean = _to_uint8(_clean("cells", seed=1))
    params = {"sigma": 15.0}
    noisy = add_noise(clean, "gaussian", seed=11, **params)
    return _pair(
        clean,
        noisy,
        name="cells gaussian σ=15",
        noise={"kind": "gaussian", **params},
        contrast_limits=(0, 255),
    )


def poisson_sample() -> list[LayerDataTuple]:
    """Blobs, 16-bit camera counts dominated by shot (Poisson) noise.

    A photon-limited sCMOS-like image: ``noisy = offset + gain · Poisson(signal / gain)
    + N(0, read_noise²)`` with a 100 ADU dark offset, 2 ADU per photon and 3 ADU read noise,
    so the noise variance grows linearly with the signal above the offset.
    """
    from napari_diffdenoise import add_noise

    signal = np.round(CAMERA_PEAK * _clean("blobs", seed=2)).astype(np.uint16)  # ADU above offset
    params = {"gain": CAMERA_GAIN, "read_noise": CAMERA_READ_NOISE, "offset": CAMERA_OFFSET}
    noisy = add_noise(signal, "poisson_gaussian", seed=12, **params)
    clean = (signal + np.uint16(CAMERA_OFFSET)).astype(np.uint16)
    return _pair(
        clean,
        noisy,
        name="blobs poisson",
        noise={"kind": "poisson_gaussian", **params},
        contrast_limits=(CAMERA_OFFSET, CAMERA_OFFSET + CAMERA_PEAK),
    )


def salt_and_pepper_sample() -> list[LayerDataTuple]:
    """Filaments, 8-bit, 5 % of the pixels replaced by 0 (pepper) or 255 (salt)."""
    from napari_diffdenoise import add_noise

    clean = _to_uint8(_clean("filaments", seed=3))
    params = {"amount": 0.05, "salt_vs_pepper": 0.5}
    noisy = add_noise(clean, "salt_and_pepper", seed=13, **params)
    return _pair(
        clean,
        noisy,
        name="filaments salt & pepper",
        noise={"kind": "salt_and_pepper", **params},
        contrast_limits=(0, 255),
    )


def spatially_variant_sample() -> list[LayerDataTuple]:
    """Mixed cells/blobs/filaments, float32 in [0, 1], Gaussian noise whose σ ramps from 0.02
    (left) to 0.15 (right)."""
    from napari_diffdenoise import add_noise

    clean = _clean("mixed", seed=4)
    params = {"profile": "ramp", "sigma_min": 0.02, "sigma_max": 0.15}
    noisy = add_noise(clean, "spatially_variant", seed=14, **params)
    return _pair(
        clean,
        noisy,
        name="mixed spatially variant",
        noise={"kind": "spatially_variant", **params},
        contrast_limits=(0.0, 1.0),
    )
