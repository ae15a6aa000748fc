"""The ranker plug point: a query and k in, a ranked tuple of corpus ids out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "Precomputed",
    "Query",
    "Ranker",
    "Ranking",
    "check_k",
    "fingerprint",
    "query_key",
    "query_rng",
]


@dataclass(frozen=True, slots=True)
class Query:
    """A search: either a decoded RGB image (H, W, 3) uint8, or the id of a corpus image."""

    image: npt.NDArray[np.uint8] | None = None
    corpus_id: str | None = None

    def __post_init__(self) -> None:
        if (self.image is None) == (self.corpus_id is None):
            raise ValueError("give exactly one of image or corpus_id")


@dataclass(frozen=True, slots=True)
class Ranking:
    """Corpus ids, best first, with their scores (higher is more similar)."""

    ids: tuple[str, ...]
    scores: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.scores):
            raise ValueError("scores must give one score per id")


@runtime_checkable
class Ranker(Protocol):
    """Anything that ranks the corpus for a query."""

    @property
    def name(self) -> str: ...

    def rank(self, query: Query, k: int) -> Ranking:
        """The top `k` corpus ids for `query`, best first. A corpus-id query excludes itself."""
        ...


@runtime_checkable
class Precomputed(Protocol):
    """A ranker that holds corpus-id rankings ready, found when its index was built."""

    def precomputed_ids(self, corpus_id: str, k: int) -> tuple[str, ...] | None:
        """The ids of ``rank(Query(corpus_id=corpus_id), k)``, without repeats, read without a
        search (cheap enough to call on an event loop: a row of a memory-mapped table, a page
        fault at worst); None when they are not held `k` deep.

        Raises:
            UnknownItemError: `corpus_id` is not in the corpus.
        """
        ...


def fingerprint(ranker: Ranker) -> str:
    """What a ranker's answers depend on, for keying cached rankings: its `fingerprint`
    attribute where it has one (the model and index files behind it, its parameters), else its
    name. Two rankers with the same fingerprint give the same rankings."""
    own = getattr(ranker, "fingerprint", None)
    return own if isinstance(own, str) else ranker.name


def check_k(k: int) -> int:
    """Return `k` if it is a positive integer.

    Raises:
        TypeError: `k` is not an integer.
        ValueError: `k` is not positive.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an integer, not {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return int(k)


def query_key(query: Query) -> bytes:
    """Stable bytes naming a query: its corpus id, or a hash of its image shape and pixels."""
    if query.corpus_id is not None:
        return b"id\0" + query.corpus_id.encode("utf-8")
    if query.image is None:  # Query's constructor makes this unreachable
        raise ValueError("query has neither an image nor a corpus id")
    pixels = np.ascontiguousarray(query.image)
    digest = hashlib.blake2b(pixels.data, digest_size=16)
    digest.update(repr((pixels.shape, pixels.dtype.str)).encode("ascii"))
    return b"image\0" + digest.digest()


def query_rng(salt: str, query: Query) -> np.random.Generator:
    """A generator seeded by blake2b(salt, query): the same salt and query draw the same numbers.

    Deliberately degraded rankers use it so their randomness is reproducible without global state.
    """
    salted = salt.encode("utf-8")
    digest = hashlib.blake2b(digest_size=16, person=b"braid-ranker")
    digest.update(len(salted).to_bytes(8, "little") + salted + query_key(query))
    return np.random.default_rng(int.from_bytes(digest.digest(), "little"))
