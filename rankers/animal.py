"""The Animal-MNIST corpus: 10,000 animal silhouettes, 1,000 in each of 10 classes, 28 x 28 grey.

`fetch` runs ``pip download --no-deps animal-mnist==0.4`` with this interpreter's own pip (no root,
nothing installed), checks the wheel's sha256, keeps it in ``<cache>/data/pypi/`` (so it downloads
once) and reads the two gzipped pickles inside it with `zipfile`. The package is never imported or
installed: its loader imports TensorFlow. The pickles hold one numpy array each (images (10000, 28,
28) uint8 and labels (10000,) int64); they are read by `_ArrayUnpickler`, a restricted unpickler
that resolves only numpy's array reconstruction globals (``numpy.core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``) and refuses every other global, so a tampered pickle cannot run
code; a result that is not a plain integer array is refused too. The images are stored unchanged
(white silhouettes on black), grey repeated into RGB, with `rankers.corpus.write` in
``<cache>/data/animal-mnist/``.

Labels: every image has style ``"silhouette"``, concept and subcategory its class name (`CLASSES`;
label *i* is the *i*-th name, alphabetical as in the package description, checked by eye: label 0
is bears, 9 zebras) and category ``"animal"``. Ids are ``"animal/<class>/<n>"``, *n* counting
from 0 within the class in the package's order.

Grades on this single-style corpus: `Corpus.twins` is always empty (there is no other style), so
grade 2 never occurs; `Corpus.grade` is 1 for any image of the same class (the query itself
included) and 0 for other classes, so "relevant" means "same class". The MFT of `rankers.checks`
draws its positive from another style, so it finds no case on this corpus.

Licence (see ``rankers/CORPUS_LICENSES.md``): MIT, copyright 2025 SinaSR-6.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rankers import cache
from rankers.cache import file_sha256
from rankers.corpus import CORPUS_FILE, Corpus, read, write
from rankers.errors import RankerError

__all__ = [
    "CLASSES",
    "PACKAGE",
    "SHA256",
    "STYLE",
    "VERSION",
    "WHEEL",
    "corpus_dir",
    "fetch",
    "load",
    "read_wheel",
]

logger = logging.getLogger(__name__)

PACKAGE: Final = "animal-mnist"
"""The PyPI project."""

VERSION: Final = "0.4"
"""The pinned version."""

WHEEL: Final = "animal_mnist-0.4-py3-none-any.whl"
"""The file ``pip download`` writes for the pinned version."""

SHA256: Final = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
"""sha256 of `WHEEL`."""

CLASSES: Final = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
"""The class names, indexed by the package's integer labels."""

STYLE: Final = "silhouette"
"""The one style of the corpus."""

_NAME: Final = "animal-mnist"
_LICENSE: Final = "MIT (copyright 2025 SinaSR-6)"
_DATA_MEMBER: Final = "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz"
_LABEL_MEMBER: Final = "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz"
_SIDE: Final = 28
_MAX_MEMBER_BYTES: Final = 64 << 20  # the data pickle is 7.8 MB; refuse a decompression bomb


def corpus_dir() -> Path:
    """Where the Animal-MNIST corpus lives: ``<cache>/data/animal-mnist``."""
    return cache.data_dir() / _NAME


def load() -> Corpus:
    """Load the fetched Animal-MNIST corpus.

    Raises:
        RankerError: It has not been fetched (the message says how), or is damaged.
    """
    directory = corpus_dir()
    if not (directory / CORPUS_FILE).is_file():
        raise RankerError(
            f"the animal-mnist corpus is not fetched (no {directory / CORPUS_FILE}): run "
            "`python -m rankers fetch --corpus animal-mnist`"
        )
    return read(directory)


def fetch(*, python: str = sys.executable, force: bool = False) -> Path:
    """Download the pinned wheel (once) and build the Animal-MNIST corpus (once).

    Args:
        python: The interpreter whose pip downloads the wheel (this one by default).
        force: Rebuild the corpus even if it exists (the wheel is still reused if intact).

    Returns:
        The corpus folder.

    Raises:
        RankerError: pip fails, the wheel's checksum differs from the pinned one, or its data is
            not what this module expects.
    """
    directory = corpus_dir()
    if not force and (directory / CORPUS_FILE).is_file():
        logger.info("animal-mnist corpus already at %s", directory)
        return directory
    wheel = _download(cache.data_dir() / "pypi", python)
    pixels, labels = read_wheel(wheel)
    corpus = _build(pixels, labels)
    source = {
        "package": PACKAGE,
        "version": VERSION,
        "file": WHEEL,
        "sha256": SHA256,
        "style": STYLE,
        "license": _LICENSE,
    }
    write(corpus, directory, sources=[source])
    logger.info("wrote %d images to %s", len(corpus), directory)
    return directory


