"""Model manifests: what an ONNX embedding model is, where it came from, and how to feed it.

Each bundled model lives in ``rankers/models/<name>/`` beside a ``manifest.toml``::

    name = "effnet-lite0"            # registry name, equal to the folder name
    version = "1"
    file = "model.onnx"              # relative to the manifest
    sha256 = "..."                   # of `file`; checked before the model is loaded
    source_package = "..."           # where the weights came from
    source_version = "..."
    license = "Apache-2.0"
    input_name = "image"
    output_name = "embedding"
    input_size = 224                 # square side fed to the model
    resize = 256                     # shorter side after resizing, before the centre crop
    resample = "bilinear"
    layout = "NCHW"
    color = "RGB"
    mean = [127.0, 127.0, 127.0]     # 0..255 scale: x' = (x - mean) / std
    std = [128.0, 128.0, 128.0]
    embedding_dim = 1280
    metric = "cos"
    description = "..."

`parse` turns it into a `ModelManifest` or raises `ManifestError` naming the bad key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from rankers.errors import ManifestError

__all__ = ["Color", "Layout", "Metric", "ModelManifest", "Resample", "parse"]

Resample = Literal["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"]
Layout = Literal["NCHW", "NHWC"]
Color = Literal["RGB", "BGR"]
Metric = Literal["cos", "ip", "l2sq"]

_STRINGS: Final = (
    "name",
    "version",
    "file",
    "sha256",
    "source_package",
    "source_version",
    "license",
    "input_name",
    "output_name",
    "description",
)


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """A parsed ``manifest.toml`` (see the module docstring for the keys).

    Attributes:
        directory: The folder holding the manifest; `file` is relative to it.
    """

    name: str
    version: str
    file: str
    sha256: str
    source_package: str
    source_version: str
    license: str
    input_name: str
    output_name: str
    input_size: int
    resize: int
    resample: Resample
    layout: Layout
    color: Color
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_dim: int
    metric: Metric
    description: str
    directory: Path

    @property
    def model_path(self) -> Path:
        """The ONNX file this manifest describes."""
        return self.directory / self.file


def parse(path: str | os.PathLike[str]) -> ModelManifest:
    """Read and validate a ``manifest.toml``.

    Raises:
        ManifestError: The file is missing or not TOML, or a key is missing or has a bad value.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            table = tomllib.load(stream)
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{path}: not valid TOML: {error}") from error
    try:
        return _from_table(table, path.parent.resolve())
    except ManifestError as error:
        raise ManifestError(f"{path}: {error}") from None


def _from_table(table: Mapping[str, Any], directory: Path) -> ModelManifest:
    strings = {key: _string(table, key) for key in _STRINGS}
    sha256 = strings["sha256"].lower()
    if len(sha256) != 64 or any(char not in "0123456789abcdef" for char in sha256):
        raise ManifestError(f"sha256 must be 64 hex digits, got {strings['sha256']!r}")
    if Path(strings["file"]).is_absolute() or ".." in Path(strings["file"]).parts:
        raise ManifestError(f"file must be a path inside the model folder, got {strings['file']!r}")
    input_size = _positive_int(table, "input_size")
    resize = _positive_int(table, "resize")
    if resize < input_size:
        raise ManifestError(f"resize ({resize}) must be at least input_size ({input_size})")
    std = _triple(table, "std")
    if min(std) <= 0:
        raise ManifestError(f"std must be positive, got {list(std)}")
    return ModelManifest(
        name=strings["name"],
        version=strings["version"],
        file=strings["file"],
        sha256=sha256,
        source_package=strings["source_package"],
        source_version=strings["source_version"],
        license=strings["license"],
        input_name=strings["input_name"],
        output_name=strings["output_name"],
        input_size=input_size,
        resize=resize,
        resample=cast(Resample, _choice(table, "resample", get_args(Resample))),
        layout=cast(Layout, _choice(table, "layout", get_args(Layout))),
        color=cast(Color, _choice(table, "color", get_args(Color))),
        mean=_triple(table, "mean"),
        std=std,
        embedding_dim=_positive_int(table, "embedding_dim"),
        metric=cast(Metric, _choice(table, "metric", get_args(Metric))),
        description=strings["description"],
        directory=directory,
    )


def _value(table: Mapping[str, Any], key: str) -> Any:
    if key not in table:
        raise ManifestError(f"missing key {key!r}")
    return table[key]


def _string(table: Mapping[str, Any], key: str) -> str:
    value = _value(table, key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ManifestError(f"{key} must be a string, got {value!r}")
    text = str(value)
    if not text and key != "description":
        raise ManifestError(f"{key} must not be empty")
    return text


def _positive_int(table: Mapping[str, Any], key: str) -> int:
    value = _value(table, key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ManifestError(f"{key} must be a positive integer, got {value!r}")
    return value


def _choice(table: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _value(table, key)
    if value not in allowed:
        raise ManifestError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return cast(str, value)


def _triple(table: Mapping[str, Any], key: str) -> tuple[float, float, float]:
    value = _value(table, key)
    numbers = value if isinstance(value, list) else None
    if (
        numbers is None
        or len(numbers) != 3
        or any(isinstance(x, bool) or not isinstance(x, int | float) for x in numbers)
    ):
        raise ManifestError(f"{key} must be a list of 3 numbers, got {value!r}")
    return (float(numbers[0]), float(numbers[1]), float(numbers[2]))
