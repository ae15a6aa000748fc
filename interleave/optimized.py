"""Optimized interleaving: the page distribution is the solution of a linear programme.

Radlinski and Craswell, "Optimized interleaving for online retrieval evaluation", WSDM 2013.

* Legal pages: each document on the page is the highest not-yet-shown document of A or of B,
  so every prefix of the page is a union of prefixes of the two lists.
* Credit: a click on d gives ranker r the score s_r(d): 1 / rank_r(d) (``credit="inverse"``,
  the default) or -rank_r(d) (``credit="linear"``); a document absent from a list has rank
  len(list) + 1. The ranker with the larger total wins.
* Unbiasedness: for every depth j, a user clicking uniformly at random within the top j gives
  each ranker the same expected score: sum_L p_L * sum_{i<j} (s_A - s_B)(L_i) = 0.
* Sensitivity: among the unbiased distributions, the programme maximises the expected absolute
  score difference of one click under a rank-decaying click model (P(click at i) ~ 1/i), a
  proxy for how decisive clicks are. Radlinski and Craswell maximise a related sensitivity;
  ours keeps the problem a linear programme.

Bounded by construction: at most ``max_pages`` legal pages are considered (beyond that, a fixed
pseudo-random sample of distinct legal pages, seeded by the input shape), the solver has a time
limit, and when no unbiased distribution exists over the pages considered, the bias is
minimised instead (flagged as ``exact=False`` in `Solution`). The solution depends only on the
input shape (which positions of A and B hold the same documents, and k), so it is cached per
shape: a repeated shape costs one draw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

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

__all__ = ["Optimized", "Solution", "solve"]

CreditRule = Literal["inverse", "linear"]
Shape = tuple[tuple[int, ...], tuple[int, ...], int]


@dataclass(frozen=True, slots=True)
class Solution:
    """The distribution over legal pages for one input shape (pages are tuples of labels:
    label i is the i-th distinct document of A followed by B)."""

    pages: tuple[tuple[int, ...], ...]
    teams: tuple[tuple[int | None, ...], ...]
    probabilities: npt.NDArray[np.float64]
    cumulative: npt.NDArray[np.float64]
    exact: bool
    enumerated: bool


def _score(rank: int | None, length: int, rule: CreditRule) -> float:
    r = (length if rank is None else rank) + 1
    return 1.0 / r if rule == "inverse" else -float(r)


def _legal_pages(
    a: tuple[int, ...], b: tuple[int, ...], k: int, limit: int
) -> list[tuple[tuple[int, ...], tuple[int | None, ...]]] | None:
    """Every legal page (depth-first), or None if there are more than `limit`."""
    n = min(k, len(set(a) | set(b)))
    found: dict[tuple[int, ...], tuple[int | None, ...]] = {}
    stack: list[tuple[tuple[int, ...], tuple[int | None, ...]]] = [((), ())]
    while stack:
        docs, teams = stack.pop()
        if len(docs) == n:
            found.setdefault(docs, teams)
            if len(found) > limit:
                return None
            continue
        on = set(docs)
        ta = next((d for d in a if d not in on), None)
        tb = next((d for d in b if d not in on), None)
        if ta is not None and ta == tb:
            stack.append(((*docs, ta), (*teams, None)))
            continue
        if tb is not None:
            stack.append(((*docs, tb), (*teams, 1)))
        if ta is not None:
            stack.append(((*docs, ta), (*teams, 0)))
    return list(found.items())


def _sampled_pages(
    a: tuple[int, ...], b: tuple[int, ...], k: int, limit: int, seed: int
) -> list[tuple[tuple[int, ...], tuple[int | None, ...]]]:
    """Up to `limit` distinct legal pages from a bounded number of seeded random drafts."""
    rng = np.random.default_rng(seed)
    n = min(k, len(set(a) | set(b)))
    found: dict[tuple[int, ...], tuple[int | None, ...]] = {}
    for _ in range(20 * limit):
        docs: list[int] = []
        teams: list[int | None] = []
        on: set[int] = set()
        while len(docs) < n:
            ta = next((d for d in a if d not in on), None)
            tb = next((d for d in b if d not in on), None)
            if ta is not None and ta == tb:
                d, t = ta, None
            elif tb is None or (ta is not None and rng.random() < 0.5):
                d, t = ta, 0  # type: ignore[assignment]
            else:
                d, t = tb, 1
            docs.append(d)
            teams.append(t)
            on.add(d)
        found.setdefault(tuple(docs), tuple(teams))
        if len(found) >= limit:
            break
    return list(found.items())


@lru_cache(maxsize=4096)
def solve(shape: Shape, rule: CreditRule = "inverse", max_pages: int = 2000) -> Solution:
    """Solve the optimized-interleaving programme for one input shape (cached)."""
    from scipy.optimize import linprog  # heavy: imported on first use

    a, b, k = shape
    legal = _legal_pages(a, b, k, max_pages)
    enumerated = legal is not None
    if legal is None:
        digest = hashlib.blake2b(repr(shape).encode(), digest_size=8).digest()
        legal = _sampled_pages(a, b, k, max_pages, int.from_bytes(digest, "little"))
    pages = [p for p, _ in legal]
    teams = [t for _, t in legal]
    rank_a = {d: i for i, d in enumerate(a)}
    rank_b = {d: i for i, d in enumerate(b)}
    m, n = len(pages), len(pages[0])
    delta = np.array(
        [
            [_score(rank_a.get(d), len(a), rule) - _score(rank_b.get(d), len(b), rule) for d in p]
            for p in pages
        ]
    )  # (m, n)
    bias = np.cumsum(delta, axis=1).T  # (n, m): expected credit difference at each depth
    w = 1.0 / np.arange(1, n + 1)
    sensitivity = np.abs(delta) @ (w / w.sum())
    a_eq = np.vstack([np.ones((1, m)), bias])
    b_eq = np.zeros(n + 1)
    b_eq[0] = 1.0
    opts = {"time_limit": 2.0}
    res = linprog(
        -sensitivity, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs", options=opts
    )
    exact = res.status == 0
    if exact:
        p = np.asarray(res.x, dtype=np.float64)
    else:
        # No unbiased distribution over these pages: minimise the total absolute bias.
        # Variables: p (m), then slack u (n) with -u <= bias @ p <= u.
        c = np.concatenate([np.zeros(m), np.ones(n)])
        a_ub = np.block([[bias, -np.eye(n)], [-bias, -np.eye(n)]])
        res2 = linprog(
            c,
            A_ub=a_ub,
            b_ub=np.zeros(2 * n),
            A_eq=np.concatenate([np.ones((1, m)), np.zeros((1, n))], axis=1),
            b_eq=[1.0],
            bounds=(0, None),
            method="highs",
            options=opts,
        )
        p = np.asarray(res2.x[:m], dtype=np.float64) if res2.status == 0 else np.ones(m)
    p = np.clip(p, 0.0, None)
    p /= p.sum()
    keep = p > 1e-12
    p = p[keep] / p[keep].sum()
    kept_pages = tuple(pg for pg, kk in zip(pages, keep, strict=True) if kk)
    kept_teams = tuple(t for t, kk in zip(teams, keep, strict=True) if kk)
    cumulative = np.cumsum(p)
    cumulative[-1] = 1.0
    return Solution(kept_pages, kept_teams, p, cumulative, exact, enumerated)


def _shape(a: tuple[DocId, ...], b: tuple[DocId, ...], k: int) -> tuple[Shape, list[DocId]]:
    label: dict[Hashable, int] = {}
    for d in (*a, *b):
        label.setdefault(d, len(label))
    return (tuple(label[d] for d in a), tuple(label[d] for d in b), k), list(label)


@dataclass(frozen=True, slots=True)
class Optimized(Method):
    """Optimized interleaving of two rankers (see the module docstring)."""

    name = "optimized"
    n_rankers = 2

    credit_rule: CreditRule = "inverse"
    max_pages: int = 2000

    def __post_init__(self) -> None:
        if self.credit_rule not in ("inverse", "linear"):
            raise ValueError(f"credit_rule must be 'inverse' or 'linear', got {self.credit_rule!r}")
        if isinstance(self.max_pages, bool) or not isinstance(self.max_pages, int):
            raise ValueError(f"max_pages must be an integer, got {self.max_pages!r}")
        if self.max_pages < 1:
            raise ValueError(f"max_pages must be positive, got {self.max_pages}")

    def options(self) -> dict[str, Any]:
        return {"credit_rule": self.credit_rule, "max_pages": self.max_pages}

    def _solution(
        self, lists: Sequence[Iterable[DocId]], k: int
    ) -> tuple[tuple[tuple[DocId, ...], ...], Solution, list[DocId]]:
        a, b = prepare_lists(lists, 2)
        k = check_k(k)
        shape, docs = _shape(a, b, k)
        if not docs:
            return (a, b), Solution(((),), ((),), np.ones(1), np.ones(1), True, True), docs
        return (a, b), solve(shape, self.credit_rule, self.max_pages), docs

    def interleave(
        self, lists: Sequence[Iterable[DocId]], *, k: int, rng: np.random.Generator
    ) -> Page:
        pair, sol, docs = self._solution(lists, k)
        u = check_rng(rng).random()
        i = min(int(np.searchsorted(sol.cumulative, u, side="right")), len(sol.pages) - 1)
        return Page(self.name, pair, tuple(docs[j] for j in sol.pages[i]), sol.teams[i])

    def credit(self, page: Page, clicks: Iterable[int]) -> Credit:
        self.check_page(page)
        clicked = check_clicks(clicks, len(page.docs))
        a, b = page.lists
        rank_a = {d: i for i, d in enumerate(a)}
        rank_b = {d: i for i, d in enumerate(b)}
        sa = sum(_score(rank_a.get(page.docs[p]), len(a), self.credit_rule) for p in clicked)
        sb = sum(_score(rank_b.get(page.docs[p]), len(b), self.credit_rule) for p in clicked)
        if not clicked or abs(sa - sb) < 1e-12:
            return Credit((sa, sb), None, ((0.0, 0.0), (0.0, 0.0)))
        if sa > sb:
            return Credit((sa, sb), 0, ((0.0, 1.0), (-1.0, 0.0)))
        return Credit((sa, sb), 1, ((0.0, -1.0), (1.0, 0.0)))

    def distribution(self, lists: Sequence[Iterable[DocId]], *, k: int) -> Mapping[Page, float]:
        pair, sol, docs = self._solution(lists, k)
        return {
            Page(self.name, pair, tuple(docs[j] for j in pg), t): float(p)
            for pg, t, p in zip(sol.pages, sol.teams, sol.probabilities, strict=True)
        }
