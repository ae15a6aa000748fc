"""Tests for `rankers.transforms`: determinism, shape, and that each transform does what it says."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankers import transforms
from rankers.errors import RankerError, UnknownItemError
from rankers.transforms import (
    CentralCrop,
    ColourJitter,
    HorizontalFlip,
    JpegCompression,
    Rescale,
    Rotation,
)

Image = npt.NDArray[np.uint8]

EXPECTED = (
    "rotate-90",
    "rotate-15",
    "scale-down",
    "scale-up",
    "crop-80",
    "flip",
    "colour-jitter",
    "jpeg-30",
)


def noise(shape: tuple[int, int] = (64, 64), seed: int = 0) -> Image:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def smooth(size: int = 64) -> Image:
    """A smooth colourful gradient: what JPEG and resampling keep well."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    rgb = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
    return rgb.round().astype(np.uint8)


def test_registry_holds_the_seed_transforms() -> None:
    assert transforms.names() == EXPECTED


images = arrays(
    np.uint8,
    st.tuples(st.integers(4, 48), st.integers(4, 48), st.just(3)),
)


@pytest.mark.parametrize("name", EXPECTED)
@settings(max_examples=25, deadline=None)
@given(image=images)
def test_transforms_are_deterministic_and_keep_shape_and_dtype(name: str, image: Image) -> None:
    before = image.copy()
    transform = transforms.get(name)
    first, second = transform(image), transform(image)
    assert first.shape == image.shape
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(image, before)  # the input is not modified
    assert first is not image


@pytest.mark.parametrize("size", [(64, 64), (31, 31)])
def test_rotation_by_90_is_numpys_rot90_on_a_square_image(size: tuple[int, int]) -> None:
    image = noise(size)
    np.testing.assert_array_equal(transforms.get("rotate-90")(image), np.rot90(image))
    np.testing.assert_array_equal(Rotation(180)(image), np.rot90(image, 2))
    np.testing.assert_array_equal(Rotation(270)(image), np.rot90(image, 3))


def test_rotation_by_15_moves_content_and_fills_corners_white() -> None:
    black = np.zeros((64, 64, 3), dtype=np.uint8)
    rotated = transforms.get("rotate-15")(black)
    for corner in (rotated[0, 0], rotated[0, -1], rotated[-1, 0], rotated[-1, -1]):
        np.testing.assert_array_equal(corner, [255, 255, 255])
    np.testing.assert_array_equal(rotated[32, 32], [0, 0, 0])  # the centre stays put
    # A vertical bar through the centre leans: its top row shifts sideways.
    bar = np.full((64, 64, 3), 255, dtype=np.uint8)
    bar[:, 30:34] = 0
    top_row = transforms.get("rotate-15")(bar)[4]
    assert top_row[30:34].mean() > 128
    assert top_row.mean() < 255


def test_flip_mirrors_left_to_right() -> None:
    image = noise()
    np.testing.assert_array_equal(transforms.get("flip")(image), image[:, ::-1])
    np.testing.assert_array_equal(HorizontalFlip()(HorizontalFlip()(image)), image)


def test_scale_down_loses_resolution_and_scale_up_nearly_does_not() -> None:
    checkerboard = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(checkerboard[:, :, None], 3, axis=2)
    # One-pixel detail cannot survive half resolution: it blurs to grey.
    assert transforms.get("scale-down")(image).std() < 0.1 * image.std()
    gradient = smooth()
    error = np.abs(transforms.get("scale-up")(gradient).astype(int) - gradient).max()
    assert error <= 2


def test_crop_keeps_the_central_80_percent() -> None:
    # A 5-pixel red frame around a blue 40x40 centre: cropping 10% per side removes the frame.
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    image[:] = (255, 0, 0)
    image[5:45, 5:45] = (0, 0, 255)
    cropped = transforms.get("crop-80")(image)
    assert (cropped[2:-2, 2:-2, 0] == 0).all()  # no red left inside (edges feel the resampling)
    assert cropped[..., 0].mean() < 0.05 * image[..., 0].mean()
    np.testing.assert_array_equal(CentralCrop(1.0)(image), image)


def test_colour_jitter_scales_brightness_contrast_and_saturation() -> None:
    grey = np.full((8, 8, 3), 100, dtype=np.uint8)
    np.testing.assert_array_equal(ColourJitter(brightness=1.2)(grey), np.full_like(grey, 120))
    image = smooth()
    np.testing.assert_array_equal(ColourJitter()(image), image)
    jittered = transforms.get("colour-jitter")(image)
    assert not np.array_equal(jittered, image)
    desaturated = ColourJitter(saturation=0.0)(image).astype(int)
    assert np.abs(desaturated - desaturated[..., :1]).max() <= 1  # grey: channels equal


def test_jpeg_keeps_a_smooth_image_and_damages_noise() -> None:
    jpeg = transforms.get("jpeg-30")
    image = smooth()
    assert np.abs(jpeg(image).astype(int) - image).mean() < 3
    damaged = noise()
    assert np.abs(jpeg(damaged).astype(int) - damaged).mean() > 20
    # Higher quality keeps more.
    fine = JpegCompression(95)(damaged).astype(int)
    assert np.abs(fine - damaged).mean() < np.abs(jpeg(damaged).astype(int) - damaged).mean()


def test_register_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        transforms.register("flip", HorizontalFlip())
    with pytest.raises(ValueError, match="name"):
        transforms.register("", HorizontalFlip())


def test_unknown_transform_names_the_known_ones() -> None:
    with pytest.raises(UnknownItemError, match="rotate-90"):
        transforms.get("rotate-45")
    with pytest.raises(RankerError):
        transforms.get("nope")


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: Rescale(0), "factor"),
        (lambda: CentralCrop(0), "fraction"),
        (lambda: CentralCrop(1.5), "fraction"),
        (lambda: ColourJitter(contrast=-1), "contrast"),
        (lambda: JpegCompression(0), "quality"),
        (lambda: JpegCompression(100), "quality"),
    ],
)
def test_bad_parameters_name_the_parameter(make: object, parameter: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=parameter):
        make()


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8), dtype=np.uint8),
        np.zeros((8, 8, 4), dtype=np.uint8),
        np.zeros((8, 8, 3), dtype=np.float32),
    ],
)
def test_images_that_are_not_rgb_uint8_are_refused(image: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="image"):
        transforms.get("flip")(image)  # type: ignore[arg-type]


def test_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match="image"):
        transforms.get("flip")([[[0, 0, 0]]])  # type: ignore[arg-type]
