"""`StaticRanker`: fixed rankings in memory, the reference implementation of the `Ranker` protocol.

Tests and the serving tests use it where a real model would only add time: every answer is known in
advance, so an experiment's outcome can be checked exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from rankers.base import Query, Ranking, check_k
from rankers.errors import UnknownItemError

__all__ = ["StaticRanker"]


class StaticRanker:
    """Ranks by fixed lists, then by corpus order.

    A corpus-id query gets its fixed list (if any), then every other corpus id in corpus order, with
    the query itself left out. An image query gets `image_ranking` (if any), then the rest in corpus
    order. Scores are ``1 / (1 + position)``.
    """

    __slots__ = ("_corpus_ids", "_image_ranking", "_known", "_name", "_rankings")

    def __init__(
        self,
        corpus_ids: Sequence[str],
        rankings: Mapping[str, Sequence[str]] | None = None,
        *,
        image_ranking: Sequence[str] = (),
        name: str = "static",
    ) -> None:
        """Fix the rankings.

        Args:
            corpus_ids: Every id of the corpus, in corpus order.
            rankings: For some query ids, the ids to put first, best first.
            image_ranking: The ids to put first for every image query.
            name: The ranker's name.

        Raises:
            ValueError: Ids repeat, or a ranking names an id outside `corpus_ids`.
        """
        self._corpus_ids = tuple(corpus_ids)
        self._known = frozenset(self._corpus_ids)
        if len(self._known) != len(self._corpus_ids):
            raise ValueError("corpus_ids must be unique")
        if not self._corpus_ids:
            raise ValueError("corpus_ids must not be empty")
        fixed = {
            query: self._check(f"rankings[{query!r}]", ids)
            for query, ids in (rankings or {}).items()
        }
        for query in fixed:
            if query not in self._known:
                raise ValueError(f"rankings has a query {query!r} outside corpus_ids")
        self._rankings = MappingProxyType(fixed)
        self._image_ranking = self._check("image_ranking", image_ranking)
        self._name = name

    @property
    def name(self) -> str:
        """The name given at construction."""
        return self._name

    @property
    def fingerprint(self) -> str:
        """The name and a digest of the fixed lists (see `rankers.base.fingerprint`)."""
        content = repr((self._corpus_ids, sorted(self._rankings.items()), self._image_ranking))
        return f"{self._name}|{hashlib.blake2b(content.encode(), digest_size=16).hexdigest()}"

    def rank(self, query: Query, k: int) -> Ranking:
        """The first `k` ids of the fixed list, then of corpus order, without the query's own id.

        Raises:
            UnknownItemError: The query's corpus id is not in the corpus.
            ValueError: `k` is not positive.
        """
        k = check_k(k)
        if query.corpus_id is None:
            first, skip = self._image_ranking, ""
        else:
            if query.corpus_id not in self._known:
                raise UnknownItemError(
                    f"no image {query.corpus_id!r} in the corpus of {self._name!r}"
                )
            first, skip = self._rankings.get(query.corpus_id, ()), query.corpus_id
        ids: list[str] = []
        seen = {skip}
        for item in (*first, *self._corpus_ids):
            if item not in seen:
                seen.add(item)
                ids.append(item)
                if len(ids) == k:
                    break
        return Ranking(tuple(ids), tuple(1.0 / (1 + position) for position in range(len(ids))))

    def _check(self, label: str, ids: Sequence[str]) -> tuple[str, ...]:
        ranked = tuple(ids)
        if len(set(ranked)) != len(ranked):
            raise ValueError(f"{label} repeats an id")
        unknown = [item for item in ranked if item not in self._known]
        if unknown:
            raise ValueError(f"{label} names ids outside corpus_ids: {unknown[:3]}")
        return ranked

    def __repr__(self) -> str:
        return f"StaticRanker(name={self._name!r}, corpus of {len(self._corpus_ids)})"
