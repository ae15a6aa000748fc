"""Labelled image corpora: the images rankers rank, and grades that say which answers are right.

A `Corpus` is a set of same-sized RGB images, each with an id (``"google/1f600"``), a style (the
vendor that drew it), a concept (what it depicts: the emoji's Unicode code points) and a category
and subcategory. A query's relevant answers are graded:

- 2: the same concept in another style (the answer a cross-style search must find);
- 1: the same subcategory (a related picture);
- 0: anything else.

Corpora are registered by name (`register`), and stored on disk as ``images.npy`` (N, H, W, 3)
uint8, ``items.parquet`` (one row per image) and ``corpus.json`` (name, count, digest, sources),
written last so its presence marks a complete corpus. The bundled corpus is ``"emoji"`` (see
`rankers.emoji`), fetched by ``python -m rankers fetch`` (``make data``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rankers.errors import RankerError, UnknownItemError

__all__ = [
    "CORPUS_FILE",
    "Corpus",
    "CorpusLoader",
    "load",
    "names",
    "read",
    "register",
    "write",
]

CORPUS_FILE: Final = "corpus.json"
"""The file whose presence marks a complete corpus folder; written last."""

_IMAGES_FILE: Final = "images.npy"
_ITEMS_FILE: Final = "items.parquet"
_FORMAT: Final = 1

CorpusLoader = Callable[[], "Corpus"]
"""Loads a registered corpus; raises `RankerError` saying how to get it when it is missing."""

_LOADERS: dict[str, CorpusLoader] = {}


@dataclass(frozen=True, slots=True, eq=False)
class Corpus:
    """A labelled image corpus held in memory.

    Attributes:
        name: The corpus name, as registered (``"emoji"``).
        ids: One unique id per image, ``"<style>/<concept file stem>"`` for the emoji corpus.
        images: (N, H, W, 3) uint8 RGB, read-only.
        styles: The style (vendor) of each image.
        concepts: What each image depicts; images of one concept in different styles are twins.
        subcategories: The subcategory of each image (``"face-smiling"``).
        categories: The category of each image (``"Smileys & Emotion"``).
        files: The source file name of each image (empty strings for synthetic corpora).
        digest: sha256 of the content (ids, labels and pixels, not the name); indexes record it.
    """

    name: str
    ids: tuple[str, ...]
    images: npt.NDArray[np.uint8]
    styles: tuple[str, ...]
    concepts: tuple[str, ...]
    subcategories: tuple[str, ...]
    categories: tuple[str, ...]
    files: tuple[str, ...]
    digest: str = field(init=False)
    _positions: Mapping[str, int] = field(init=False, repr=False)
    _by_concept: Mapping[str, tuple[int, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be a non-empty string")
        images = self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise TypeError("images must be a uint8 numpy array")
        if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3]) < 1:
            raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
        count = images.shape[0]
        if count < 1:
            raise ValueError("a corpus needs at least one image")
        columns = {
            "ids": self.ids,
            "styles": self.styles,
            "concepts": self.concepts,
            "subcategories": self.subcategories,
            "categories": self.categories,
            "files": self.files,
        }
        for column, values in columns.items():
            if not isinstance(values, tuple):
                raise TypeError(f"{column} must be a tuple, not {type(values).__name__}")
            if len(values) != count:
                raise ValueError(f"{column} has {len(values)} entries for {count} images")
        positions = {item: position for position, item in enumerate(self.ids)}
        if len(positions) != count:
            raise ValueError("ids must be unique")
        if images.flags.writeable:
            images = images.copy()
            images.setflags(write=False)
            object.__setattr__(self, "images", images)
        by_concept: dict[str, list[int]] = {}
        for position, concept in enumerate(self.concepts):
            by_concept.setdefault(concept, []).append(position)
        object.__setattr__(self, "_positions", MappingProxyType(positions))
        object.__setattr__(
            self,
            "_by_concept",
            MappingProxyType({concept: tuple(rows) for concept, rows in by_concept.items()}),
        )
        object.__setattr__(self, "digest", _digest(images, columns))

    @classmethod
    def from_arrays(
        cls,
        name: str,
        ids: Sequence[str],
        images: npt.NDArray[np.uint8],
        *,
        styles: Sequence[str],
        concepts: Sequence[str],
        subcategories: Sequence[str],
        categories: Sequence[str] | None = None,
        files: Sequence[str] | None = None,
    ) -> Corpus:
        """Build an in-memory corpus, for tests and small experiments.

        Args:
            name: The corpus name.
            ids: One unique id per image.
            images: (N, H, W, 3) uint8 RGB; copied if writable.
            styles: The style of each image.
            concepts: The concept of each image.
            subcategories: The subcategory of each image.
            categories: The category of each image; defaults to the subcategory.
            files: The source file of each image; defaults to empty strings.

        Returns:
            The corpus.

        Raises:
            TypeError: `images` is not a uint8 array.
            ValueError: Shapes or lengths disagree, or ids repeat.
        """
        count = len(ids)
        return cls(
            name=name,
            ids=tuple(ids),
            images=np.asarray(images),
            styles=tuple(styles),
            concepts=tuple(concepts),
            subcategories=tuple(subcategories),
            categories=tuple(subcategories if categories is None else categories),
            files=tuple([""] * count if files is None else files),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._positions

    def index_of(self, item_id: str) -> int:
        """The row of `item_id` in `ids` and `images`.

        Raises:
            UnknownItemError: `item_id` is not in this corpus.
        """
        try:
            return self._positions[item_id]
        except KeyError:
            raise UnknownItemError(f"no image {item_id!r} in corpus {self.name!r}") from None

    def image(self, item_id: str) -> npt.NDArray[np.uint8]:
        """The (H, W, 3) uint8 image of `item_id` (a read-only view).

        Raises:
            UnknownItemError: `item_id` is not in this corpus.
        """
        image: npt.NDArray[np.uint8] = self.images[self.index_of(item_id)]
        return image

    def twins(self, item_id: str) -> tuple[str, ...]:
        """The ids of the same concept in other styles (the grade-2 answers for `item_id`).

        Raises:
            UnknownItemError: `item_id` is not in this corpus.
        """
        row = self.index_of(item_id)
        style = self.styles[row]
        return tuple(
            self.ids[other]
            for other in self._by_concept[self.concepts[row]]
            if self.styles[other] != style
        )

    def grade(self, query_id: str, doc_id: str) -> int:
        """How relevant `doc_id` is as an answer to the query image `query_id`.

        Returns:
            2 for the same concept in another style, 1 for the same subcategory (including the same
            concept in the same style), 0 otherwise.

        Raises:
            UnknownItemError: Either id is not in this corpus.
        """
        query, doc = self.index_of(query_id), self.index_of(doc_id)
        if self.concepts[query] == self.concepts[doc] and self.styles[query] != self.styles[doc]:
            return 2
        return 1 if self.subcategories[query] == self.subcategories[doc] else 0


def register(name: str, loader: CorpusLoader) -> None:
    """Make a corpus loadable by name.

    Raises:
        ValueError: `name` is empty or already registered.
    """
    if not name:
        raise ValueError("name must be a non-empty string")
    if name in _LOADERS:
        raise ValueError(f"a corpus named {name!r} is already registered")
    _LOADERS[name] = loader


def names() -> tuple[str, ...]:
    """The registered corpus names, sorted (registered, not necessarily fetched)."""
    return tuple(sorted(_LOADERS))


def load(name: str = "emoji") -> Corpus:
    """Load a registered corpus.

    Raises:
        UnknownItemError: No corpus is registered under `name`.
        RankerError: The corpus has not been fetched; the message says how to fetch it.
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        known = ", ".join(names()) or "none"
        raise UnknownItemError(f"no corpus named {name!r} (known: {known})") from None
    return loader()


