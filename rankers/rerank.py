"""`RerankRanker`: try a new model the same day, by re-ordering another ranker's top candidates.

A new model version normally costs a full re-embedding of the corpus before it can serve. A reranker
asks an existing ranker for its top-K candidates and re-orders only those by the new model's cosine
similarity, embedding just the candidates it has not seen (an LRU cache keeps them). Its results can
only be as good as the candidate pool lets them: `agreement` measures how often its top 10 matches
the full index ranking of the same model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rankers.base import Query, Ranker, Ranking, check_k, fingerprint
from rankers.corpus import Corpus
from rankers.embedder import Embedder
from rankers.images import check_rgb

__all__ = ["Agreement", "CacheInfo", "RerankRanker", "agreement"]


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """The reranker's embedding cache: lookups that hit, lookups that missed (and were embedded)."""

    hits: int
    misses: int
    size: int
    capacity: int


class RerankRanker:
    """Re-orders the top `top_k` candidates of another ranker by a (new) embedder's similarity.

    Scores are cosine similarities under the new embedder. Thread-safe.
    """

    __slots__ = (
        "_cache",
        "_candidates",
        "_capacity",
        "_corpus",
        "_embedder",
        "_hits",
        "_lock",
        "_misses",
        "_name",
        "_top_k",
    )

    def __init__(
        self,
        candidates: Ranker,
        embedder: Embedder,
        corpus: Corpus,
        top_k: int = 100,
        *,
        cache_size: int = 10_000,
        name: str | None = None,
    ) -> None:
        """Configure the reranker.

        Args:
            candidates: The ranker whose top results are re-ordered.
            embedder: The model that re-orders them.
            corpus: The corpus both rank.
            top_k: Candidates fetched per query (more when a query asks for more than `top_k`).
            cache_size: Corpus embeddings kept (least recently used go first).
            name: The ranker's name; defaults to ``"<model>@<candidates>"``.

        Raises:
            ValueError: `top_k` or `cache_size` is not positive.
        """
        self._top_k = check_k(top_k)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self._candidates = candidates
        self._embedder = embedder
        self._corpus = corpus
        self._capacity = cache_size
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._name = name or f"{embedder.name}@{candidates.name}"

    @property
    def name(self) -> str:
        """The ranker's name."""
        return self._name

    @property
    def fingerprint(self) -> str:
        """The re-ranking model, the depth and the candidates' fingerprint (see
        `rankers.base.fingerprint`)."""
        model = f"model {self._embedder.sha256} top {self._top_k}"
        return f"{self._name}|{model}|{fingerprint(self._candidates)}"

    def rank(self, query: Query, k: int) -> Ranking:
        """Fetch max(k, top_k) candidates, and return the `k` the embedder finds most similar.

        Raises:
            UnknownItemError: The query's corpus id is not in the corpus.
            ValueError: `k` is not positive.
        """
        k = check_k(k)
        pool = self._candidates.rank(query, max(k, self._top_k))
        if query.corpus_id is not None:
            target = self._vectors((query.corpus_id,))[0]
        else:
            target = self._embedder.embed(check_rgb(query.image, "query.image")[None])[0]
        if not pool.ids:
            return Ranking((), ())
        similarity = self._vectors(pool.ids) @ target
        order = np.argsort(-similarity, kind="stable")[:k]
        return Ranking(
            tuple(pool.ids[i] for i in order), tuple(float(similarity[i]) for i in order)
        )

    def cache_info(self) -> CacheInfo:
        """Hits and misses of the embedding cache so far."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._capacity)

    def _vectors(self, ids: Sequence[str]) -> npt.NDArray[np.float32]:
        for item in ids:
            self._corpus.index_of(item)  # unknown ids fail before any work
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self._lock:
            for item in ids:
                vector = self._cache.get(item)
                if vector is not None:
                    self._cache.move_to_end(item)
                    found[item] = vector
        missing = list(dict.fromkeys(item for item in ids if item not in found))
        if missing:
            images = [self._corpus.images[self._corpus.index_of(item)] for item in missing]
            embedded = self._embedder.embed(images)
            found.update(zip(missing, embedded, strict=True))
        with self._lock:
            self._hits += len(ids) - len(missing)
            self._misses += len(missing)
            for item in missing:
                self._cache[item] = found[item]
                self._cache.move_to_end(item)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return np.stack([found[item] for item in ids]).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"RerankRanker(name={self._name!r}, top_k={self._top_k})"


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far a ranker's top k agrees with a reference ranker's, over a set of queries.

    Attributes:
        queries: Queries compared.
        k: The cut-off.
        overlap: Mean fraction of the reference's top k that the ranker also returns in its top k.
        same_set: Fraction of queries whose two top-k sets are equal.
        same_order: Fraction of queries whose two top-k lists are equal, order included.
    """

    queries: int
    k: int
    overlap: float
    same_set: float
    same_order: float


def agreement(
    ranker: Ranker, reference: Ranker, queries: Iterable[Query], *, k: int = 10
) -> Agreement:
    """Compare `ranker`'s top `k` with `reference`'s on each query.

    Typically `ranker` is a `RerankRanker` with model B and `reference` the full-index
    `EmbeddingRanker` of model B: the overlap is the price of reranking a limited candidate pool.

    Raises:
        ValueError: `k` is not positive or there are no queries.
    """
    k = check_k(k)
    count = 0
    overlap = same_set = same_order = 0.0
    for query in queries:
        mine, theirs = ranker.rank(query, k).ids, reference.rank(query, k).ids
        count += 1
        overlap += len(set(mine) & set(theirs)) / max(len(theirs), 1)
        same_set += set(mine) == set(theirs)
        same_order += mine == theirs
    if count == 0:
        raise ValueError("queries must not be empty")
    return Agreement(count, k, overlap / count, same_set / count, same_order / count)
