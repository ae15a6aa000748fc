"""Team-draft multileaving: team-draft for two or more rankers.

Schuth, Sietsma, Whiteson, Lefortier and de Rijke, "Multileaved comparisons for fast online
evaluation", CIKM 2014. At each pick, among the rankers with the fewest picks that still have
documents, one is chosen uniformly at random and adds its highest document not yet on the
page. A click counts for the team that placed the document; every pair of rankers gets an
outcome from their click counts (more clicks wins, equal counts tie), so one impression
compares all pairs at once. With two rankers this is team-draft interleaving.

Known limitation (seen in Braid's own simulation, and why later multileaving methods exist):
a pair's outcome depends on the other rankers in the comparison. When several rankers agree
on the top documents, whichever drafts first takes them and the others draft deeper, weaker
documents, while a ranker unlike the rest keeps its best. In the demo's five-way multileave,
the raw-pixel baseline beats a noisy Lite2 that beats it head to head under every two-ranker
method. Read a multileave as a screen, and confirm a pair with two-ranker interleaving.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interleave.base import (
    Credit,
    CreditBatch,
    DocId,
    Method,
    Page,
    PageBatch,
    _check_batch_clicks,
    check_clicks,
    check_k,
    check_rng,
    prepare_lists,
    sign_matrix,
    winner_of,
)
from interleave.team_draft import team_credit_batch

__all__ = ["TeamDraftMultileave", "multidraft"]


def multidraft(
    lists: Sequence[Sequence[Hashable]], k: int, choose: Callable[[int], int]
) -> tuple[list[Hashable], list[int | None]]:
    """The team-draft multileave of de-duplicated lists.

    Args:
        lists: one list per ranker, without repeats.
        k: page length.
        choose: `choose(m)` returns a uniform index in range(m); called only when m > 1.
    """
    r = len(lists)
    ptr = [0] * r
    picks = [0] * r
    docs: list[Hashable] = []
    teams: list[int | None] = []
    seen: set[Hashable] = set()
    while len(docs) < k:
        live = []
        for t in range(r):
            lst, i = lists[t], ptr[t]
            while i < len(lst) and lst[i] in seen:
                i += 1
            ptr[t] = i
            if i < len(lst):
                live.append(t)
        if not live:
            break
        fewest = min(picks[t] for t in live)
        tied = [t for t in live if picks[t] == fewest]
        team = tied[choose(len(tied))] if len(tied) > 1 else tied[0]
        d = lists[team][ptr[team]]
        ptr[team] += 1
        picks[team] += 1
        seen.add(d)
        docs.append(d)
        teams.append(team)
    return docs, teams


class _Replay:
    """A `choose` that replays scripted choices and notes the first unscripted branch."""

    def __init__(self, script: tuple[int, ...]) -> None:
        self.script = script
        self.calls = 0
        self.branch = 0

    def __call__(self, m: int) -> int:
        i = self.calls
        self.calls += 1
        if i < len(self.script):
            return self.script[i]
        if not self.branch:
            self.branch = m
        return 0


@dataclass(frozen=True, slots=True)
class TeamDraftMultileave(Method):
    """Team-draft multileaving of two or more rankers (see the module docstring)."""

    name = "team_draft_multileave"
    n_rankers = None

    def interleave(
        self, lists: Sequence[Iterable[DocId]], *, k: int, rng: np.random.Generator
    ) -> Page:
        lsts = prepare_lists(lists, None)
        k = check_k(k)
        random = check_rng(rng).random
        docs, teams = multidraft(lsts, k, lambda m: int(random() * m))
        return Page(self.name, lsts, tuple(docs), tuple(teams))

    def credit(self, page: Page, clicks: Iterable[int]) -> Credit:
        self.check_page(page)
        scores = [0.0] * len(page.lists)
        for p in check_clicks(clicks, len(page.docs)):
            t = page.teams[p]
            if t is not None:
                scores[t] += 1.0
        return Credit(tuple(scores), winner_of(scores), sign_matrix(scores))

    def distribution(self, lists: Sequence[Iterable[DocId]], *, k: int) -> Mapping[Page, float]:
        lsts = prepare_lists(lists, None)
        k = check_k(k)
        out: dict[Page, float] = {}
        # Depth-first over every sequence of choices; each branch of m choices has weight 1/m.
        stack: list[tuple[tuple[int, ...], float]] = [((), 1.0)]
        while stack:
            script, prob = stack.pop()
            replay = _Replay(script)
            docs, teams = multidraft(lsts, k, replay)
            if replay.branch:
                m = replay.branch
                stack.extend(((*script, j), prob / m) for j in range(m))
                continue
            page = Page(self.name, lsts, tuple(docs), tuple(teams))
            out[page] = out.get(page, 0.0) + prob
        return out

    def credit_batch(self, pages: PageBatch, clicks: npt.NDArray[np.bool_]) -> CreditBatch:
        c = _check_batch_clicks(pages, clicks, self.name)
        return team_credit_batch(pages.teams, c, pages.lists.shape[0])
