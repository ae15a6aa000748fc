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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import msgspec

import interleave

__all__ = ["ShownPage", "failure_reason", "interleaved_page", "single_page"]

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

    Raises:
        ValueError: Every list is None, or `page` is outside 1..max_page.
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
    depth = page_size * (max_page if method.name in _DEPTH_DEPENDENT else page)
    every = cast("Sequence[Sequence[str]]", lists)  # none failed
    draft = method.interleave_seeded(every, k=depth, seed=seed, scheme=seed_scheme)
    start = (page - 1) * page_size
    end = start + page_size
    more = page < max_page and (deeper or _union_size(lists) > end)
    docs, teams = draft.docs, draft.teams
    if start or len(docs) > end:
        docs, teams = docs[start:end], teams[start:end]
    return ShownPage(cast("tuple[str, ...]", docs), teams, start, more)


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


def _union_size(lists: Sequence[Sequence[str] | None]) -> int:
    return len({d for ids in lists if ids is not None for d in ids})


def _check_page(page: int, max_page: int) -> None:
    if not 1 <= page <= max_page:
        raise ValueError(f"page must lie in 1..{max_page}, got {page}")
