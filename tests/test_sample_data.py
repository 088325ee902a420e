"""Sample data: every sample opens through the manifest and carries the advertised noise."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import _sample_data, estimate_noise

PLUGIN = "napari-diffdenoise"
SAMPLES = {
    # key: (function, dtype, add_noise kind, acceptable verdicts of estimate_noise)
    "gaussian": (_sample_data.gaussian_sample, np.uint8, "gaussian", {"gaussian"}),
    "poisson": (_sample_data.poisson_sample, np.uint16, "poisson_gaussian", {"poisson"}),
    "salt_and_pepper": (
        _sample_data.salt_and_pepper_sample,
        np.uint8,
        "salt_and_pepper",
        {"salt_and_pepper"},
    ),
    "spatially_variant": (
        _sample_data.spatially_variant_sample,
        np.float32,
        "spatially_variant",
        {"spatially_variant"},
    ),
}


@pytest.mark.parametrize("key", list(SAMPLES))
def test_sample_noise_kind(key):
    func, dtype, noise_kind, kinds = SAMPLES[key]
    (clean, clean_kw, clean_type), (noisy, noisy_kw, noisy_type) = func()
    assert clean_type == noisy_type == "image"
    assert clean.shape == noisy.shape == _sample_data.SAMPLE_SHAPE
    assert clean.dtype == noisy.dtype == dtype
    assert noisy_kw["name"].endswith("(noisy)") and clean_kw["name"].endswith("(clean)")
    assert noisy_kw["metadata"]["noise"]["kind"] == noise_kind
    assert not clean_kw["visible"]
    assert not np.array_equal(clean, noisy)
    report = estimate_noise(noisy)
    assert report.kind in kinds, report.summary()


def test_samples_are_reproducible():
    a = _sample_data.gaussian_sample()[1][0]
    b = _sample_data.gaussian_sample()[1][0]
    np.testing.assert_array_equal(a, b)


def test_every_sample_opens_from_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    for key, (_func, dtype, _noise, _kinds) in SAMPLES.items():
        layers = viewer.open_sample(PLUGIN, key)
        assert len(layers) == 2
        clean, noisy = layers
        assert noisy.data.dtype == dtype
        assert noisy.name.endswith("(noisy)")
        assert clean.name.endswith("(clean)") and not clean.visible
        assert viewer.layers.selection.active is noisy
    assert len(viewer.layers) == 2 * len(SAMPLES)
    camera = viewer.layers["blobs poisson (noisy)"]
    np.testing.assert_allclose(camera.scale, (_sample_data.CAMERA_PIXEL_SIZE,) * 2)


def test_samples_open_side_by_side_with_one_convention(make_napari_viewer):
    """Every sample has the same pixel size and units, so opening several together draws them
    at one size and napari raises no "Inconsistent units across layers" warning (an error
    under this suite's filterwarnings)."""
    viewer = make_napari_viewer()
    for key in ("gaussian", "poisson", "salt_and_pepper", "spatially_variant"):
        viewer.open_sample("napari-diffdenoise", key)
    assert len(viewer.layers) == 8
    assert len({tuple(layer.scale) for layer in viewer.layers}) == 1
    assert len({tuple(str(u) for u in layer.units) for layer in viewer.layers}) == 1
