"""`rankers._resample`: the compiled bilinear path is Pillow's resize plus numpy, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rankers import models
from rankers._resample import resample_normalise
from rankers.embedder import preprocess, resize_and_crop

MEAN = np.asarray([127.0, 120.5, 3.0], np.float32)
STD = np.asarray([128.0, 57.25, 0.7], np.float32)


def pillow_reference(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    box: tuple[float, float, float, float],
    *,
    channels_first: bool,
    bgr: bool,
) -> npt.NDArray[np.float32]:
    pixels = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, box=box))
    if bgr:
        pixels = pixels[:, :, ::-1]
    mean, std = MEAN, STD
    if channels_first:
        pixels, mean, std = pixels.transpose(2, 0, 1), MEAN[:, None, None], STD[:, None, None]
    return (pixels.astype(np.float32) - mean) / std


def compiled(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    box: tuple[float, float, float, float],
    *,
    channels_first: bool,
    bgr: bool,
) -> npt.NDArray[np.float32]:
    width, height = size
    shape = (3, height, width) if channels_first else (height, width, 3)
    out = np.full(shape, np.nan, np.float32)
    boxed = np.asarray(box, np.float32)
    resample_normalise(image, width, height, boxed, MEAN, STD, channels_first, bgr, out)
    return out


@st.composite
def cases(draw: st.DrawFn) -> tuple[npt.NDArray[np.uint8], tuple[int, int], tuple[float, ...]]:
    height = draw(st.integers(1, 90))
    width = draw(st.integers(1, 90))
    size = (draw(st.integers(1, 120)), draw(st.integers(1, 120)))
    seed = draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if draw(st.booleans()):
        box: tuple[float, ...] = (0, 0, width, height)
    else:
        left = draw(st.floats(0, width - 0.01))
        top = draw(st.floats(0, height - 0.01))
        right = draw(st.floats(left + 0.01, width))
        bottom = draw(st.floats(top + 0.01, height))
        box = (left, top, right, bottom)
    return image, size, box


@settings(max_examples=300, deadline=None)
@given(case=cases(), channels_first=st.booleans(), bgr=st.booleans())
def test_equals_pillow_bit_for_bit(
    case: tuple[npt.NDArray[np.uint8], tuple[int, int], tuple[float, float, float, float]],
    channels_first: bool,
    bgr: bool,
) -> None:
    image, size, box = case
    expected = pillow_reference(image, size, box, channels_first=channels_first, bgr=bgr)
    got = compiled(image, size, box, channels_first=channels_first, bgr=bgr)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((64, 64), (224, 224)),  # the corpus's upscale
        ((100, 32), (4, 30)),  # height shrinks over twice the width: Pillow goes vertical first
        ((47, 66), (23, 9)),  # and the other order
        ((1, 1), (224, 224)),
        ((224, 224), (224, 224)),  # no pass at all: a copy
    ],
)
def test_pass_order_and_edge_sizes(shape: tuple[int, int], size: tuple[int, int]) -> None:
    image = np.random.default_rng(5).integers(0, 256, (*shape, 3), dtype=np.uint8)
    box = (0.0, 0.0, float(shape[1]), float(shape[0]))
    for channels_first in (True, False):
        expected = pillow_reference(image, size, box, channels_first=channels_first, bgr=False)
        got = compiled(image, size, box, channels_first=channels_first, bgr=False)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "shape", [(64, 64), (28, 28), (37, 91), (300, 200), (1, 50), (900, 700), (1000, 900)]
)
@pytest.mark.parametrize(("layout", "color"), [("NCHW", "RGB"), ("NHWC", "BGR")])
def test_preprocess_equals_the_pillow_definition(
    shape: tuple[int, int], layout: str, color: str
) -> None:
    """`preprocess` is its stated recipe, compiled (up to 16x the crop's pixels) or through
    Pillow (1000 x 900 is over)."""
    manifest = dataclasses.replace(models.manifest("effnet-lite0"), layout=layout, color=color)
    image = np.random.default_rng(7).integers(0, 256, (*shape, 3), dtype=np.uint8)
    pixels = resize_and_crop(image, resize=manifest.resize, size=manifest.input_size)
    if color == "BGR":
        pixels = pixels[:, :, ::-1]
    expected = (pixels.astype(np.float32) - np.float32(127)) / np.float32(128)
    if layout == "NCHW":
        expected = expected.transpose(2, 0, 1)
    np.testing.assert_array_equal(preprocess(image, manifest), expected)
