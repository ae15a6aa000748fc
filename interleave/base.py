"""Pages, credits and the interleaving-method plug point.

A method merges the ranked lists of several rankers into one `Page` and turns the clicks on
that page into a `Credit`. Every method works on any hashable document ids; lists are
de-duplicated (first occurrence kept) before use, and a page is never cut to the shorter list:
when one list runs out the others keep filling the page, up to `k` or the size of the union.

The batch path (`interleave_batch`, `credit_batch`) does the same for many impressions at once
over integer document ids, with `-1` as padding; methods with a vectorised algorithm override
it, the others fall back to the scalar path.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
import numpy as np
import numpy.typing as npt

from interleave.errors import PageMismatchError
from interleave.seeding import SEED_SCHEME, rng_from_seed

__all__ = [
    "Credit",
    "CreditBatch",
    "DocId",
    "Method",
    "Page",
    "PageBatch",
    "check_clicks",
    "check_k",
    "check_rng",
    "dedupe_rows",
    "prepare_lists",
    "sign_matrix",
    "winner_of",
]

DocId = Hashable
IntArray = npt.NDArray[np.int64]


class Page(msgspec.Struct, frozen=True):
    """One interleaved result page (an immutable, hashable record).

    Attributes:
        method: name of the method that made it (its credit rule refuses other pages).
        lists: the input lists as used (de-duplicated), one per ranker, in team order.
        docs: the page, best position first.
        teams: for each position, the index of the ranker credited for it, or None where no
            ranker is (a neutral common prefix, or a non-competitive pair).
    """

    method: str
    lists: tuple[tuple[DocId, ...], ...]
    docs: tuple[DocId, ...]
    teams: tuple[int | None, ...]

    def __len__(self) -> int:
        return len(self.docs)


class Credit(msgspec.Struct, frozen=True):
    """What the clicks on one page say about the rankers (an immutable record).

    Attributes:
        scores: one score per ranker (clicks credited to it, or its expected or rank-based
            credit, depending on the method).
        winner: index of the preferred ranker, or None for a tie.
        pairwise: pairwise[i][j] in [-1, 1] is the (expected) outcome of ranker i against
            ranker j: +1 i wins, -1 j wins, 0 tie. Antisymmetric.
    """

    scores: tuple[float, ...]
    winner: int | None
    pairwise: tuple[tuple[float, ...], ...]

    @property
    def outcome(self) -> float:
        """Ranker 0 against ranker 1: +1 win, -1 loss, 0 tie (an expectation, if fractional)."""
        return self.pairwise[0][1]


@dataclass(frozen=True, slots=True)
class PageBatch:
    """Many pages over integer document ids.

    Attributes:
        method: name of the method that made them.
        lists: (rankers, n, depth) int64 input lists, `-1` padded.
        docs: (n, k) int64 pages, `-1` where a page is shorter than k.
        teams: (n, k) int8 team per position, `-1` for none (neutral or empty).
    """

    method: str
    lists: IntArray
    docs: IntArray
    teams: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.docs.shape[0])

    def page(self, i: int) -> Page:
        """Impression `i` as a scalar `Page`."""
        lists = tuple(tuple(int(d) for d in lst[i] if d >= 0) for lst in self.lists)
        n = int((self.docs[i] >= 0).sum())
        docs = tuple(int(d) for d in self.docs[i, :n])
        teams = tuple(None if t < 0 else int(t) for t in self.teams[i, :n])
        return Page(self.method, lists, docs, teams)


@dataclass(frozen=True, slots=True)
class CreditBatch:
    """Credits for many pages: scores (n, rankers), winner (n,) with -1 for a tie, and
    pairwise (n, rankers, rankers) outcomes."""

    scores: npt.NDArray[np.float64]
    winner: npt.NDArray[np.int8]
    pairwise: npt.NDArray[np.float64]

    @property
    def outcome(self) -> npt.NDArray[np.float64]:
        """(n,) outcome of ranker 0 against ranker 1."""
        return self.pairwise[:, 0, 1]


def check_k(k: object) -> int:
    """Validate the page length."""
    if type(k) is int and k > 0:
        return k
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int, not {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return int(k)


def check_rng(rng: object) -> np.random.Generator:
    """Validate the random generator (randomness is always passed in)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (see interleave.rng_for), "
            f"not {type(rng).__name__}"
        )
    return rng


