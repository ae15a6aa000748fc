"""Build the corpus and rankers a configuration names (the slow part of start-up)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, cast

import numpy as np

from rankers import RankerError
from rankers import corpus as corpora
from rankers.base import Ranker
from rankers.corpus import Corpus
from serving.config import Config, CorpusConfig, RankerConfig
from serving.errors import ConfigError

if TYPE_CHECKING:
    from rankers.embedder import SessionPool

__all__ = ["check_rankers", "load_corpus", "load_ranker", "load_rankers"]

logger = logging.getLogger(__name__)

_AUTO_SESSIONS: Final = 4
"""Most onnxruntime sessions a model gets when its ranker does not set `threads`."""


def load_corpus(config: CorpusConfig) -> Corpus:
    """The configured corpus.

    Raises:
        ConfigError: It is unknown, not fetched or unreadable (the message says how to fix it).
    """
    try:
        if config.path is not None:
            return corpora.read(config.path)
        return corpora.load(config.name or "emoji")
    except RankerError as error:
        raise ConfigError(f"corpus: {error}") from error


def load_ranker(
    config: RankerConfig, corpus: Corpus, *, pools: dict[int, SessionPool] | None = None
) -> Ranker:
    """Build one configured ranker over `corpus`; an embedding ranker's index is built if it
    is missing or stale (logged, since it takes about a minute per model on 2 cores).

    Args:
        config: The ranker's configuration.
        corpus: The corpus it ranks.
        pools: Session pools by size, shared by the rankers built with the same dict: a model
            run as n one-thread sessions runs them on the pool of n workers (made here when
            missing), with the other models of that size. None: each model has threads of
            its own.

    Raises:
        ConfigError: The model is unknown, or its files or index cannot be used.
    """
    if config.kind == "static":
        from rankers.static import StaticRanker

        order = list(corpus.ids)
        if config.seed is not None:
            permutation = np.random.default_rng(config.seed).permutation(len(order))
            order = [order[i] for i in permutation]
        try:
            return StaticRanker(
                order,
                config.rankings,
                image_ranking=config.image_ranking,
                name=config.name,
            )
        except ValueError as error:
            raise ConfigError(f"rankers.{config.name}: {error}") from error
    from rankers import indexing, models
    from rankers.embedder import (
        Embedder,
        OnnxEmbedder,
        ReplicatedEmbedder,
        SessionPool,
        default_threads,
    )
    from rankers.embedding_ranker import EmbeddingRanker
    from rankers.errors import ManifestError
    from rankers.index import VectorIndex

    assert config.model is not None  # the config parser requires it
    try:
        # The rankers of an interleaving run at once on the same cores: one-thread sessions,
        # one per thread asked for, each embedding a share of a batch (see ReplicatedEmbedder:
        # on 2 cores this serves 5-15% more uploads than one multi-threaded session a model).
        # Models of the same size share a pool of that many workers (see SessionPool: no
        # more sessions compute at once than there are threads, and none waits on a batch's
        # slowest share while the other model has work: 5% more uploads again).
        # Unset, up to _AUTO_SESSIONS: each session holds its own copy of the model's memory.
        threads = config.threads or min(default_threads(), _AUTO_SESSIONS)
        embedder: Embedder = models.load_embedder(config.model, threads=1, spin=False)
        if isinstance(embedder, OnnxEmbedder) and threads > 1:
            sessions = [embedder] + [
                models.load_embedder(config.model, threads=1, spin=False)
                for _ in range(threads - 1)
            ]
            pool = None
            if pools is not None:
                pool = pools.get(threads) or pools.setdefault(
                    threads, SessionPool(threads, name=f"sessions{threads}")
                )
            embedder = ReplicatedEmbedder(cast(list[OnnxEmbedder], sessions), pool=pool)
        directory = config.index or indexing.index_dir(embedder.name, corpus.name)
        try:
            index = VectorIndex.open(directory, model=embedder, corpus=corpus)
        except ManifestError as reason:
            logger.warning(
                "ranker %s: building the %s index of corpus %s in %s (%s); this takes about "
                "a minute per model on 2 cores, once",
                config.name,
                embedder.name,
                corpus.name,
                directory,
                reason,
            )
            started = time.perf_counter()
            indexing.build(embedder, corpus, directory)
            logger.warning(
                "ranker %s: index built in %.0f s", config.name, time.perf_counter() - started
            )
            index = VectorIndex.open(directory, model=embedder, corpus=corpus)
        if not index.manifest.settings.neighbours:
            logger.info(
                "ranker %s: the index in %s has no neighbour table, so each first search by "
                "corpus id walks the graph (`python -m rankers index` builds one)",
                config.name,
                directory,
            )
        return EmbeddingRanker(embedder, index, corpus, name=config.name)
    except RankerError as error:
        raise ConfigError(f"rankers.{config.name}: {error}") from error


def load_rankers(
    config: Config, corpus: Corpus, *, pools: dict[int, SessionPool] | None = None
) -> dict[str, Ranker]:
    """Every configured ranker, by name (`pools` as in `load_ranker`)."""
    return {
        name: load_ranker(ranker, corpus, pools=pools) for name, ranker in config.rankers.items()
    }


def check_rankers(rankers: Mapping[str, Ranker]) -> None:
    """Refuse objects that do not implement the `Ranker` protocol."""
    for name, ranker in rankers.items():
        if not isinstance(ranker, Ranker):
            raise TypeError(f"rankers[{name!r}] does not implement rankers.base.Ranker")
