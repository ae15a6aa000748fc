"""The rankers a simulation compares, and their ranked lists for every query, computed once.

A ranker is named by a spec: a model name (``"effnet-lite0"``, ``"pixels-16"``: an
`EmbeddingRanker` over that model's index of the corpus) optionally degraded with a suffix:
``"+noise=S"`` jitters positions by Gaussian noise of S positions (`rankers.NoisyRanker`),
``"+tail=K"`` keeps the top K and shuffles the rest (`rankers.ShuffledTailRanker`). Degraded
rankers are worse by construction, which gives experiments with known truth.

Simulated users query the same images many times, so each ranker's top-`depth` list for every
query is computed once (`ranking_table`) and cached under the cache folder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rankers.base import Query, Ranker, fingerprint
from rankers.cache import cache_root
from rankers.corpus import Corpus

__all__ = ["make_ranker", "ranking_table"]

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


def make_ranker(spec: str, corpus: Corpus, *, threads: int | None = None) -> Ranker:
    """Build the ranker a spec names (see the module docstring); its `name` is the spec.

    Raises:
        ValueError: The spec's suffix is not ``+noise=S`` or ``+tail=K``.
        rankers.UnknownItemError: The model is not registered.
    """
    from rankers.embedding_ranker import EmbeddingRanker
    from rankers.index import VectorIndex
    from rankers.indexing import ensure_index
    from rankers.models import load_embedder
    from rankers.noisy import NoisyRanker
    from rankers.shuffled_tail import ShuffledTailRanker

    model, _, suffix = spec.partition("+")
    embedder = load_embedder(model, threads=threads)
    directory = ensure_index(embedder, corpus, progress=True)
    index = VectorIndex.open(directory, model=embedder, corpus=corpus, view=True)
    base: Ranker = EmbeddingRanker(embedder, index, corpus, name=model)
    if not suffix:
        return base
    key, _, value = suffix.partition("=")
    try:
        if key == "noise":
            return NoisyRanker(base, float(value), salt=spec, name=spec)
        if key == "tail":
            return ShuffledTailRanker(base, int(value), salt=spec, name=spec)
    except ValueError as exc:
        raise ValueError(f"bad ranker spec {spec!r}: {exc}") from None
    raise ValueError(f"bad ranker spec {spec!r}: the suffix must be +noise=S or +tail=K")


def ranking_table(
    ranker: Ranker,
    corpus: Corpus,
    queries: Sequence[int] | IntArray,
    depth: int,
    *,
    cache: Path | None = None,
) -> IntArray:
    """Each query's top-`depth` corpus rows by `ranker` (a corpus-id query excludes itself).

    Args:
        ranker: The ranker.
        corpus: The corpus it ranks.
        queries: Corpus rows of the query images.
        depth: List length.
        cache: Folder for the cached table (default: the cache root's ``simulations``).

    Returns:
        (len(queries), depth) int64 corpus rows, -1 where a list is shorter.
    """
    rows = np.asarray(queries, dtype=np.int64)
    key = hashlib.blake2b(
        f"{fingerprint(ranker)}|{corpus.digest}|{depth}".encode() + rows.tobytes(), digest_size=10
    ).hexdigest()
    folder = cache if cache is not None else cache_root() / "simulations"
    path = folder / f"{_safe(ranker.name)}-{key}.npy"
    if path.exists():
        try:
            table: IntArray = np.load(path)
        except (OSError, ValueError, EOFError) as error:  # corrupt: built again below
            logger.warning("rebuilding the unreadable ranking cache %s: %s", path, error)
        else:
            if _plausible(table, len(rows), depth, len(corpus)):
                return table
            logger.warning("rebuilding the ranking cache %s: not a table of rankings", path)
    table = np.full((len(rows), depth), -1, dtype=np.int64)
    qs = [Query(corpus_id=corpus.ids[int(r)]) for r in rows]
    rank_many = getattr(ranker, "rank_many", None)
    if rank_many is not None:
        rankings = rank_many(qs, depth)
    else:
        rankings = tuple(ranker.rank(q, depth) for q in qs)
    for i, ranking in enumerate(rankings):
        found = [corpus.index_of(x) for x in ranking.ids[:depth]]
        table[i, : len(found)] = found
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, table)
    tmp.replace(path)
    logger.info("ranked %d queries with %s", len(rows), ranker.name)
    return table


def _plausible(table: np.ndarray, queries: int, depth: int, corpus_size: int) -> bool:
    """Whether a cached table can be a ranking table: its shape, integer rows of -1 or corpus
    rows, and no row one document over and over (a zeroed file is no ranking; a ranker may
    repeat a document now and then, never fill its whole list with one)."""
    if table.shape != (queries, depth) or table.dtype != np.int64:
        return False
    if table.size == 0:
        return True
    if table.min() < -1 or table.max() >= corpus_size:
        return False
    if depth < 2:
        return True
    same = (table == table[:, :1]).all(axis=1) & (table[:, 0] >= 0)
    return not bool(same.any())


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
