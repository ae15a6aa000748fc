"""`EmbeddingRanker`: the nearest neighbours of a query's embedding in a model's corpus index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from rankers.base import Query, Ranking, check_k
from rankers.corpus import Corpus
from rankers.embedder import Embedder
from rankers.errors import ManifestError
from rankers.images import check_rgb
from rankers.index import VectorIndex

__all__ = ["EmbeddingRanker"]


class EmbeddingRanker:
    """Ranks the corpus by cosine similarity to the query, using an embedder and its index.

    A corpus-id query leaves itself out of the results. Up to the depth of the index's neighbour
    table it is a row lookup (`precomputed`); deeper, the index is searched with the vector it
    stores (no model run). An image query is embedded. Scores are cosine similarities.
    """

    __slots__ = ("_corpus", "_embedder", "_index", "_name")

    def __init__(
        self,
        embedder: Embedder,
        index: VectorIndex,
        corpus: Corpus,
        *,
        name: str | None = None,
    ) -> None:
        """Combine a model, its index and the corpus the index covers.

        Args:
            embedder: The model that built `index`.
            index: The index, keys = corpus rows.
            corpus: The corpus `index` covers.
            name: The ranker's name; defaults to the model's.

        Raises:
            ManifestError: `index` was built by another model version or over another corpus.
        """
        built = index.manifest
        if (built.model, built.model_version, built.model_sha256) != (
            embedder.name,
            str(embedder.version),
            embedder.sha256,
        ):
            raise ManifestError(
                f"the index was built by {built.model} version {built.model_version}, "
                f"not {embedder.name} version {embedder.version}"
            )
        if built.corpus_digest != corpus.digest or built.count != len(corpus):
            raise ManifestError(f"the index covers corpus {built.corpus}, not this {corpus.name}")
        self._embedder = embedder
        self._index = index
        self._corpus = corpus
        self._name = name or embedder.name

    @property
    def name(self) -> str:
        """The ranker's name (the model's, unless given)."""
        return self._name

    @property
    def embedder(self) -> Embedder:
        """The model."""
        return self._embedder

    @property
    def fingerprint(self) -> str:
        """The name, the model's sha256 and the index's, with its neighbour table's (see
        `rankers.base.fingerprint`: a table answers corpus-id queries in place of a search)."""
        built = self._index.manifest
        index = built.index_sha256 or f"unsaved {built.built_at}"
        table = f"|table {built.neighbours_sha256}" if built.neighbours_sha256 else ""
        return f"{self._name}|model {self._embedder.sha256}|index {index}{table}"

    @property
    def index(self) -> VectorIndex:
        """The index."""
        return self._index

    @property
    def corpus(self) -> Corpus:
        """The corpus."""
        return self._corpus

    def query_vector(self, query: Query) -> npt.NDArray[np.float32]:
        """The query's embedding: the stored vector of a corpus id, or the image embedded now.

        Raises:
            UnknownItemError: The corpus id is not in the corpus.
        """
        if query.corpus_id is not None:
            return self._index.vector(self._corpus.index_of(query.corpus_id))
        image = check_rgb(query.image, "query.image")
        vector: npt.NDArray[np.float32] = self._embedder.embed(image[None])[0]
        return vector

    def precomputed(self, corpus_id: str, k: int) -> Ranking | None:
        """A corpus id's top `k` from the index's neighbour table; None when it is not `k` deep.

        Raises:
            UnknownItemError: `corpus_id` is not in the corpus.
            ValueError: `k` is not positive.
        """
        found = self._index.neighbour_lists(self._corpus.index_of(corpus_id), check_k(k))
        if found is None:
            return None
        ids = self._corpus.ids
        return Ranking(tuple([ids[key] for key in found[0]]), tuple(found[1]))

    def precomputed_ids(self, corpus_id: str, k: int) -> tuple[str, ...] | None:
        """`precomputed`'s ids alone (what a server shows), without repeats: a graph search
        finds each corpus row once, and the table leaves the query's own row out.

        Raises:
            UnknownItemError: `corpus_id` is not in the corpus.
            ValueError: `k` is not positive.
        """
        keys = self._index.neighbour_keys(self._corpus.index_of(corpus_id), check_k(k))
        if keys is None:
            return None
        ids = self._corpus.ids
        return tuple([ids[key] for key in keys])

    def rank(self, query: Query, k: int) -> Ranking:
        """The `k` most similar corpus images (fewer only if the corpus is smaller).

        Raises:
            UnknownItemError: The query's corpus id is not in the corpus.
            ValueError: `k` is not positive.
        """
        return self.rank_many((query,), k)[0]

    def rank_many(
        self, queries: Sequence[Query], k: int, *, threads: int = 0
    ) -> tuple[Ranking, ...]:
        """`rank` for many queries: corpus ids within the neighbour table's depth are read from
        it, the others take one batched index search.

        Args:
            queries: The queries.
            k: Results per query.
            threads: usearch threads for the batch (0: all).
        """
        k = check_k(k)
        if not queries:
            return ()
        rankings: list[Ranking | None] = [
            None if query.corpus_id is None else self.precomputed(query.corpus_id, k)
            for query in queries
        ]
        todo = [row for row, ranking in enumerate(rankings) if ranking is None]
        if not todo:
            return tuple(ranking for ranking in rankings if ranking is not None)
        own = [
            -1 if query.corpus_id is None else self._corpus.index_of(query.corpus_id)
            for query in (queries[row] for row in todo)
        ]
        vectors = np.empty((len(todo), self._index.dim), dtype=np.float32)
        images = [i for i, key in enumerate(own) if key < 0]
        for i, key in enumerate(own):
            if key >= 0:
                vectors[i] = self._index.vector(key)
        if images:
            frames = [check_rgb(queries[todo[i]].image, "query.image") for i in images]
            vectors[images] = self._embedder.embed(frames)
        fetch = min(k + 1, len(self._corpus))
        keys, scores = self._index.search(vectors, fetch, threads=threads)
        for i, key in enumerate(own):
            keep = (keys[i] >= 0) & (keys[i] != key)
            ids = tuple(self._corpus.ids[int(found)] for found in keys[i][keep][:k])
            rankings[todo[i]] = Ranking(ids, tuple(float(s) for s in scores[i][keep][:k]))
        return tuple(ranking for ranking in rankings if ranking is not None)

    def __repr__(self) -> str:
        return f"EmbeddingRanker(name={self._name!r}, corpus={self._corpus.name!r})"
