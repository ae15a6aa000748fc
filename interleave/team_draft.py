"""Team-draft interleaving and its credit rule.

Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval quality?",
CIKM 2008. Like captains picking teams: at each pick the team with fewer members picks (a fair
coin decides when they are even), taking its ranker's highest document not yet on the page. A
click counts for the team that placed the clicked document; the team with more clicks wins.

Options, both off by default:

* ``neutral_prefix``: the common prefix of the two lists (positions where they agree) goes on
  the page first with no team, and drafting starts after it. Identical lists then always tie,
  where plain team-draft awards random wins.
* ``competitive_pairs``: a round (the two picks made when the teams are even) in which both
  rankers' best remaining document is the same one says nothing about which ranker is better;
  both its positions are credited to no one (team None). Only rounds where the rankers wanted
  different documents count. The page itself is the same as plain team-draft's; picks made
  after one list is spent are uncontested and credited as usual.

When one list runs out, the other keeps picking: the page is not cut to the shorter list.
Randomness is one fair bit per even round, read from the generator's raw 64-bit output, so a
page of k documents is the first k documents of the same draft at any larger k: page 2 is the
continuation of page 1 under the same generator seed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from interleave.base import (
    Credit,
    CreditBatch,
    DocId,
    IntArray,
    Method,
    Page,
    PageBatch,
    _check_batch_clicks,
    _check_batch_lists,
    check_clicks,
    check_k,
    check_rng,
    prepare_lists,
)
from interleave.seeding import SEED_SCHEME, seed_words

__all__ = ["TeamDraft", "draft"]

_MAX_ENUMERATED_COINS = 16


def draft(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    k: int,
    raw: Callable[[], int],
    *,
    neutral_prefix: bool = False,
    competitive_pairs: bool = False,
) -> tuple[list[Hashable], list[int | None]]:
    """The team-draft merge of two de-duplicated lists.

    Args:
        a: ranker 0's list, without repeats.
        b: ranker 1's list, without repeats.
        k: page length.
        raw: source of uniform 64-bit words (a bit generator's `random_raw`); one bit is used
            per even round, least significant first.
        neutral_prefix: put the common prefix first, with no team.
        competitive_pairs: credit no one for rounds where both rankers wanted the same document.

    Returns:
        The page's documents and their teams.
    """
    docs: list[Hashable] = []
    teams: list[int | None] = []
    seen: set[Hashable] = set()
    add, put_doc, put_team = seen.add, docs.append, teams.append
    la, lb = len(a), len(b)
    ia = ib = 0
    if neutral_prefix:
        limit = min(la, lb, k)
        while ia < limit and a[ia] == b[ia]:
            add(a[ia])
            put_doc(a[ia])
            put_team(None)
            ia += 1
        ib = ia
    n = len(docs)
    word = left = 0
    # Rounds: when the teams are even, a coin picks who drafts first, then the other drafts.
    while n < k and not competitive_pairs:  # the common case, kept lean
        while ia < la and a[ia] in seen:
            ia += 1
        while ib < lb and b[ib] in seen:
            ib += 1
        if ia >= la or ib >= lb:
            break
        if not left:
            word = raw()
            left = 64
        left -= 1
        if word & 1:
            d = a[ia]
            ia += 1
            add(d)
            put_doc(d)
            put_team(0)
            n += 1
            if n == k:
                break
            while ib < lb and b[ib] in seen:
                ib += 1
            if ib >= lb:
                break
            d = b[ib]
            ib += 1
            add(d)
            put_doc(d)
            put_team(1)
        else:
            d = b[ib]
            ib += 1
            add(d)
            put_doc(d)
            put_team(1)
            n += 1
            if n == k:
                break
            while ia < la and a[ia] in seen:
                ia += 1
            if ia >= la:
                break
            d = a[ia]
            ia += 1
            add(d)
            put_doc(d)
            put_team(0)
        n += 1
        word >>= 1
    while n < k and competitive_pairs:
        while ia < la and a[ia] in seen:
            ia += 1
        while ib < lb and b[ib] in seen:
            ib += 1
        if ia >= la or ib >= lb:
            break  # one list is spent: the other fills the page below
        if not left:
            word = raw()
            left = 64
        a_first = word & 1
        word >>= 1
        left -= 1
        neutral = competitive_pairs and a[ia] == b[ib]
        if a_first:
            d = a[ia]
            ia += 1
            first_team: int | None = 0
        else:
            d = b[ib]
            ib += 1
            first_team = 1
        add(d)
        put_doc(d)
        put_team(None if neutral else first_team)
        n += 1
        if n == k:
            break
        if a_first:
            while ib < lb and b[ib] in seen:
                ib += 1
            if ib >= lb:
                break
            d = b[ib]
            ib += 1
            second_team: int | None = 1
        else:
            while ia < la and a[ia] in seen:
                ia += 1
            if ia >= la:
                break
            d = a[ia]
            ia += 1
            second_team = 0
        add(d)
        put_doc(d)
        put_team(None if neutral else second_team)
        n += 1
    # Whatever list still has documents fills the rest of the page.
    for lst, team, i in ((a, 0, ia), (b, 1, ib)):
        end = len(lst)
        while n < k and i < end:
            d = lst[i]
            i += 1
            if d not in seen:
                add(d)
                put_doc(d)
                put_team(team)
                n += 1
    return docs, teams


@dataclass(frozen=True, slots=True)
class TeamDraft(Method):
    """Team-draft interleaving of two rankers (see the module docstring)."""

    name = "team_draft"
    n_rankers = 2

    neutral_prefix: bool = False
    competitive_pairs: bool = False

    def options(self) -> dict[str, Any]:
        return {"neutral_prefix": self.neutral_prefix, "competitive_pairs": self.competitive_pairs}

    def interleave(
        self, lists: Sequence[Iterable[DocId]], *, k: int, rng: np.random.Generator
    ) -> Page:
        a, b = prepare_lists(lists, 2)
        k = check_k(k)
        return self._page(a, b, k, check_rng(rng).bit_generator.random_raw)

    def interleave_seeded(
        self, lists: Sequence[Iterable[DocId]], *, k: int, seed: int, scheme: str = SEED_SCHEME
    ) -> Page:
        a, b = prepare_lists(lists, 2)
        return self._page(a, b, check_k(k), seed_words(seed, scheme))

    def coin_bits(self, k: int) -> int | None:
        """One bit per round and two picks per round: ceil(k / 2) bits, all from the first word
        while that is at most 64 (pages up to 128 documents); None beyond."""
        bits = (check_k(k) + 1) // 2
        return bits if bits <= 64 else None

    def _page(
        self, a: tuple[DocId, ...], b: tuple[DocId, ...], k: int, raw: Callable[[], int]
    ) -> Page:
        docs, teams = draft(
            a,
            b,
            k,
            raw,
            neutral_prefix=self.neutral_prefix,
            competitive_pairs=self.competitive_pairs,
        )
        return Page(self.name, (a, b), tuple(docs), tuple(teams))

    def credit(self, page: Page, clicks: Iterable[int]) -> Credit:
        self.check_page(page)
        teams = page.teams
        sa = sb = 0
        for p in check_clicks(clicks, len(teams)):
            t = teams[p]
            if t == 0:
                sa += 1
            elif t == 1:
                sb += 1
        if sa > sb:
            return Credit((float(sa), float(sb)), 0, ((0.0, 1.0), (-1.0, 0.0)))
        if sb > sa:
            return Credit((float(sa), float(sb)), 1, ((0.0, -1.0), (1.0, 0.0)))
        return Credit((float(sa), float(sb)), None, ((0.0, 0.0), (0.0, 0.0)))

    def distribution(self, lists: Sequence[Iterable[DocId]], *, k: int) -> Mapping[Page, float]:
        a, b = prepare_lists(lists, 2)
        k = check_k(k)
        coins = min(k, _MAX_ENUMERATED_COINS)
        if k > _MAX_ENUMERATED_COINS and min(len(a), len(b)) > _MAX_ENUMERATED_COINS:
            raise ValueError(f"k must be at most {_MAX_ENUMERATED_COINS} to enumerate pages")
        # Every page uses at most one bit per pick, all from the first word: enumerating the
        # low `coins` bits of that word enumerates every draw with its exact probability.
        out: dict[Page, float] = {}
        for word in range(2**coins):
            docs, teams = draft(
                a,
                b,
                k,
                lambda w=word: w,  # type: ignore[misc]
                neutral_prefix=self.neutral_prefix,
                competitive_pairs=self.competitive_pairs,
            )
            page = Page(self.name, (a, b), tuple(docs), tuple(teams))
            out[page] = out.get(page, 0.0) + 2.0**-coins
        return out

    def interleave_batch(self, lists: IntArray, *, k: int, rng: np.random.Generator) -> PageBatch:
        arr = _check_batch_lists(lists, 2, dedupe=False)  # the draft skips repeats itself
        k = check_k(k)
        check_rng(rng)
        if k > 128:  # more even rounds than one coin word holds
            return Method.interleave_batch(self, arr, k=k, rng=rng)
        docs, teams = _draft_batch(
            arr[0], arr[1], k, rng, self.neutral_prefix, self.competitive_pairs
        )
        return PageBatch(self.name, arr, docs, teams)

    def credit_batch(self, pages: PageBatch, clicks: npt.NDArray[np.bool_]) -> CreditBatch:
        c = _check_batch_clicks(pages, clicks, self.name)
        return team_credit_batch(pages.teams, c, 2)


def team_credit_batch(
    teams: npt.NDArray[np.int8], clicks: npt.NDArray[np.bool_], n_rankers: int
) -> CreditBatch:
    """Click counts per team, winner (unique most clicks, else -1) and pairwise signs."""
    scores = np.stack(
        [(clicks & (teams == r)).sum(axis=1) for r in range(n_rankers)], axis=1
    ).astype(np.float64)
    pairwise = np.sign(scores[:, :, None] - scores[:, None, :])
    best = scores.max(axis=1, keepdims=True)
    unique = (scores == best).sum(axis=1) == 1
    winner = np.where(unique, scores.argmax(axis=1), -1).astype(np.int8)
    return CreditBatch(scores, winner, pairwise)


def _draft_batch(
    a: IntArray,
    b: IntArray,
    k: int,
    rng: np.random.Generator,
    neutral_prefix: bool,
    competitive_pairs: bool,
) -> tuple[IntArray, npt.NDArray[np.int8]]:
    from interleave._kernels import team_draft_rows  # compiled on first use

    n = a.shape[0]
    docs = np.full((n, k), -1, dtype=np.int64)
    teams = np.full((n, k), -1, dtype=np.int8)
    # One word of coins per row, as the scalar path draws one word per page.
    coins = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
    team_draft_rows(
        np.ascontiguousarray(a),
        np.ascontiguousarray(b),
        coins,
        neutral_prefix,
        competitive_pairs,
        docs,
        teams,
    )
    return docs, teams