def prepare_lists(
    lists: Sequence[Iterable[DocId]], n_rankers: int | None
) -> tuple[tuple[DocId, ...], ...]:
    """Validate ranked lists and drop repeated ids inside a list (first occurrence kept).

    Args:
        lists: one ranked list per ranker.
        n_rankers: the number of lists the method takes, or None for two or more.
    """
    # Fast path for the common case: two plain lists or tuples of hashable ids, no repeats.
    if n_rankers == 2 and (type(lists) is list or type(lists) is tuple) and len(lists) == 2:
        a, b = lists
        if (type(a) is tuple or type(a) is list) and (type(b) is tuple or type(b) is list):
            try:
                ta = a if type(a) is tuple else tuple(a)
                tb = b if type(b) is tuple else tuple(b)
                if len(set(ta)) != len(ta):
                    ta = tuple(dict.fromkeys(ta))
                if len(set(tb)) != len(tb):
                    tb = tuple(dict.fromkeys(tb))
                return ta, tb
            except TypeError:
                pass  # the slow path below names the bad list
    if isinstance(lists, str | bytes) or not isinstance(lists, Sequence):
        raise TypeError("lists must be a sequence of ranked lists")
    if n_rankers is None:
        if len(lists) < 2:
            raise ValueError(f"lists must hold at least 2 ranked lists, got {len(lists)}")
    elif len(lists) != n_rankers:
        raise ValueError(f"lists must hold exactly {n_rankers} ranked lists, got {len(lists)}")
    out = []
    for i, lst in enumerate(lists):
        if isinstance(lst, str | bytes) or not isinstance(lst, Iterable):
            raise TypeError(f"lists[{i}] must be a sequence of document ids")
        try:
            out.append(tuple(dict.fromkeys(lst)))
        except TypeError:
            bad = next(d for d in lst if not isinstance(d, Hashable))
            raise TypeError(
                f"lists[{i}] holds an unhashable document id of type {type(bad).__name__}"
            ) from None
    return tuple(out)


def check_clicks(clicks: Iterable[int], n: int) -> frozenset[int]:
    """Validate click positions on a page of length `n`; a position clicked twice counts once."""
    if type(clicks) is list or type(clicks) is tuple or type(clicks) is range:
        fast = frozenset(clicks)
        for c in fast:
            if type(c) is not int or not 0 <= c < n:
                break
        else:
            return fast
    if isinstance(clicks, str | bytes):
        raise TypeError("clicks must be a collection of page positions")
    positions = set()
    for c in clicks:
        if isinstance(c, bool) or not isinstance(c, int | np.integer):
            raise TypeError(f"clicks must be integer positions, got {type(c).__name__}")
        if not 0 <= c < n:
            raise ValueError(f"clicks holds position {c}, outside the page (0..{n - 1})")
        positions.add(operator.index(c))
    return frozenset(positions)