def write(
    corpus: Corpus, directory: str | os.PathLike[str], *, sources: Sequence[Any] = ()
) -> Path:
    """Store `corpus` in `directory`, replacing what was there only once everything is written.

    Args:
        corpus: The corpus to store.
        directory: The corpus folder (created; its parent must be writable).
        sources: JSON-serialisable provenance (packages, versions, checksums) kept in
            ``corpus.json``.

    Returns:
        The corpus folder.
    """
    import polars as pl

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        np.save(staging / _IMAGES_FILE, np.ascontiguousarray(corpus.images))
        pl.DataFrame(
            {
                "id": corpus.ids,
                "style": corpus.styles,
                "concept": corpus.concepts,
                "category": corpus.categories,
                "subcategory": corpus.subcategories,
                "file": corpus.files,
            },
            schema=dict.fromkeys(_COLUMNS, pl.String),
        ).write_parquet(staging / _ITEMS_FILE)
        meta = {
            "format": _FORMAT,
            "name": corpus.name,
            "count": len(corpus),
            "image_shape": list(corpus.images.shape[1:]),
            "digest": corpus.digest,
            "sources": list(sources),
        }
        (staging / CORPUS_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read(directory: str | os.PathLike[str]) -> Corpus:
    """Load a corpus folder written by `write` (cached while ``corpus.json`` is unchanged).

    Raises:
        RankerError: The folder is missing, incomplete or does not match its recorded digest.
    """
    directory = Path(directory).resolve()
    marker = directory / CORPUS_FILE
    try:
        stamp = marker.stat().st_mtime_ns
    except OSError:
        raise RankerError(f"no corpus at {directory} (missing {CORPUS_FILE})") from None
    return _read_cached(directory, stamp)


_COLUMNS: Final = ("id", "style", "concept", "category", "subcategory", "file")


@functools.lru_cache(maxsize=4)
def _read_cached(directory: Path, stamp: int) -> Corpus:
    import polars as pl

    del stamp  # part of the cache key only
    try:
        meta = json.loads((directory / CORPUS_FILE).read_text(encoding="utf-8"))
        images = np.load(directory / _IMAGES_FILE, mmap_mode="r", allow_pickle=False)
        items = pl.read_parquet(directory / _ITEMS_FILE, columns=list(_COLUMNS))
    except (OSError, ValueError, json.JSONDecodeError, pl.exceptions.PolarsError) as error:
        raise RankerError(f"corpus at {directory} is unreadable: {error}") from error
    columns = {name: tuple(items.get_column(name).to_list()) for name in _COLUMNS}
    try:
        corpus = Corpus(
            name=str(meta["name"]),
            ids=columns["id"],
            images=images,
            styles=columns["style"],
            concepts=columns["concept"],
            subcategories=columns["subcategory"],
            categories=columns["category"],
            files=columns["file"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RankerError(f"corpus at {directory} is malformed: {error}") from error
    if corpus.digest != meta.get("digest"):
        raise RankerError(
            f"corpus at {directory} does not match its recorded digest: delete it and fetch again"
        )
    return corpus


def _digest(images: npt.NDArray[np.uint8], columns: Mapping[str, tuple[str, ...]]) -> str:
    digest = hashlib.sha256(b"braid-corpus-v1\n")
    labels = {name: list(values) for name, values in columns.items() if name != "files"}
    digest.update(json.dumps(labels, sort_keys=True, ensure_ascii=True).encode("ascii"))
    digest.update(json.dumps(list(images.shape)).encode("ascii"))
    # Hash in slices so a memory-mapped corpus is never copied whole.
    for start in range(0, images.shape[0], 1024):
        digest.update(np.ascontiguousarray(images[start : start + 1024]).data)
    return digest.hexdigest()


def _load_emoji() -> Corpus:
    from rankers import emoji

    return emoji.load()


def _load_animal() -> Corpus:
    from rankers import animal

    return animal.load()


def _load_fashion() -> Corpus:
    from rankers import fashion

    return fashion.load()


register("emoji", _load_emoji)
register("animal-mnist", _load_animal)
register("fashion-mnist", _load_fashion)
