"""`NoisyRanker`: a base ranker with its order jittered, a deliberately worse ranker of known harm.

Each of the base ranker's top results moves from its position i to ``i + noise * z`` with z standard
normal, and the results are re-sorted by the moved positions. ``noise = 0`` is the base ranker;
larger values push worse results up more often. The z are drawn from a generator seeded by
``blake2b(salt, query)`` (`rankers.base.query_rng`), so a query always gets the same ranking, and
two salts give two independent degradations.
"""

from __future__ import annotations

import math

import numpy as np

from rankers.base import Query, Ranker, Ranking, check_k, fingerprint, query_rng

__all__ = ["NoisyRanker"]


class NoisyRanker:
    """Re-sorts the base ranker's top `pool` results by position plus Gaussian noise.

    Scores are the base ranking's scores by position (so they stay in descending order); they no
    longer describe the item at that position.
    """

    __slots__ = ("_base", "_name", "_noise", "_pool", "_salt")

    def __init__(
        self, base: Ranker, noise: float, salt: str, *, pool: int = 50, name: str | None = None
    ) -> None:
        """Configure the degradation.

        Args:
            base: The ranker to degrade.
            noise: Standard deviation of the jitter, in positions (>= 0).
            salt: Distinguishes independent degradations of the same base.
            pool: Base results jittered per query (at least k are always fetched).
            name: The ranker's name; defaults to ``"<base>+noise<noise>"``.

        Raises:
            ValueError: `noise` is negative or not finite, or `pool` is not positive.
        """
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        self._base = base
        self._noise = float(noise)
        self._salt = salt
        self._pool = check_k(pool)
        self._name = name or f"{base.name}+noise{noise:g}"

    @property
    def name(self) -> str:
        """The ranker's name."""
        return self._name

    @property
    def fingerprint(self) -> str:
        """The parameters and the base ranker's fingerprint (see `rankers.base.fingerprint`)."""
        parameters = f"noise {self._noise!r} salt {self._salt!r} pool {self._pool}"
        return f"{self._name}|{parameters}|{fingerprint(self._base)}"

    def rank(self, query: Query, k: int) -> Ranking:
        """The top `k` after jittering the base ranker's top max(k, pool).

        Raises:
            UnknownItemError: The query's corpus id is not in the corpus.
            ValueError: `k` is not positive.
        """
        k = check_k(k)
        base = self._base.rank(query, max(k, self._pool))
        jitter = query_rng(self._salt, query).standard_normal(len(base.ids))
        moved = np.arange(len(base.ids)) + self._noise * jitter
        order = np.argsort(moved, kind="stable")[:k]
        return Ranking(tuple(base.ids[i] for i in order), base.scores[: len(order)])

    def __repr__(self) -> str:
        return f"NoisyRanker(name={self._name!r}, noise={self._noise}, salt={self._salt!r})"
