"""synthetic_fluorescence: a varied, sparse, dark-backgrounded ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import synthetic_fluorescence
from napari_diffdenoise.synthetic import SYNTHETIC_KINDS


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_range_dtype_and_look(kind):
    for seed in range(3):
        img = synthetic_fluorescence((128, 160), kind=kind, seed=seed)
        assert img.shape == (128, 160) and img.dtype == np.float32
        assert img.min() >= 0.0 and img.max() <= 1.0
        background = np.percentile(img, 10)
        assert 0.005 < background < 0.12  # dark background
        assert np.median(img) < 0.2  # sparse: most pixels are background
        assert img.max() > background + 0.15  # but there are bright structures
        # blurred by a PSF: neighbouring pixels are alike almost everywhere
        assert np.percentile(np.abs(np.diff(img, axis=1)), 99) < 0.2
        assert img.max() < 1.0  # bright pixels are compressed, not clipped


def test_reproducible_and_varied():
    a = synthetic_fluorescence(seed=7)
    np.testing.assert_array_equal(a, synthetic_fluorescence(seed=7))
    np.testing.assert_array_equal(a, synthetic_fluorescence(seed=np.random.default_rng(7)))
    b = synthetic_fluorescence(seed=8)
    assert not np.allclose(a, b)
    assert a.shape == (256, 256)


def test_kinds_differ():
    imgs = {k: synthetic_fluorescence((96, 96), kind=k, seed=1) for k in SYNTHETIC_KINDS}
    assert not np.allclose(imgs["cells"], imgs["blobs"])
    assert not np.allclose(imgs["blobs"], imgs["filaments"])


def test_stack_of_planes():
    stack = synthetic_fluorescence((3, 64, 48), kind="blobs", seed=2)
    assert stack.shape == (3, 64, 48) and stack.dtype == np.float32
    assert not np.allclose(stack[0], stack[1])
    np.testing.assert_array_equal(stack, synthetic_fluorescence((3, 64, 48), kind="blobs", seed=2))


def test_large_image_is_fine():
    img = synthetic_fluorescence((1024, 768), seed=3)
    assert img.shape == (1024, 768)
    assert np.isfinite(img).all()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kind": "neurons"}, ValueError),
        ({"shape": (4, 64)}, ValueError),
        ({"shape": (64,)}, ValueError),
        ({"shape": (2, 2, 64, 64)}, ValueError),
        ({"shape": (0, 64, 64)}, ValueError),
        ({"shape": 64}, TypeError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        synthetic_fluorescence(**kwargs)


def test_synthetic_texture_is_periodic_varied_and_reproducible():
    from napari_diffdenoise.synthetic import synthetic_texture

    a = synthetic_texture((96, 128), seed=3)
    assert a.shape == (96, 128) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, synthetic_texture((96, 128), seed=3))
    assert not np.array_equal(a, synthetic_texture((96, 128), seed=4))
    # stripes: most of the (non-DC) energy sits at a few spatial frequencies, far from DC
    for seed in range(6):
        img = synthetic_texture((128, 128), seed=seed)
        power = np.abs(np.fft.fft2(img - img.mean())) ** 2
        f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
        assert power[f > 1 / 20].sum() > 0.3 * power.sum(), seed  # periods < 20 px dominate
        assert img.std() > 0.03


@pytest.mark.parametrize(
    "shape, error", [((4, 64), ValueError), ("big", TypeError), ((8, 8, 8), TypeError)]
)
def test_synthetic_texture_bad_shapes(shape, error):
    from napari_diffdenoise.synthetic import synthetic_texture

    with pytest.raises(error):
        synthetic_texture(shape)
