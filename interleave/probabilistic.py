"""Probabilistic interleaving, with credit marginalised over team assignments.

Hofmann, Whiteson and de Rijke, "A probabilistic method for inferring preferences from click
data", CIKM 2011. Each ranker turns its list into a distribution over its documents,
P(d) proportional to 1 / rank(d) ** tau (tau = 3 by default). For each position a ranker is
chosen by a fair coin among those with documents left, and a document is drawn from its
distribution renormalised over the documents not yet on the page. A document absent from a
ranker's list has probability 0 under that ranker.

Credit marginalises over every team assignment that could have produced the page instead of
trusting the one sampled. Given the page, the assignment of position i depends only on the
documents above it (the coin's 1/|live rankers| cancels), so the posterior factorises:

    q_i = P(position i came from A | page) = pA_i(d_i) / (pA_i(d_i) + pB_i(d_i)),

with p_i the ranker's renormalised probability at step i. The outcome of an assignment is the
sign of (clicks credited to A - clicks credited to B); its expectation over the posterior is
computed exactly by a dynamic programme over the clicked positions (O(c^2) for c clicks), not
by enumerating the 2^n assignments. `Credit.scores` are the expected clicks credited to each
ranker and `Credit.outcome` the expected outcome in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interleave.base import (
    Credit,
    DocId,
    Method,
    Page,
    check_clicks,
    check_k,
    check_rng,
    prepare_lists,
)

__all__ = ["Probabilistic", "posterior_a"]

_EPS = 1e-12
_REFRESH = 1e-4
"""A list's weight left is summed afresh once it falls below this share of its last sum."""


_MAX_TAU = 50.0
"""The largest tau: rank 10^6 ** tau still fits a float (a larger tau overflowed on a page)."""


def _weights(lst: Sequence[Hashable], tau: float) -> dict[Hashable, float]:
    return {d: 1.0 / (i + 1) ** tau for i, d in enumerate(lst)}


class _Left:
    """The weight a list has left as documents are taken from it.

    Each taken weight is subtracted from the running total; once the total has fallen below
    `_REFRESH` of what it was last summed from, it is summed afresh over the untaken documents:
    a subtraction leaves an error of about 1e-16 of the total it started from, which beyond
    tau 15 outweighed all that was left (tau 20: rank 2 weighs 1e-6 of rank 1).
    """

    __slots__ = ("_base", "_left", "_taken", "_weights")

    def __init__(self, weights: dict[Hashable, float]) -> None:
        self._weights = weights
        self._left = self._base = math.fsum(weights.values())
        self._taken: set[Hashable] = set()

    def __call__(self) -> float:
        if self._left < _REFRESH * self._base:
            taken = self._taken
            self._left = self._base = math.fsum(
                w for d, w in self._weights.items() if d not in taken
            )
        return self._left

    def take(self, doc: Hashable) -> None:
        weight = self._weights.get(doc)
        if weight is not None and doc not in self._taken:
            self._taken.add(doc)
            self._left -= weight


def posterior_a(
    a: Sequence[Hashable], b: Sequence[Hashable], docs: Sequence[Hashable], tau: float
) -> list[float]:
    """For each page position, the posterior probability that ranker A placed it."""
    wa, wb = _weights(a, tau), _weights(b, tau)
    left_a, left_b = _Left(wa), _Left(wb)
    out = []
    for d in docs:
        xa, xb = wa.get(d, 0.0), wb.get(d, 0.0)
        if not xb:  # only A could have placed it
            out.append(1.0)
        elif not xa:
            out.append(0.0)
        else:
            pa, pb = xa / left_a(), xb / left_b()
            out.append(pa / (pa + pb))
        left_a.take(d)
        left_b.take(d)
    return out


def _outcome_distribution(q: Sequence[float]) -> tuple[float, float]:
    """P(A gets more of these clicks than B) and P(B more than A), each click i being A's with
    independent probability q[i]."""
    # dist[j] = P(j of the clicks so far are A's)
    dist = [1.0]
    for qi in q:
        nxt = [0.0] * (len(dist) + 1)
        for j, p in enumerate(dist):
            nxt[j] += p * (1.0 - qi)
            nxt[j + 1] += p * qi
        dist = nxt
    c = len(q)
    win = sum(p for j, p in enumerate(dist) if 2 * j > c)
    loss = sum(p for j, p in enumerate(dist) if 2 * j < c)
    return win, loss


