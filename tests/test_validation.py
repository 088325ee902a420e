"""The shared argument checks (``_validation``) and that every entry point applies the same rules."""

from __future__ import annotations

import numpy as np
import pytest

from napari_diffdenoise import add_noise, denoise, estimate_noise
from napari_diffdenoise._validation import (
    as_image,
    check_bool,
    check_choice,
    check_dtype,
    check_int,
    check_not_rgb,
    check_number,
    is_labels_layer,
    is_layer,
    layer_data,
    looks_rgb,
)


@pytest.mark.parametrize(
    ("shape", "rgb"),
    [
        ((64, 64, 3), True),
        ((64, 48, 4), True),
        ((3, 64, 64), False),  # a stack of three planes
        ((4, 64, 64), False),
        ((64, 64), False),
        ((2, 64, 64, 3), False),  # 4D: never taken for colour
        ((4, 64, 3), False),  # four planes of 64 × 3, not a 4-row colour image
    ],
)
def test_the_rgb_rule(shape, rgb):
    assert looks_rgb(shape) is rgb


def test_denoise_and_estimate_apply_one_rgb_rule():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for call in (denoise, estimate_noise):
        with pytest.raises(ValueError, match="RGB"):
            call(colour)
    planes = rng.normal(100, 10, (3, 64, 64)).astype(np.float32)
    assert denoise(planes, sigma=10).shape == planes.shape
    assert estimate_noise(planes).kind is not None


def test_layers_are_recognised_by_type_not_by_attributes():
    from napari.layers import Image, Labels

    class LooksLikeALayer:
        data = np.zeros((8, 8))
        _type_string = "labels"
        metadata: dict = {}

    fake = LooksLikeALayer()
    assert not is_layer(fake) and not is_labels_layer(fake)
    assert layer_data(fake) is fake
    image = Image(np.ones((16, 16), np.float32))
    labels = Labels(np.zeros((16, 16), np.uint8))
    assert is_layer(image) and not is_labels_layer(image)
    assert is_layer(labels) and is_labels_layer(labels)
    assert layer_data(image) is image.data
    multiscale = Image(
        [np.ones((32, 32), np.float32), np.ones((16, 16), np.float32)], multiscale=True
    )
    assert layer_data(multiscale).shape == (32, 32)
    with pytest.raises(ValueError, match="RGB"):
        check_not_rgb(Image(np.zeros((16, 16, 3), np.uint8), rgb=True), (16, 16, 3))


def test_as_image_refuses_what_is_not_an_image():
    with pytest.raises(TypeError, match="None"):
        as_image(None)
    with pytest.raises(TypeError, match="complex"):
        as_image(np.ones((8, 8), complex))
    with pytest.raises(TypeError, match="boolean"):
        as_image(np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="empty"):
        as_image(np.ones((0, 8)))
    with pytest.raises(ValueError, match="dimensions"):
        as_image(np.ones(8))
    with pytest.raises(ValueError, match="NaN"):
        as_image(np.pad(np.array([[np.nan]]), 4, constant_values=1.0))
    with pytest.raises(ValueError, match=r"at least 8 × 8 pixels, got shape \(2, 2\)"):
        as_image(np.ones((2, 2)))
    image = np.ones((8, 8), np.float32)
    assert as_image(image) is image  # never a copy


@pytest.mark.parametrize("bad", [True, 1.5, "3", None, np.array([2])])
def test_check_int_refuses_non_integers(bad):
    with pytest.raises(ValueError, match="must be an integer"):
        check_int(bad, "steps", low=1)
    with pytest.raises(TypeError, match="steps"):
        check_int(bad, "steps", error=TypeError)


def test_check_int_ranges():
    assert check_int(np.int64(3), "n", low=1, high=3) == 3
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got 0"):
        check_int(0, "n", low=1)
    with pytest.raises(ValueError, match=r"n must be <= 3"):
        check_int(4, "n", high=3)


@pytest.mark.parametrize("bad", [True, "0.5", None, [0.5], np.ones(2)])
def test_check_number_refuses_non_numbers(bad):
    with pytest.raises(ValueError, match="real number"):
        check_number(bad, "eta")


def test_check_number_ranges():
    assert check_number(np.float32(0.5), "eta", low=0, high=1) == 0.5
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            check_number(bad, "eta")
    with pytest.raises(ValueError, match=">= 0"):
        check_number(-0.1, "eta", low=0)
    with pytest.raises(ValueError, match="> 0"):
        check_number(0, "gain", low=0, strict_low=True)
    with pytest.raises(ValueError, match="<= 1"):
        check_number(1.5, "eta", high=1)


def test_check_bool_choice_dtype():
    assert check_bool(np.bool_(True), "flag") is True
    with pytest.raises(TypeError, match="True or False"):
        check_bool(1, "flag")
    assert check_choice("cold", "sampler", ("direct", "cold")) == "cold"
    assert check_choice(8, "ensemble", (1, 2, 4, 8)) == 8
    with pytest.raises(ValueError, match="unknown sampler 'nope'; choose one of 'direct', 'cold'"):
        check_choice("nope", "sampler", ("direct", "cold"))
    with pytest.raises(ValueError, match="ensemble"):
        check_choice(True, "ensemble", (1, 2, 4, 8))
    assert check_dtype("uint16", "output_dtype") == np.uint16
    with pytest.raises(TypeError, match="output_dtype"):
        check_dtype(bool, "output_dtype")
    with pytest.raises(TypeError, match="numpy dtype"):
        check_dtype("not a dtype", "output_dtype")


@pytest.mark.parametrize("call", ["estimate", "denoise", "add_noise"])
def test_one_minimum_size_one_message(call):
    """The minimum plane size was 2 px in one message and 8 px in another."""
    small = np.random.default_rng(0).normal(100, 5, (4, 64)).astype(np.float32)
    run = {
        "estimate": lambda: estimate_noise(small),
        "denoise": lambda: denoise(small, sigma=5.0),
        "add_noise": lambda: add_noise(small, "gaussian", sigma=1.0),
    }[call]
    with pytest.raises(ValueError, match=r"at least 8 × 8 pixels, got shape \(4, 64\)"):
        run()
