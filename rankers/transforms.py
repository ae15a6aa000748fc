"""Deterministic image transforms for the invariance test, done by Pillow.

Each transform is a frozen dataclass holding its parameters and mapping an (H, W, 3) uint8 RGB array
to a new array of the same shape and dtype. The same input always gives the same output (no random
parameters: the invariance test must be repeatable and paired across models).

The registry `TRANSFORMS` maps a name to a configured transform; `register()` refuses a duplicate
name. The built-in entries are the ones the seed asks the invariance test for: rotation by 90 and
15 degrees, scaling, cropping, horizontal flip, colour jitter and JPEG compression.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance, ImageOps

from rankers.errors import UnknownItemError

__all__ = [
    "TRANSFORMS",
    "CentralCrop",
    "ColourJitter",
    "HorizontalFlip",
    "JpegCompression",
    "Rescale",
    "Rotation",
    "Transform",
    "get",
    "names",
    "register",
]

_WHITE = (255, 255, 255)
Resampling = Image.Resampling


class Transform(Protocol):
    """An image-to-image map over (H, W, 3) uint8 RGB arrays that keeps shape and dtype."""

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]: ...


def _to_pil(image: npt.NDArray[np.uint8]) -> Image.Image:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, not {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    return Image.fromarray(np.ascontiguousarray(image), mode="RGB")


def _to_array(image: Image.Image) -> npt.NDArray[np.uint8]:
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


@dataclass(frozen=True, slots=True)
class Rotation:
    """Rotate counter-clockwise by `degrees` about the centre, keeping the frame; corners filled.

    Multiples of 90 degrees on a square image are exact (Pillow transposes instead of resampling).
    """

    degrees: float
    fill: tuple[int, int, int] = _WHITE
    resample: Resampling = Resampling.BICUBIC

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        rotated = _to_pil(image).rotate(
            self.degrees, resample=self.resample, expand=False, fillcolor=self.fill
        )
        return _to_array(rotated)


@dataclass(frozen=True, slots=True)
class Rescale:
    """Resize by `factor` and back to the original size.

    A factor below 1 throws away resolution (the image is seen smaller, then upsampled); a factor
    above 1 only resamples twice, a control that a model should pass almost surely.
    """

    factor: float
    resample: Resampling = Resampling.BICUBIC

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"factor must be positive, got {self.factor}")

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        pil = _to_pil(image)
        width, height = pil.size
        size = (max(1, round(width * self.factor)), max(1, round(height * self.factor)))
        resized = pil.resize(size, resample=self.resample)
        return _to_array(resized.resize((width, height), resample=self.resample))


@dataclass(frozen=True, slots=True)
class CentralCrop:
    """Keep the central `fraction` of each side and resize it back to the original size."""

    fraction: float
    resample: Resampling = Resampling.BICUBIC

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        pil = _to_pil(image)
        width, height = pil.size
        # ImageOps.fit crops the centre to the aspect ratio, `bleed` trims the border first.
        bleed = (1 - self.fraction) / 2
        cropped = ImageOps.fit(pil, (width, height), method=self.resample, bleed=bleed)
        return _to_array(cropped)


@dataclass(frozen=True, slots=True)
class HorizontalFlip:
    """Mirror left to right."""

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return _to_array(ImageOps.mirror(_to_pil(image)))


@dataclass(frozen=True, slots=True)
class ColourJitter:
    """Scale brightness, then contrast, then saturation by fixed factors (1 leaves it unchanged)."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        pil = _to_pil(image)
        pil = ImageEnhance.Brightness(pil).enhance(self.brightness)
        pil = ImageEnhance.Contrast(pil).enhance(self.contrast)
        pil = ImageEnhance.Color(pil).enhance(self.saturation)
        return _to_array(pil)


@dataclass(frozen=True, slots=True)
class JpegCompression:
    """Encode as JPEG at `quality` (1-95) and decode again."""

    quality: int

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 95:
            raise ValueError(f"quality must be in [1, 95], got {self.quality}")

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        buffer = io.BytesIO()
        _to_pil(image).save(buffer, format="JPEG", quality=self.quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return _to_array(decoded)


TRANSFORMS: dict[str, Transform] = {}


def register(name: str, transform: Transform) -> None:
    """Add `transform` to the registry under `name`.

    Raises:
        ValueError: if `name` is empty or already registered.
    """
    if not name:
        raise ValueError("name must not be empty")
    if name in TRANSFORMS:
        raise ValueError(f"a transform named {name!r} is already registered")
    TRANSFORMS[name] = transform


def get(name: str) -> Transform:
    """The registered transform called `name`.

    Raises:
        UnknownItemError: naming the known transforms, if there is none called `name`.
    """
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise UnknownItemError(
            f"no transform named {name!r}; known: {', '.join(names())}"
        ) from None


def names() -> tuple[str, ...]:
    """The registered transform names, in registration order."""
    return tuple(TRANSFORMS)


register("rotate-90", Rotation(90))
register("rotate-15", Rotation(15))
register("scale-down", Rescale(0.5))
register("scale-up", Rescale(2.0))
register("crop-80", CentralCrop(0.8))
register("flip", HorizontalFlip())
register("colour-jitter", ColourJitter(brightness=1.2, contrast=0.8, saturation=1.3))
register("jpeg-30", JpegCompression(30))
