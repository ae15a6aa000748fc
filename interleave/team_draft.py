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
  different documents count. The page itself is the same as plain team-draft's.

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
            seen.add(a[ia])
            docs.append(a[ia])
            teams.append(None)
            ia += 1
        ib = ia
    ca = cb = 0
    word = left = 0
    pending_none = False
    n = len(docs)
    while n < k:
        while ia < la and a[ia] in seen:
            ia += 1
        while ib < lb and b[ib] in seen:
            ib += 1
        if ia < la:
            if ib < lb:
                if ca < cb:
                    take_a = True
                elif cb < ca:
                    take_a = False
                else:
                    if not left:
                        word = raw()
                        left = 64
                    take_a = bool(word & 1)
                    word >>= 1
                    left -= 1
                    if competitive_pairs and a[ia] == b[ib]:
                        pending_none = True
            else:
                take_a = True
        elif ib < lb:
            take_a = False
        else:
            break
        if take_a:
            d = a[ia]
            ia += 1
            ca += 1
            team: int | None = 0
        else:
            d = b[ib]
            ib += 1
            cb += 1
            team = 1
        if pending_none:
            team = None
            # The round's second pick is also uninformative; clear the flag after it.
            pending_none = ca != cb
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
        raw = check_rng(rng).bit_generator.random_raw
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
        arr = _check_batch_lists(lists, 2)
        k = check_k(k)
        check_rng(rng)
        if arr.shape[2] > 63 or k > 120:  # the vectorised draft packs positions and coins in words
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


def _first_match(x: IntArray, y: IntArray) -> IntArray:
    """For each row and position i, the first position j with y[j] == x[i] (len(y) if none).
    Padding (-1) never matches."""
    eq = (x[:, :, None] == y[:, None, :]) & (x[:, :, None] >= 0)
    found = eq.any(axis=2)
    out: IntArray = np.where(found, eq.argmax(axis=2), y.shape[1]).astype(np.int64)
    return out


def _draft_batch(
    a: IntArray,
    b: IntArray,
    k: int,
    rng: np.random.Generator,
    neutral_prefix: bool,
    competitive_pairs: bool,
    chunk: int = 8_192,
) -> tuple[IntArray, npt.NDArray[np.int8]]:
    n = a.shape[0]
    docs = np.full((n, k), -1, dtype=np.int64)
    teams = np.full((n, k), -1, dtype=np.int8)
    # One coin per even round (at most k // 2 + 1 of them), from the bits of one word per row.
    coins: npt.NDArray[np.uint64] = np.asarray(
        rng.integers(0, 2**63, size=n, dtype=np.uint64, endpoint=False)
    )
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        _draft_chunk(
            a[lo:hi],
            b[lo:hi],
            coins[lo:hi],
            docs[lo:hi],
            teams[lo:hi],
            neutral_prefix,
            competitive_pairs,
        )
    return docs, teams


def _bits_of(positions: IntArray, depth: int) -> npt.NDArray[np.uint64]:
    """1 << position as uint64, or 0 where the position is `depth` (absent)."""
    shifted = np.left_shift(np.uint64(1), np.minimum(positions, 63).astype(np.uint64))
    return np.where(positions < depth, shifted, np.uint64(0))


def _draft_chunk(
    a: IntArray,
    b: IntArray,
    coins: npt.NDArray[np.uint64],
    docs: IntArray,
    teams: npt.NDArray[np.int8],
    neutral_prefix: bool,
    competitive_pairs: bool,
) -> None:
    """Team-draft over rows of de-duplicated, end-padded lists of depth <= 63.

    Each row keeps two bitmasks: bit i of `mask_a` is set when a[i] is on the page, bit j of
    `mask_b` when b[j] is. A list's best unused document is then its lowest clear bit, found
    without scanning, and placing a document sets its bit in both lists.
    """
    n, k = docs.shape
    depth = a.shape[1]
    rows = np.arange(n)
    one = np.uint64(1)
    valid_a = np.left_shift(one, (a >= 0).sum(axis=1).astype(np.uint64)) - one
    valid_b = np.left_shift(one, (b >= 0).sum(axis=1).astype(np.uint64)) - one
    # eq[r, i, j]: a[r, i] == b[r, j]; lists hold no repeats, so a match is unique.
    eq = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
    a_in_b = np.where(eq.any(axis=2), eq.argmax(axis=2), depth)
    b_in_a = np.where(eq.any(axis=1), eq.argmax(axis=1), depth)
    bit_a_in_b = _bits_of(a_in_b, depth)  # (n, depth): a[i]'s bit in b's mask
    bit_b_in_a = _bits_of(b_in_a, depth)
    mask_a = np.zeros(n, dtype=np.uint64)
    mask_b = np.zeros(n, dtype=np.uint64)
    placed = np.zeros(n, dtype=np.int64)
    if neutral_prefix:
        m = min(depth, k)
        same = (a[:, :m] == b[:, :m]) & (a[:, :m] >= 0)
        plen = np.where(same.all(axis=1), m, same.argmin(axis=1))
        docs[:, :m] = np.where(np.arange(m)[None, :] < plen[:, None], a[:, :m], -1)
        mask_a = np.left_shift(one, plen.astype(np.uint64)) - one
        mask_b = mask_a.copy()
        placed = plen.astype(np.int64)
    ca = np.zeros(n, dtype=np.int64)
    cb = np.zeros(n, dtype=np.int64)
    coin_i = np.zeros(n, dtype=np.uint64)
    pending = np.zeros(n, dtype=bool)
    flat_docs = docs.reshape(-1)
    flat_teams = teams.reshape(-1)
    flat_a = a.reshape(-1)
    flat_b = b.reshape(-1)
    flat_bit_a_in_b = bit_a_in_b.reshape(-1)
    flat_bit_b_in_a = bit_b_in_a.reshape(-1)
    base = rows * depth
    for _ in range(k):
        free_a = ~mask_a & valid_a
        free_b = ~mask_b & valid_b
        a_ok = free_a != 0
        b_ok = free_b != 0
        live = (placed < k) & (a_ok | b_ok)
        if not live.any():
            break
        low_a = free_a & (~free_a + one)
        low_b = free_b & (~free_b + one)
        ia = np.minimum(np.bitwise_count(low_a - one), depth - 1).astype(np.int64) + base
        ib = np.minimum(np.bitwise_count(low_b - one), depth - 1).astype(np.int64) + base
        even = (ca == cb) & a_ok & b_ok & live
        coin = (np.right_shift(coins, coin_i) & one).astype(bool)
        take_a = live & a_ok & (~b_ok | (ca < cb) | (even & coin))
        take_b = live & ~take_a
        coin_i += even
        da = flat_a[ia]
        db = flat_b[ib]
        if competitive_pairs:
            pending |= even & (da == db)
        team = take_b.astype(np.int8)
        if competitive_pairs:
            team[pending] = -1
        where = rows * k + np.minimum(placed, k - 1)
        flat_docs[where[live]] = np.where(take_a, da, db)[live]
        flat_teams[where[live]] = team[live]
        zero = np.uint64(0)
        mask_a |= np.where(take_a, low_a, np.where(take_b, flat_bit_b_in_a[ib], zero))
        mask_b |= np.where(take_b, low_b, np.where(take_a, flat_bit_a_in_b[ia], zero))
        ca += take_a
        cb += take_b
        placed += live
        if competitive_pairs:
            pending &= ~(live & (ca == cb))
