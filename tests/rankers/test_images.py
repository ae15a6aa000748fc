"""`rankers.images`: every mode becomes RGB, every bad input becomes an `ImageError`."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rankers.errors import ImageError
from rankers.images import check_rgb, composite_on_white, decode, load


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` RGB pixels, with one tiny IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


RNG = np.random.default_rng(3)
PIXELS = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


# --- good input -------------------------------------------------------------------------------


def test_rgb_png_round_trips_exactly() -> None:
    decoded = decode(encode(Image.fromarray(PIXELS)))
    assert decoded.dtype == np.uint8
    assert decoded.flags.c_contiguous
    assert decoded.flags.writeable
    np.testing.assert_array_equal(decoded, PIXELS)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_other_formats_decode_to_rgb_of_the_same_size(fmt: str) -> None:
    decoded = decode(encode(Image.fromarray(PIXELS), fmt))
    assert decoded.shape == (5, 7, 3)


def test_rgba_is_composited_on_white() -> None:
    rgba = np.array(
        [[[0, 0, 0, 0], [10, 20, 30, 255], [0, 0, 0, 128], [200, 100, 0, 51]]], np.uint8
    )
    decoded = decode(encode(Image.fromarray(rgba)))
    # Hand-computed: round(c * a / 255 + 255 * (1 - a / 255)).
    expected = [[[255, 255, 255], [10, 20, 30], [127, 127, 127], [244, 224, 204]]]
    np.testing.assert_array_equal(decoded, np.array(expected, np.uint8))


def test_palette_with_transparency_is_composited_on_white() -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0  # colour 0 (red) is transparent
    decoded = decode(encode(palette))
    np.testing.assert_array_equal(decoded, [[[255, 255, 255], [0, 0, 255]]])


def test_palette_without_transparency_keeps_its_colours() -> None:
    palette = Image.fromarray(PIXELS).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    expected = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(decode(encode(palette)), expected)


def test_greyscale_and_greyscale_alpha() -> None:
    grey = np.array([[0, 100, 255]], np.uint8)
    np.testing.assert_array_equal(decode(encode(Image.fromarray(grey))), np.stack([grey] * 3, -1))
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), mode="LA")
    np.testing.assert_array_equal(decode(encode(la)), [[[255, 255, 255], [0, 0, 0]]])


def test_one_bit_image() -> None:
    bits = Image.new("1", (3, 1))
    bits.putpixel((1, 0), 1)
    np.testing.assert_array_equal(decode(encode(bits))[0, :, 0], [0, 255, 0])


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    wide = np.array([[0, 257, 32896, 65535]], np.uint16)
    decoded = decode(encode(Image.fromarray(wide)))  # Pillow writes a 16-bit PNG
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 1, 128, 255])
    assert (decoded[..., 0] == decoded[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (4, 3), (0, 255, 255, 0))  # red
    decoded = decode(encode(cmyk, "JPEG", quality=95))
    assert decoded.shape == (3, 4, 3)
    assert decoded[..., 0].min() > 200
    assert decoded[..., 1:].max() < 60


def test_exif_orientation_is_applied() -> None:
    image = Image.fromarray(PIXELS)  # 7 wide, 5 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    decoded = decode(encode(image, "JPEG", exif=exif, quality=95))
    assert decoded.shape == (7, 5, 3)


def test_extreme_but_legal_sizes() -> None:
    assert decode(encode(Image.new("RGB", (1, 1), (1, 2, 3)))).tolist() == [[[1, 2, 3]]]
    assert decode(encode(Image.new("RGB", (5000, 1)))).shape == (1, 5000, 3)


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(encode(Image.fromarray(PIXELS)))
    np.testing.assert_array_equal(load(path), PIXELS)


# --- bad input --------------------------------------------------------------------------------

VALID_PNG = encode(Image.fromarray(RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)))
VALID_JPEG = encode(Image.fromarray(RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)), "JPEG")
VALID_OTHERS = [
    encode(Image.fromarray(RNG.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)), fmt)
    for fmt in ("GIF", "WEBP", "BMP", "TIFF")
]


def corrupt_idat(data: bytes) -> bytes:
    start = data.index(b"IDAT") + 8
    return data[:start] + bytes(b ^ 0xFF for b in data[start : start + 16]) + data[start + 16 :]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, world: not an image at all", "not an image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
        (VALID_PNG[: len(VALID_PNG) // 2], "truncated or corrupt"),
        (VALID_PNG[:40], "not an image"),  # too short for Pillow to recognise
        (VALID_JPEG[: len(VALID_JPEG) // 2], "truncated or corrupt"),
        (corrupt_idat(VALID_PNG), "truncated or corrupt"),
        (png_header_only(0, 10), "zero-sized|not an image"),  # Pillow refuses it first
        (png_header_only(10, 0), "zero-sized|not an image"),
        (png_header_only(10_000, 10_000), "too large"),  # Pillow would only warn
        (png_header_only(20_000, 20_000), "too large"),  # Pillow raises its own bomb error
        (encode(Image.new("RGB", (4, 4)), "ICO"), "not an image"),  # a format we do not accept
    ],
    ids=[
        "empty",
        "text",
        "pdf",
        "svg",
        "png-half",
        "png-header-only",
        "jpeg-half",
        "png-corrupt-data",
        "zero-width",
        "zero-height",
        "bomb-100mp",
        "bomb-400mp",
        "ico",
    ],
)
def test_bad_bytes_raise_image_error(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        decode(data)


def test_limits_are_configurable() -> None:
    with pytest.raises(ImageError, match="too large: 32 x 32 pixels"):
        decode(VALID_PNG, max_pixels=1000)
    with pytest.raises(ImageError, match="too large"):
        decode(VALID_PNG, max_bytes=100)
    with pytest.raises(ValueError, match="max_pixels"):
        decode(VALID_PNG, max_pixels=0)


def test_non_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="data must be bytes"):
        decode("image.png")  # type: ignore[arg-type]


def test_load_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.png: cannot read"):
        load(tmp_path / "missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(VALID_PNG[:50])
    with pytest.raises(ImageError, match=r"broken\.png: truncated or corrupt"):
        load(broken)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_image_error(data: bytes) -> None:
    try:
        decoded = decode(data)
    except ImageError:
        return
    assert decoded.dtype == np.uint8
    assert decoded.ndim == 3
    assert decoded.shape[2] == 3


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([VALID_PNG, VALID_JPEG, *VALID_OTHERS]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_damaged_images_decode_or_raise_image_error(
    data: bytes, damage: list[tuple[int, int]]
) -> None:
    mutable = bytearray(data)
    for position, value in damage:
        mutable[position % len(mutable)] = value
    try:
        decoded = decode(bytes(mutable))
    except ImageError:
        return
    assert decoded.dtype == np.uint8  # a damaged header may still describe another valid size
    assert decoded.ndim == 3
    assert decoded.shape[2] == 3


def test_composite_on_white_checks_its_input() -> None:
    with pytest.raises(ValueError, match="rgba"):
        composite_on_white(np.zeros((2, 2, 3), np.uint8))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([[1, 2, 3]], TypeError),
        (np.zeros((2, 2, 3), np.float32), TypeError),
        (np.zeros((2, 2), np.uint8), ValueError),
        (np.zeros((0, 2, 3), np.uint8), ValueError),
        (np.zeros((2, 2, 4), np.uint8), ValueError),
    ],
)
def test_check_rgb_rejects_non_images(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="query"):
        check_rgb(value, "query")
