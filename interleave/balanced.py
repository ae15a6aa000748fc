"""Balanced interleaving and its credit rule.

Joachims, "Optimizing search engines using clickthrough data", KDD 2002, and "Evaluating
retrieval performance using clickthrough data", 2003. The page alternates between the two lists
from a random first list, each list contributing its next document not yet shown, so every
prefix of the page holds the top ka documents of A and the top kb of B with |ka - kb| <= 1.

Credit: let d be the lowest clicked document on the page and j the smallest depth at which d
appears in A or in B (its best rank). Count the clicked documents within the top j of A (hA)
and of B (hB); the list with more wins.

Known bias (reproduced in the tests, and flagged by the reports): with A = (1, 2, 3) and
B = (2, 3, 1) and one uniformly random click, B wins two thirds of the time although the
clicks do not depend on the rankers. Balanced interleaving is kept for comparison; prefer
team-draft for decisions.

`Page.teams` records which list contributed each position (for logs and balance checks); the
credit rule does not use it.
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

__all__ = ["Balanced", "merge"]

_A_WINS = ((0.0, 1.0), (-1.0, 0.0))
_B_WINS = ((0.0, -1.0), (1.0, 0.0))
_EVEN = ((0.0, 0.0), (0.0, 0.0))
_TIE = Credit((0.0, 0.0), None, _EVEN)


def merge(
    a: Sequence[Hashable], b: Sequence[Hashable], k: int, a_first: bool
) -> tuple[list[Hashable], list[int | None]]:
    """The balanced merge of two de-duplicated lists."""
    docs: list[Hashable] = []
    teams: list[int | None] = []
    seen: set[Hashable] = set()
    la, lb = len(a), len(b)
    ka = kb = 0
    while len(docs) < k and (ka < la or kb < lb):
        if kb >= lb or (ka < la and (ka < kb or (ka == kb and a_first))):
            d = a[ka]
            ka += 1
            team = 0
        else:
            d = b[kb]
            kb += 1
            team = 1
        if d not in seen:
            seen.add(d)
            docs.append(d)
            teams.append(team)
    return docs, teams


@dataclass(frozen=True, slots=True)
class Balanced(Method):
    """Balanced interleaving of two rankers (see the module docstring)."""

    name = "balanced"
    n_rankers = 2

    def interleave(
        self, lists: Sequence[Iterable[DocId]], *, k: int, rng: np.random.Generator
    ) -> Page:
        return self._page(lists, k, check_rng(rng).bit_generator.random_raw)

    def interleave_seeded(
        self, lists: Sequence[Iterable[DocId]], *, k: int, seed: int, scheme: str = SEED_SCHEME
    ) -> Page:
        return self._page(lists, k, seed_words(seed, scheme))

    def coin_bits(self, k: int) -> int:
        """One: the coin that says which list leads."""
        check_k(k)
        return 1

    def _page(self, lists: Sequence[Iterable[DocId]], k: int, raw: Callable[[], int]) -> Page:
        a, b = prepare_lists(lists, 2)
        docs, teams = merge(a, b, check_k(k), bool(raw() & 1))
        return Page(self.name, (a, b), tuple(docs), tuple(teams))

    def credit(self, page: Page, clicks: Iterable[int]) -> Credit:
        self.check_page(page)
        clicked = check_clicks(clicks, len(page.docs))
        if not clicked:
            return _TIE
        docs = page.docs
        a, b = page.lists
        last = docs[max(clicked)]
        absent = len(a) + len(b)
        depth = min(a.index(last) if last in a else absent, b.index(last) if last in b else absent)
        top_a, top_b = a[: depth + 1], b[: depth + 1]
        ha = hb = 0
        for p in clicked:
            d = docs[p]
            if d in top_a:
                ha += 1
            if d in top_b:
                hb += 1
        if ha > hb:
            return Credit((float(ha), float(hb)), 0, _A_WINS)
        if hb > ha:
            return Credit((float(ha), float(hb)), 1, _B_WINS)
        return Credit((float(ha), float(hb)), None, _EVEN)

    def distribution(self, lists: Sequence[Iterable[DocId]], *, k: int) -> Mapping[Page, float]:
        a, b = prepare_lists(lists, 2)
        k = check_k(k)
        out: dict[Page, float] = {}
        for a_first in (True, False):
            docs, teams = merge(a, b, k, a_first)
            page = Page(self.name, (a, b), tuple(docs), tuple(teams))
            out[page] = out.get(page, 0.0) + 0.5
        return out

    def interleave_batch(self, lists: IntArray, *, k: int, rng: np.random.Generator) -> PageBatch:
        arr = _check_batch_lists(lists, 2, dedupe=False)  # the merge de-duplicates itself
        k = check_k(k)
        first: npt.NDArray[np.bool_] = np.asarray(check_rng(rng).random(arr.shape[1]) < 0.5)
        docs, teams = _merge_batch(arr[0], arr[1], k, first)
        return PageBatch(self.name, arr, docs, teams)

    def credit_batch(self, pages: PageBatch, clicks: npt.NDArray[np.bool_]) -> CreditBatch:
        c = _check_batch_clicks(pages, clicks, self.name)
        a, b = pages.lists[0], pages.lists[1]
        docs = pages.docs
        # Best rank of each page document in A and in B (depth if absent).
        ra = _rank_in(docs, a)
        rb = _rank_in(docs, b)
        any_click = c.any(axis=1)
        last = np.where(any_click, c.shape[1] - 1 - np.argmax(c[:, ::-1], axis=1), 0)
        rows = np.arange(docs.shape[0])
        depth = np.minimum(ra[rows, last], rb[rows, last]) + 1
        ha = (c & (ra < depth[:, None])).sum(axis=1)
        hb = (c & (rb < depth[:, None])).sum(axis=1)
        scores = np.stack([ha, hb], axis=1).astype(np.float64)
        out = np.sign(ha - hb).astype(np.float64)
        pairwise = np.zeros((docs.shape[0], 2, 2))
        pairwise[:, 0, 1] = out
        pairwise[:, 1, 0] = -out
        winner = np.where(out > 0, 0, np.where(out < 0, 1, -1)).astype(np.int8)
        return CreditBatch(scores, winner, pairwise)


def _rank_in(docs: IntArray, lst: IntArray) -> IntArray:
    """For each page document, its position in `lst` (the list's depth if absent)."""
    eq = (docs[:, :, None] == lst[:, None, :]) & (docs[:, :, None] >= 0)
    out: IntArray = np.where(eq.any(axis=2), eq.argmax(axis=2), lst.shape[1]).astype(np.int64)
    return out


def _merge_batch(
    a: IntArray, b: IntArray, k: int, a_first: npt.NDArray[np.bool_]
) -> tuple[IntArray, npt.NDArray[np.int8]]:
    from interleave._kernels import balanced_rows  # compiled on first use

    n = a.shape[0]
    docs = np.full((n, k), -1, dtype=np.int64)
    teams = np.full((n, k), -1, dtype=np.int8)
    balanced_rows(np.ascontiguousarray(a), np.ascontiguousarray(b), a_first, docs, teams)
    return docs, teams
