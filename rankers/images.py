"""Decode untrusted image bytes into RGB arrays, or fail with an `ImageError` that says why.

Every image Braid embeds passes through `decode`: the corpus builder, the model checks and the
search service. It accepts the formats a browser uploads (PNG, JPEG, GIF, WebP, BMP, TIFF), applies
the EXIF orientation, composites transparency on white, and reduces every mode (palette, greyscale,
16-bit, CMYK) to 8-bit RGB. Anything else (empty, truncated, corrupt, not an image, too large,
zero-sized) raises `ImageError`; Pillow's own warnings never escape.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from rankers.errors import ImageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "check_rgb",
    "composite_on_white",
    "decode",
    "load",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS: Final = 40_000_000
"""Largest width x height `decode` accepts (a 40-megapixel photo)."""

DEFAULT_MAX_BYTES: Final = 50_000_000
"""Largest encoded size `decode` accepts."""

FORMATS: Final = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")
"""Pillow formats `decode` will open; everything else is refused before parsing."""

# Pillow reports decompression bombs and odd metadata with `warnings.warn`, and Python 3.11's
# warning filters are process-global: catching them is only safe one decode at a time.
_WARNINGS_LOCK: Final = threading.Lock()


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> npt.NDArray[np.uint8]:
    """Decode an encoded image into an (H, W, 3) uint8 RGB array.

    Args:
        data: The encoded image (PNG, JPEG, GIF, WebP, BMP or TIFF).
        max_pixels: Refuse images with more than this many pixels (width x height).
        max_bytes: Refuse encodings longer than this many bytes.

    Returns:
        A new, writable, C-contiguous (H, W, 3) uint8 array, upright per the EXIF orientation.

    Raises:
        ImageError: The bytes are empty, too long, not an image, truncated or corrupt, a
            decompression bomb, zero-sized, or in a mode that has no RGB rendering.
        TypeError: `data` is not bytes-like.
        ValueError: `max_pixels` or `max_bytes` is not positive.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    size = len(data)
    if size == 0:
        raise ImageError("empty image: no bytes given")
    if size > max_bytes:
        raise ImageError(f"image too large: {size:,} bytes, the limit is {max_bytes:,}")
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = _decode(bytes(data), max_pixels)
    for warning in caught:
        logger.debug("Pillow warned while decoding: %s", warning.message)
    return rgb


def load(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> npt.NDArray[np.uint8]:
    """Read and `decode` an image file.

    Args:
        path: The image file.
        max_pixels: As for `decode`.
        max_bytes: As for `decode`; checked before the file is read.

    Returns:
        The (H, W, 3) uint8 RGB array.

    Raises:
        ImageError: The file cannot be read, or `decode` refuses its bytes; the message names
            the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{path}: image too large: {size:,} bytes, the limit is {max_bytes:,}")
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read: {error.strerror or error}") from error
    try:
        return decode(data, max_pixels=max_pixels, max_bytes=max_bytes)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from error


def composite_on_white(rgba: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Flatten an (H, W, 4) straight-alpha RGBA array onto a white background.

    Args:
        rgba: Colour and alpha, uint8, alpha not premultiplied.

    Returns:
        The (H, W, 3) uint8 RGB array `round(c * a / 255 + 255 * (1 - a / 255))`.

    Raises:
        ValueError: `rgba` is not (H, W, 4) uint8.
    """
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba must be an (H, W, 4) uint8 array, got {rgba.dtype} {rgba.shape}")
    colour = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:].astype(np.uint32)
    # Integer arithmetic with round-half-up: exact, and identical on every platform.
    flat = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return flat.astype(np.uint8)


def check_rgb(image: object, name: str = "image") -> npt.NDArray[np.uint8]:
    """Check that `image` is an (H, W, 3) uint8 array with at least one pixel, and return it.

    Args:
        image: The value to check.
        name: The parameter name to put in the error message.

    Returns:
        `image`, unchanged.

    Raises:
        TypeError: `image` is not a uint8 numpy array.
        ValueError: `image` is not (H, W, 3) with H, W >= 1.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must have shape (H, W, 3) with H, W >= 1, got {image.shape}")
    return image


def _decode(data: bytes, max_pixels: int) -> npt.NDArray[np.uint8]:
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageError(f"zero-sized image: {width} x {height} pixels")
            if width * height > max_pixels:
                raise ImageError(
                    f"image too large: {width} x {height} pixels, the limit is {max_pixels:,} "
                    "(a decompression bomb?)"
                )
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright)
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"not an image, or not one of {', '.join(FORMATS)}") from error
    except Image.DecompressionBombError as error:
        raise ImageError(f"image too large (a decompression bomb?): {error}") from error
    except MemoryError as error:
        raise ImageError("image too large to decode in memory") from error
    except Exception as error:  # hostile bytes reach Pillow's parsers: any failure means "corrupt"
        raise ImageError(f"truncated or corrupt image: {error}") from error


def _to_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16- and 32-bit greyscale: map 0..65535 onto 0..255 (Pillow's own convert would clip).
        wide = np.asarray(image).astype(np.float64)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "F":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in {"RGBA", "RGBa", "LA", "La", "PA"} or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        return composite_on_white(rgba)
    if mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise ImageError(f"unsupported image mode {mode!r}: {error}") from error
    return np.array(image, dtype=np.uint8, copy=True, order="C")
