"""Result pages from rankers' lists: the pure part of serving a search.

Page n (1-based) of a search shows positions (n - 1) * size .. n * size - 1 of one draft: the
draft is interleaved from the same lists with the same seed, so a later page continues it
without repeating an earlier one. Every method but optimized interleaving builds its first k
positions the same way whatever the page length, so the draft is made at k = n * size; the
optimized method's distribution depends on k, so its draft is always made at the deepest page
served and sliced.

When rankers fail, the user still gets a page: the first surviving ranker's list, credited
to it, and the impression is marked ``excluded="ranker_failed:NAME[,NAME]"`` so analysis
leaves it out.

A `PageMemo` keeps an experiment's pages by what decides them: the two lists, the page, and
the coins the draft reads (`interleave.Method.coin_bits`: six bits for a team-draft page of
12). A popular query's lists are the same for every unit, so its pages are drafted once per
outcome of the coins, and every later unit's page is a lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import cast

import msgspec

import interleave

__all__ = ["PageMemo", "ShownPage", "failure_reason", "interleaved_page", "single_page"]

_DEPTH_DEPENDENT = frozenset({"optimized"})


class ShownPage(msgspec.Struct, frozen=True, gc=False):
    """One page of results.

    Attributes:
        doc_ids: The ids shown, best first.
        teams: For each position, the index (into the experiment's rankers) of the ranker
            credited, or None for a neutral position.
        page_start: Position in the draft of the first id shown.
        has_more: Whether the draft goes on past this page (within the deepest page served).
        excluded: Why analysis must leave the impression out, or None.
    """

    doc_ids: tuple[str, ...]
    teams: tuple[int | None, ...]
    page_start: int
    has_more: bool
    excluded: str | None = None


def failure_reason(names: Sequence[str], lists: Sequence[Sequence[str] | None]) -> str | None:
    """``"ranker_failed:a,b"`` naming the rankers whose list is None, or None if none failed."""
    failed = [name for name, ids in zip(names, lists, strict=True) if ids is None]
    return f"ranker_failed:{','.join(failed)}" if failed else None


def interleaved_page(
    method: interleave.Method,
    names: Sequence[str],
    lists: Sequence[Sequence[str] | None],
    *,
    seed: int,
    page: int,
    page_size: int,
    max_page: int,
    deeper: bool = False,
    seed_scheme: str = interleave.SEED_SCHEME,
    memo: PageMemo | None = None,
) -> ShownPage:
    """Page `page` of the interleaving of `lists` (None for a ranker that failed).

    Args:
        method: The interleaving method.
        names: The rankers, in team order.
        lists: Each ranker's list, or None if it failed or timed out.
        seed: The impression seed (`interleave.seed_for(salt, unit, query)`).
        page: The 1-based page number.
        page_size: Results per page.
        max_page: The deepest page served.
        deeper: The lists were cut at this page's depth: the rankers have more to give.
        seed_scheme: How `seed` becomes a generator (the experiment version's scheme).
        memo: Pages of `method` kept by their lists and coins: the page is taken from it
            when it holds one, else drafted and kept (the same page either way).

    Raises:
        ValueError: Every list is None, `page` is outside 1..max_page, or `memo` is another
            method's.
    """
    _check_page(page, max_page)
    if None in lists:
        reason = failure_reason(names, lists)
        assert reason is not None
        survivor = next((i for i, ids in enumerate(lists) if ids is not None), None)
        if survivor is None:
            raise ValueError("every ranker failed: there is no list to show")
        survived = lists[survivor]
        assert survived is not None
        return single_page(
            survived,
            survivor,
            page=page,
            page_size=page_size,
            excluded=reason,
            max_page=max_page,
            deeper=deeper,
        )
    depth = _draft_depth(method, page, page_size, max_page)
    key = None
    if memo is not None:
        if memo.method is not method:
            raise ValueError("the memo keeps another method's pages")
        key = memo.key(lists, depth, seed, seed_scheme, page, page_size, max_page, deeper)
        if key is not None:
            kept = memo.get(key)
            if kept is not None:
                return kept
    every = cast("Sequence[Sequence[str]]", lists)  # none failed
    draft = method.interleave_seeded(every, k=depth, seed=seed, scheme=seed_scheme)
    start = (page - 1) * page_size
    end = start + page_size
    more = page < max_page and (deeper or _union_size(lists) > end)
    docs, teams = draft.docs, draft.teams
    if start or len(docs) > end:
        docs, teams = docs[start:end], teams[start:end]
    shown = ShownPage(cast("tuple[str, ...]", docs), teams, start, more)
    if key is not None:
        assert memo is not None
        memo.put(key, shown)
    return shown


class PageMemo:
    """One interleaving method's pages, kept by (lists, page, coins) for `interleaved_page`:
    at most `capacity`, the least recently used dropped first.

    Pages are kept only where they can be: two lists, both tuples (hashable, as the service's
    rankers give them), and a method that knows its coins (`interleave.Method.coin_bits`).
    """

    __slots__ = ("_masks", "_pages", "capacity", "hits", "method", "misses")

    def __init__(self, method: interleave.Method, capacity: int) -> None:
        """An empty memo for `method`, holding at most `capacity` pages (0: none)."""
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative integer, got {capacity!r}")
        self.method = method
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._pages: OrderedDict[tuple[object, ...], ShownPage] = OrderedDict()
        self._masks: dict[int, int | None] = {}  # by draft depth: the coins' bit mask

    def __len__(self) -> int:
        return len(self._pages)

    def key(
        self,
        lists: Sequence[Sequence[str] | None],
        depth: int,
        seed: int,
        seed_scheme: str,
        *page: int | bool,
    ) -> tuple[object, ...] | None:
        """What decides a page drafted `depth` deep (`page`: its number, size, the deepest
        page and whether the lists go deeper), or None if it cannot be kept."""
        if not self.capacity or len(lists) != 2:
            return None
        a, b = lists
        if type(a) is not tuple or type(b) is not tuple:
            return None
        mask = self._masks.get(depth, -1)
        if mask == -1:
            bits = self.method.coin_bits(depth)
            mask = self._masks[depth] = None if bits is None else (1 << bits) - 1
        if mask is None:
            return None
        return (a, b, interleave.first_word(seed, seed_scheme) & mask, *page)

    def get(self, key: tuple[object, ...]) -> ShownPage | None:
        """The page kept for `key`, or None (counted as a hit or a miss)."""
        shown = self._pages.get(key)
        if shown is None:
            self.misses += 1
        else:
            self.hits += 1
            self._pages.move_to_end(key)
        return shown

    def put(self, key: tuple[object, ...], shown: ShownPage) -> None:
        """Keep `shown` for `key`, dropping the least recently used page when full."""
        pages = self._pages
        if len(pages) >= self.capacity:
            pages.popitem(last=False)
        pages[key] = shown


def single_page(
    ids: Sequence[str],
    team: int,
    *,
    page: int,
    page_size: int,
    excluded: str | None = None,
    max_page: int | None = None,
    deeper: bool = False,
) -> ShownPage:
    """Page `page` of one ranker's list, every position credited to `team` (`deeper`: the
    list was cut at this page's depth)."""
    if max_page is not None:
        _check_page(page, max_page)
    start = (page - 1) * page_size
    end = start + page_size
    shown = tuple(ids[start:end])
    more = (deeper or len(ids) > end) and (max_page is None or page < max_page)
    return ShownPage(shown, (team,) * len(shown), start, more, excluded)


def _draft_depth(method: interleave.Method, page: int, page_size: int, max_page: int) -> int:
    """How deep page `page` is drafted: to its own end, or the deepest page for a method
    whose distribution depends on the depth."""
    return page_size * (max_page if method.name in _DEPTH_DEPENDENT else page)


def _union_size(lists: Sequence[Sequence[str] | None]) -> int:
    return len({d for ids in lists if ids is not None for d in ids})


def _check_page(page: int, max_page: int) -> None:
    if not 1 <= page <= max_page:
        raise ValueError(f"page must lie in 1..{max_page}, got {page}")
