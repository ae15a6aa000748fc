"""A self-contained interleaving session on toy rankers, for `python -m interleave demo`.

Two rankers order 50 documents of known relevance: the better one sorts by relevance with a
little noise, the worse one with more. Simulated users click by a position-based model; every
method interleaves the same impressions and reports how often each ranker won. The whole
click-log simulation over real images lives in `simulations`; this needs nothing but numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from interleave.registry import get

__all__ = ["SessionResult", "toy_session"]


@dataclass(frozen=True, slots=True)
class SessionResult:
    """Outcome of one method over the toy impressions."""

    method: str
    impressions: int
    wins: int
    losses: int
    ties: int
    p_value: float

    @property
    def delta(self) -> float:
        """(wins + ties / 2) / n - 1/2: above zero when the first ranker is preferred."""
        return (self.wins + self.ties / 2) / self.impressions - 0.5


def toy_session(
    methods: tuple[str, ...] = ("team_draft", "balanced", "probabilistic", "optimized"),
    impressions: int = 2_000,
    k: int = 10,
    seed: int = 0,
) -> list[SessionResult]:
    """Interleave a good and a worse toy ranker over `impressions` queries with every method."""
    rng = np.random.default_rng(seed)
    n_docs = 50
    relevance = rng.random((impressions, n_docs)) ** 3  # few very relevant documents
    better = np.argsort(-(relevance + rng.normal(0, 0.05, relevance.shape)), axis=1)[:, :k]
    worse = np.argsort(-(relevance + rng.normal(0, 0.25, relevance.shape)), axis=1)[:, :k]
    lists = np.stack([better, worse])
    examination = 1.0 / np.arange(1, k + 1)
    results = []
    for name in methods:
        method = get(name)
        pages = method.interleave_batch(lists, k=k, rng=rng)
        rel = np.take_along_axis(relevance, np.maximum(pages.docs, 0), axis=1)
        clicks = (rng.random(pages.docs.shape) < examination * rel) & (pages.docs >= 0)
        outcome = method.credit_batch(pages, clicks).outcome
        wins, losses = int((outcome > 0).sum()), int((outcome < 0).sum())
        ties = impressions - wins - losses
        p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        results.append(SessionResult(name, impressions, wins, losses, ties, float(p)))
    return results
