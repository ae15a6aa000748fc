"""The Fashion-MNIST corpus: 70,000 product photos in 10 classes, 28 x 28 grey, from Debian.

Fashion-MNIST is shipped by Debian's ``dataset-fashion-mnist`` package, which needs root to install
(``apt-get install dataset-fashion-mnist``); this module never installs anything. `fetch` asks
``dpkg-query -L dataset-fashion-mnist`` where the package put its four gzipped IDX files
(``train-images-idx3-ubyte.gz`` and the rest), reads them (magic number, big-endian sizes, raw
bytes), and writes the corpus, train images then test images, to ``<cache>/data/fashion-mnist/``
with `rankers.corpus.write`. Without the package it raises a one-line `RankerError` naming the
``apt-get`` command. The demo's default corpus (``emoji``) and ``animal-mnist`` need no root.

Labels: style ``"product-photo"``, concept and subcategory the class (`CLASSES`), category
``"fashion"``; ids ``"fashion/<class>/<n>"``, *n* counting from 0 within the class. As on
``animal-mnist`` (one style), `Corpus.twins` is empty and `Corpus.grade` is 1 for the same class.

Licence (see ``rankers/CORPUS_LICENSES.md``): MIT, copyright 2017 Zalando SE.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from rankers import cache
from rankers.cache import file_sha256
from rankers.corpus import CORPUS_FILE, Corpus, read, write
from rankers.errors import RankerError

__all__ = [
    "CLASSES",
    "DEBIAN_PACKAGE",
    "FILES",
    "STYLE",
    "build",
    "corpus_dir",
    "fetch",
    "find_files",
    "load",
    "read_idx",
]

logger = logging.getLogger(__name__)

DEBIAN_PACKAGE: Final = "dataset-fashion-mnist"
"""The Debian package that ships the data."""

FILES: Final = (
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)
"""The (images, labels) file pairs, in the order the corpus stores them."""

CLASSES: Final = (
    "t-shirt-top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
"""The class names, indexed by the integer labels (Fashion-MNIST's README)."""

STYLE: Final = "product-photo"
"""The one style of the corpus."""

_NAME: Final = "fashion-mnist"
_LICENSE: Final = "MIT (copyright 2017 Zalando SE)"
_IMAGES_MAGIC: Final = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC: Final = 0x00000801  # unsigned bytes, 1 dimension
_INSTALL: Final = f"`apt-get install {DEBIAN_PACKAGE}` (as root)"


def corpus_dir() -> Path:
    """Where the Fashion-MNIST corpus lives: ``<cache>/data/fashion-mnist``."""
    return cache.data_dir() / _NAME


def load() -> Corpus:
    """Load the fetched Fashion-MNIST corpus.

    Raises:
        RankerError: It has not been fetched (the message says how), or is damaged.
    """
    directory = corpus_dir()
    if not (directory / CORPUS_FILE).is_file():
        raise RankerError(
            f"the fashion-mnist corpus is not fetched (no {directory / CORPUS_FILE}): run "
            f"`python -m rankers fetch --corpus fashion-mnist` (needs {_INSTALL})"
        )
    return read(directory)


def find_files(dpkg_query: str = "dpkg-query") -> dict[str, Path]:
    """The installed Fashion-MNIST files by base name, as ``dpkg-query -L`` lists them.

    Raises:
        RankerError: dpkg is missing, the package is not installed, or a file is missing.
    """
    executable = shutil.which(dpkg_query)
    if executable is None:
        raise RankerError(f"fashion-mnist needs Debian's {DEBIAN_PACKAGE}: {_INSTALL}")
    listing = subprocess.run(
        [executable, "-L", DEBIAN_PACKAGE], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise RankerError(f"fashion-mnist needs Debian's {DEBIAN_PACKAGE}: {_INSTALL}")
    wanted = {name for pair in FILES for name in pair}
    found = {
        Path(line).name: Path(line)
        for line in listing.stdout.splitlines()
        if Path(line).name in wanted and Path(line).is_file()
    }
    missing = sorted(wanted - found.keys())
    if missing:
        raise RankerError(
            f"{DEBIAN_PACKAGE} is installed but lacks {', '.join(missing)}: reinstall it"
        )
    return found


def fetch(*, force: bool = False, files: Mapping[str, Path] | None = None) -> Path:
    """Build the Fashion-MNIST corpus (once) from the files of the Debian package.

    Args:
        force: Rebuild the corpus even if it exists.
        files: The IDX files by base name; by default `find_files`.

    Returns:
        The corpus folder.

    Raises:
        RankerError: The Debian package is not installed (the message names the command), or a
            file is not valid IDX data.
    """
    directory = corpus_dir()
    if not force and (directory / CORPUS_FILE).is_file():
        logger.info("fashion-mnist corpus already at %s", directory)
        return directory
    paths = dict(find_files() if files is None else files)
    corpus = build(paths)
    sources = [
        {
            "package": DEBIAN_PACKAGE,
            "file": name,
            "sha256": file_sha256(paths[name]),
            "license": _LICENSE,
        }
        for pair in FILES
        for name in pair
    ]
    write(corpus, directory, sources=sources)
    logger.info("wrote %d images to %s", len(corpus), directory)
    return directory


def build(files: Mapping[str, Path]) -> Corpus:
    """The corpus of the IDX files in `files` (by base name, every name of `FILES`).

    Raises:
        RankerError: A file is missing or is not valid IDX data of 28 x 28 images and 0..9 labels.
    """
    pixels: list[npt.NDArray[np.uint8]] = []
    labels: list[npt.NDArray[np.uint8]] = []
    for images_name, labels_name in FILES:
        try:
            images_path, labels_path = files[images_name], files[labels_name]
        except KeyError as error:
            raise RankerError(f"missing Fashion-MNIST file {error.args[0]}") from None
        images = read_idx(images_path, _IMAGES_MAGIC)
        classes = read_idx(labels_path, _LABELS_MAGIC)
        if images.shape[1:] != (28, 28) or classes.shape != images.shape[:1]:
            raise RankerError(
                f"{images_path.name} {images.shape} and {labels_path.name} {classes.shape} "
                "do not hold one label per 28 x 28 image"
            )
        if classes.size and classes.max() >= len(CLASSES):
            raise RankerError(f"{labels_path.name} has labels outside 0..{len(CLASSES) - 1}")
        pixels.append(images)
        labels.append(classes)
    grey = np.concatenate(pixels)
    ids: list[str] = []
    names: list[str] = []
    seen = [0] * len(CLASSES)
    for label in np.concatenate(labels).tolist():
        ids.append(f"fashion/{CLASSES[label]}/{seen[label]}")
        seen[label] += 1
        names.append(CLASSES[label])
    file_of = [name for (name, _), part in zip(FILES, pixels, strict=True) for _ in part]
    return Corpus.from_arrays(
        _NAME,
        ids,
        np.repeat(grey[..., np.newaxis], 3, axis=3),
        styles=[STYLE] * len(ids),
        concepts=names,
        subcategories=names,
        categories=["fashion"] * len(ids),
        files=file_of,
    )


def read_idx(path: Path, magic: int) -> npt.NDArray[np.uint8]:
    """The unsigned-byte array of a gzipped IDX file whose magic number must be `magic`.

    Raises:
        RankerError: The file is unreadable, has another magic number, or the wrong length.
    """
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as error:
        raise RankerError(f"cannot read {path}: {error}") from error
    dimensions = magic & 0xFF
    header = 4 + 4 * dimensions
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise RankerError(f"{path} is not an IDX file of magic {magic:#010x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise RankerError(f"{path} has {len(data)} bytes, its header says {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
