"""`ShuffledTailRanker`: a base ranker whose results after the first `keep` come in random order.

The top `keep` results are the base ranker's; the rest of the top k are the base ranker's next
results shuffled by a permutation seeded by ``blake2b(salt, query)`` (`rankers.base.query_rng`). It
models a ranker that gets the head right and the tail wrong: interleaving should detect it only
through clicks below position `keep`.
"""

from __future__ import annotations

from rankers.base import Query, Ranker, Ranking, check_k, fingerprint, query_rng

__all__ = ["ShuffledTailRanker"]


class ShuffledTailRanker:
    """Keeps the base ranker's first `keep` results and shuffles the rest of its top k.

    Scores are the base ranking's scores by position (so they stay in descending order).
    """

    __slots__ = ("_base", "_keep", "_name", "_salt")

    def __init__(self, base: Ranker, keep: int, salt: str, *, name: str | None = None) -> None:
        """Configure the degradation.

        Args:
            base: The ranker to degrade.
            keep: Leading results left in place (>= 0).
            salt: Distinguishes independent degradations of the same base.
            name: The ranker's name; defaults to ``"<base>+shuffled-after<keep>"``.

        Raises:
            ValueError: `keep` is negative.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ValueError(f"keep must be an integer >= 0, got {keep!r}")
        self._base = base
        self._keep = keep
        self._salt = salt
        self._name = name or f"{base.name}+shuffled-after{keep}"

    @property
    def name(self) -> str:
        """The ranker's name."""
        return self._name

    @property
    def fingerprint(self) -> str:
        """The parameters and the base ranker's fingerprint (see `rankers.base.fingerprint`)."""
        return f"{self._name}|keep {self._keep} salt {self._salt!r}|{fingerprint(self._base)}"

    def rank(self, query: Query, k: int) -> Ranking:
        """The base ranker's top `k`, positions `keep` and later shuffled.

        Raises:
            UnknownItemError: The query's corpus id is not in the corpus.
            ValueError: `k` is not positive.
        """
        k = check_k(k)
        base = self._base.rank(query, k)
        head = base.ids[: self._keep]
        tail = base.ids[self._keep :]
        shuffled = query_rng(self._salt, query).permutation(len(tail))
        return Ranking(head + tuple(tail[i] for i in shuffled), base.scores)

    def __repr__(self) -> str:
        return f"ShuffledTailRanker(name={self._name!r}, keep={self._keep}, salt={self._salt!r})"