@dataclass(frozen=True, slots=True)
class Probabilistic(Method):
    """Probabilistic interleaving of two rankers (see the module docstring)."""

    name = "probabilistic"
    n_rankers = 2

    tau: float = 3.0

    def __post_init__(self) -> None:
        if isinstance(self.tau, bool) or not isinstance(self.tau, int | float):
            raise ValueError(f"tau must be a number, got {self.tau!r}")
        if not 0 < self.tau <= _MAX_TAU:
            raise ValueError(f"tau must lie in (0, {_MAX_TAU:g}], got {self.tau}")

    def options(self) -> dict[str, Any]:
        return {"tau": self.tau}

    def interleave(
        self, lists: Sequence[Iterable[DocId]], *, k: int, rng: np.random.Generator
    ) -> Page:
        a, b = prepare_lists(lists, 2)
        k = check_k(k)
        random = check_rng(rng).random
        remaining = [_weights(a, self.tau), _weights(b, self.tau)]
        docs: list[Hashable] = []
        teams: list[int | None] = []
        while len(docs) < k:
            live = [t for t in (0, 1) if remaining[t]]
            if not live:
                break
            team = live[0] if len(live) == 1 else (0 if random() < 0.5 else 1)
            weights = remaining[team]
            target = random() * sum(weights.values())
            chosen = next(iter(weights))
            for d, weight in weights.items():  # insertion order is rank order
                chosen = d
                target -= weight
                if target < 0:
                    break
            for rem in remaining:
                rem.pop(chosen, None)
            docs.append(chosen)
            teams.append(team)
        return Page(self.name, (a, b), tuple(docs), tuple(teams))

    def credit(self, page: Page, clicks: Iterable[int]) -> Credit:
        self.check_page(page)
        clicked = sorted(check_clicks(clicks, len(page.docs)))
        a, b = page.lists
        q_all = posterior_a(a, b, page.docs, self.tau)
        q = [q_all[p] for p in clicked]
        win, loss = _outcome_distribution(q)
        outcome = win - loss
        ea = sum(q)
        scores = (ea, len(q) - ea)
        winner = 0 if outcome > _EPS else 1 if outcome < -_EPS else None
        return Credit(scores, winner, ((0.0, outcome), (-outcome, 0.0)))

    def page_probability(self, page: Page) -> float:
        """The exact probability that `interleave` returns `page`'s documents."""
        self.check_page(page)
        a, b = page.lists
        wa, wb = _weights(a, self.tau), _weights(b, self.tau)
        rest = (_Left(wa), _Left(wb))
        left = [len(wa), len(wb)]
        prob = 1.0
        for d in page.docs:
            xs = (wa.get(d, 0.0), wb.get(d, 0.0))
            live = [t for t in (0, 1) if left[t] > 0]
            prob *= sum(xs[t] / rest[t]() for t in live if xs[t]) / len(live)
            for t in (0, 1):
                if xs[t] > 0:
                    rest[t].take(d)
                    left[t] -= 1
        return prob

    def distribution(self, lists: Sequence[Iterable[DocId]], *, k: int) -> Mapping[Page, float]:
        """Every (page, team assignment) with its exact probability, by enumeration."""
        a, b = prepare_lists(lists, 2)
        k = check_k(k)
        wa, wb = _weights(a, self.tau), _weights(b, self.tau)
        out: dict[Page, float] = {}

        def walk(docs: tuple[Hashable, ...], teams: tuple[int | None, ...], p: float) -> None:
            rem = [
                {d: w for d, w in wa.items() if d not in docs},
                {d: w for d, w in wb.items() if d not in docs},
            ]
            live = [t for t in (0, 1) if rem[t]]
            if len(docs) == k or not live:
                page = Page(self.name, (a, b), docs, teams)
                out[page] = out.get(page, 0.0) + p
                return
            for t in live:
                total = sum(rem[t].values())
                for d, w in rem[t].items():
                    walk((*docs, d), (*teams, t), p * w / total / len(live))

        walk((), (), 1.0)
        return out