def sign_matrix(scores: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """pairwise[i][j] = sign(scores[i] - scores[j])."""
    return tuple(tuple(float((si > sj) - (si < sj)) for sj in scores) for si in scores)


def winner_of(scores: Sequence[float]) -> int | None:
    best = max(scores)
    top = [i for i, s in enumerate(scores) if s == best]
    return top[0] if len(top) == 1 else None


class Method(ABC):
    """An interleaving method: configuration lives on the instance, pages are pure outputs.

    Subclasses set `name` and `n_rankers` (None for any number >= 2) and implement
    `interleave`, `credit` and `distribution`.
    """

    name: ClassVar[str]
    n_rankers: ClassVar[int | None] = 2

    @abstractmethod
    def interleave(
        self, lists: Sequence[Iterable[DocId]], *, k: int, rng: np.random.Generator
    ) -> Page:
        """Merge `lists` into a page of at most `k` documents."""

    def interleave_seeded(
        self, lists: Sequence[Iterable[DocId]], *, k: int, seed: int, scheme: str = SEED_SCHEME
    ) -> Page:
        """The page `interleave` makes with ``rng_from_seed(seed, scheme)``.

        That is the page an impression's logged seed stands for. Methods that read only the
        generator's raw words override it to read them from `interleave.seeding.seed_words`,
        which gives the same words without building a generator (a server drafts a page per
        request).
        """
        return self.interleave(lists, k=k, rng=rng_from_seed(seed, scheme))

    def coin_bits(self, k: int) -> int | None:
        """How many low bits of the first raw word decide a seeded page of `k` documents, or
        None when that is not known (the default) or more than that word is read.

        Two `interleave_seeded` calls with the same lists and `k` whose seeds' first words
        (`interleave.seeding.first_word`) agree on these bits give the same page: a server
        may keep pages by (lists, k, bits) and draft a popular query's page once per outcome
        of its coins.
        """
        return None

    @abstractmethod
    def credit(self, page: Page, clicks: Iterable[int]) -> Credit:
        """Turn clicks (positions on `page`) into a credit for each ranker.

        No clicks is a tie: no winner and every pairwise outcome 0 (live figures count a new
        impression on that rule without asking the method).
        """

    @abstractmethod
    def distribution(self, lists: Sequence[Iterable[DocId]], *, k: int) -> Mapping[Page, float]:
        """Every page `interleave` can return for these inputs, with its exact probability."""

    def options(self) -> dict[str, Any]:
        """The options this method was configured with (for logs and reports)."""
        return {}

    def check_page(self, page: Page) -> None:
        """Refuse a page that another method made."""
        if not isinstance(page, Page):
            raise TypeError(f"page must be a Page, not {type(page).__name__}")
        if page.method != self.name:
            raise PageMismatchError(
                f"page was made by {page.method!r}; {self.name!r} cannot credit it"
            )

    def interleave_batch(self, lists: IntArray, *, k: int, rng: np.random.Generator) -> PageBatch:
        """Interleave many impressions at once.

        Args:
            lists: (rankers, n, depth) integer document ids, `-1` padded at the end.
            k: page length.
            rng: the generator for the whole batch.
        """
        arr = _check_batch_lists(lists, self.n_rankers)
        k = check_k(k)
        check_rng(rng)
        n = arr.shape[1]
        docs = np.full((n, k), -1, dtype=np.int64)
        teams = np.full((n, k), -1, dtype=np.int8)
        for i in range(n):
            page = self.interleave(
                [[int(d) for d in lst[i] if d >= 0] for lst in arr], k=k, rng=rng
            )
            m = len(page.docs)
            docs[i, :m] = page.docs  # type: ignore[assignment]
            teams[i, :m] = [-1 if t is None else t for t in page.teams]
        return PageBatch(self.name, arr, docs, teams)

    def credit_batch(self, pages: PageBatch, clicks: npt.NDArray[np.bool_]) -> CreditBatch:
        """Credit many pages at once; `clicks` is an (n, k) boolean array of clicked positions."""
        clicks = _check_batch_clicks(pages, clicks, self.name)
        n, r = len(pages), pages.lists.shape[0]
        scores = np.zeros((n, r))
        winner = np.full(n, -1, dtype=np.int8)
        pairwise = np.zeros((n, r, r))
        for i in range(n):
            c = self.credit(pages.page(i), np.flatnonzero(clicks[i]).tolist())
            scores[i] = c.scores
            winner[i] = -1 if c.winner is None else c.winner
            pairwise[i] = c.pairwise
        return CreditBatch(scores, winner, pairwise)


def _check_batch_lists(lists: object, n_rankers: int | None, *, dedupe: bool = True) -> IntArray:
    arr = np.asarray(lists)
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError("lists must be an integer array of shape (rankers, n, depth)")
    if n_rankers is None and arr.shape[0] < 2:
        raise ValueError(f"lists must hold at least 2 rankers, got {arr.shape[0]}")
    if n_rankers is not None and arr.shape[0] != n_rankers:
        raise ValueError(f"lists must hold exactly {n_rankers} rankers, got {arr.shape[0]}")
    if (arr < -1).any():
        raise ValueError("lists must hold document ids >= 0, with -1 as padding")
    arr = arr.astype(np.int64, copy=False)
    return dedupe_rows(arr) if dedupe else arr


def dedupe_rows(lists: IntArray) -> IntArray:
    """Drop repeated ids inside each list (first occurrence kept) and move padding to the end,
    as `prepare_lists` does for one page."""
    depth = lists.shape[-1]
    if depth < 2:
        return lists
    ordered = np.sort(lists, axis=-1)
    pad_inside = (lists[..., :-1] < 0) & (lists[..., 1:] >= 0)
    if not ((ordered[..., 1:] == ordered[..., :-1]) & (ordered[..., 1:] >= 0)).any() and not (
        pad_inside.any()
    ):
        return lists  # the common case: nothing repeated, padding already at the end
    eq = lists[..., :, None] == lists[..., None, :]
    earlier = np.tril(np.ones((depth, depth), dtype=bool), k=-1)
    repeat = (eq & earlier).any(axis=-1) | (lists < 0)
    if not repeat.any():
        return lists
    order = np.argsort(repeat, axis=-1, kind="stable")
    out = np.take_along_axis(np.where(repeat, -1, lists), order, axis=-1)
    return out


def _check_batch_clicks(pages: PageBatch, clicks: object, method: str) -> npt.NDArray[np.bool_]:
    if not isinstance(pages, PageBatch):
        raise TypeError(f"pages must be a PageBatch, not {type(pages).__name__}")
    if pages.method != method:
        raise PageMismatchError(
            f"pages were made by {pages.method!r}; {method!r} cannot credit them"
        )
    arr = np.asarray(clicks)
    if arr.dtype != np.bool_ or arr.shape != pages.docs.shape:
        raise ValueError(f"clicks must be a boolean array of shape {pages.docs.shape}")
    if (arr & (pages.docs < 0)).any():
        raise ValueError("clicks holds a click on an empty page position")
    return arr