def read_wheel(path: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The images (N, 28, 28) uint8 and labels (N,) in the wheel at `path`, without importing it.

    Raises:
        RankerError: The wheel is unreadable, a pickle holds anything but an integer numpy array, or
            the arrays have the wrong shape, type or label values.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data = _member(archive, _DATA_MEMBER)
            label_data = _member(archive, _LABEL_MEMBER)
    except (OSError, zipfile.BadZipFile) as error:
        raise RankerError(f"cannot read {path}: {error}: delete it and fetch again") from error
    images = _unpickle_array(data, _DATA_MEMBER)
    labels = _unpickle_array(label_data, _LABEL_MEMBER)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE):
        raise RankerError(
            f"{_DATA_MEMBER} holds {images.dtype} {images.shape}, expected uint8 (N, 28, 28)"
        )
    if labels.dtype.kind not in "iu" or labels.shape != images.shape[:1]:
        raise RankerError(
            f"{_LABEL_MEMBER} holds {labels.dtype} {labels.shape}, "
            f"expected {images.shape[0]} integer labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise RankerError(f"{_LABEL_MEMBER} has labels outside 0..{len(CLASSES) - 1}")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise RankerError(f"{archive.filename} has no {name}") from None
    if info.file_size > _MAX_MEMBER_BYTES:
        raise RankerError(f"{name} in {archive.filename} is implausibly large")
    try:
        with archive.open(info) as stream, gzip.open(stream) as unzipped:
            data = unzipped.read(_MAX_MEMBER_BYTES + 1)
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise RankerError(f"{name} in {archive.filename} is unreadable: {error}") from error
    if len(data) > _MAX_MEMBER_BYTES:
        raise RankerError(f"{name} in {archive.filename} is implausibly large")
    return data


def _reconstructor() -> Callable[..., Any]:
    # ``numpy.core.multiarray._reconstruct`` under numpy 1, ``numpy._core...`` under numpy 2: ask
    # an array how it pickles itself rather than import a private module.
    reduced: Any = np.ndarray((0,), dtype=np.uint8).__reduce__()
    function: Callable[..., Any] = reduced[0]
    return function


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays only: every global but numpy's reconstruction helpers is refused."""

    _ALLOWED: Final[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstructor(),
        ("numpy._core.multiarray", "_reconstruct"): _reconstructor(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _unpickle_array(data: bytes, member: str) -> npt.NDArray[Any]:
    try:
        value = _ArrayUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as error:
        raise RankerError(f"{member} is not a plain numpy array pickle: {error}") from error
    if not isinstance(value, np.ndarray) or value.dtype.hasobject or value.dtype.kind not in "biu":
        raise RankerError(f"{member} does not hold an integer numpy array")
    array: npt.NDArray[Any] = value
    return array


def _build(pixels: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> Corpus:
    ids: list[str] = []
    names: list[str] = []
    files: list[str] = []
    seen = [0] * len(CLASSES)
    member = Path(_DATA_MEMBER).name
    for row, label in enumerate(labels.tolist()):
        name = CLASSES[label]
        ids.append(f"animal/{name}/{seen[label]}")
        seen[label] += 1
        names.append(name)
        files.append(f"{member}[{row}]")
    rgb = np.repeat(pixels[..., np.newaxis], 3, axis=3)
    return Corpus.from_arrays(
        _NAME,
        ids,
        rgb,
        styles=[STYLE] * len(ids),
        concepts=names,
        subcategories=names,
        categories=["animal"] * len(ids),
        files=files,
    )


def _download(downloads: Path, python: str) -> Path:
    path = downloads / WHEEL
    if path.is_file() and file_sha256(path) == SHA256:
        return path
    downloads.mkdir(parents=True, exist_ok=True)
    spec = f"{PACKAGE}=={VERSION}"
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as staging:
        command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "--quiet", "--dest", staging, spec]
        logger.info("pip download --no-deps %s", spec)
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)
        except FileNotFoundError as error:
            raise RankerError(f"cannot run {python}: {error}") from error
        except subprocess.CalledProcessError as error:
            lines = (error.stderr or "").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {error.returncode}"
            raise RankerError(f"`pip download {spec}` failed: {reason}") from error
        downloaded = Path(staging) / WHEEL
        if not downloaded.is_file():
            raise RankerError(f"`pip download {spec}` did not write {WHEEL}")
        actual = file_sha256(downloaded)
        if actual != SHA256:
            raise RankerError(
                f"{WHEEL} has sha256 {actual}, expected {SHA256}: "
                "the registry served different bytes for a pinned version"
            )
        os.replace(downloaded, path)
    return path
