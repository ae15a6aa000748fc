"""Every legal page with its exact probability, checked against independent references and
against what `interleave` actually draws."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pytest
from scipy.stats import chisquare

import interleave
from interleave import Page

SMALL_INPUTS = [
    ((1, 2, 3), (2, 3, 1)),
    ((1, 2, 3, 4), (4, 3, 2, 1)),
    ((1, 2), (3, 4, 5)),
    ((1, 2, 3), (1, 2, 4)),
    ((1, 2, 3), (1, 2, 3)),
    ((1, 2, 2, 3), (3, 5)),
    ((), (1, 2)),
]


def reference_team_draft(
    a: Sequence[Hashable], b: Sequence[Hashable], k: int
) -> dict[tuple[tuple[Hashable, ...], tuple[int | None, ...]], float]:
    """Team-draft straight from the paper: recursion over the coin of every even round."""
    a = tuple(dict.fromkeys(a))
    b = tuple(dict.fromkeys(b))
    out: Counter[tuple[tuple[Hashable, ...], tuple[int | None, ...]]] = Counter()

    def step(docs: tuple[Hashable, ...], teams: tuple[int | None, ...], p: float) -> None:
        rest_a = [d for d in a if d not in docs]
        rest_b = [d for d in b if d not in docs]
        if len(docs) == k or not (rest_a or rest_b):
            out[(docs, teams)] += p
            return
        na, nb = teams.count(0), teams.count(1)
        if not rest_b or (rest_a and na < nb):
            step((*docs, rest_a[0]), (*teams, 0), p)
        elif not rest_a or nb < na:
            step((*docs, rest_b[0]), (*teams, 1), p)
        else:
            step((*docs, rest_a[0]), (*teams, 0), p / 2)
            step((*docs, rest_b[0]), (*teams, 1), p / 2)

    step((), (), 1.0)
    return dict(out)


def as_table(
    dist: Mapping[Page, float],
) -> dict[tuple[tuple[Hashable, ...], tuple[int | None, ...]], float]:
    table: Counter[tuple[tuple[Hashable, ...], tuple[int | None, ...]]] = Counter()
    for page, p in dist.items():
        table[(page.docs, page.teams)] += p
    return dict(table)


@pytest.mark.parametrize(("a", "b"), SMALL_INPUTS)
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_team_draft_matches_reference(a: tuple[int, ...], b: tuple[int, ...], k: int) -> None:
    got = as_table(interleave.get("team_draft").distribution([a, b], k=k))
    want = reference_team_draft(a, b, k)
    assert got.keys() == want.keys()
    for key, p in want.items():
        assert got[key] == pytest.approx(p)


def reference_balanced(
    a: Sequence[Hashable], b: Sequence[Hashable], k: int, a_first: bool
) -> tuple[Hashable, ...]:
    """Joachims' pseudocode: kA, kB counters; the list that is behind (or A on a tie, if A
    goes first) contributes its next document unless it is already shown."""
    a = tuple(dict.fromkeys(a))
    b = tuple(dict.fromkeys(b))
    page: list[Hashable] = []
    ka = kb = 0
    while len(page) < k and (ka < len(a) or kb < len(b)):
        use_a = ka < len(a) and (kb >= len(b) or ka < kb or (ka == kb and a_first))
        if use_a:
            if a[ka] not in page:
                page.append(a[ka])
            ka += 1
        else:
            if b[kb] not in page:
                page.append(b[kb])
            kb += 1
    return tuple(page)


@pytest.mark.parametrize(("a", "b"), SMALL_INPUTS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_balanced_matches_reference(a: tuple[int, ...], b: tuple[int, ...], k: int) -> None:
    dist = interleave.get("balanced").distribution([a, b], k=k)
    want: Counter[tuple[Hashable, ...]] = Counter()
    for a_first in (True, False):
        want[reference_balanced(a, b, k, a_first)] += 0.5
    got: Counter[tuple[Hashable, ...]] = Counter()
    for page, p in dist.items():
        got[page.docs] += p
    assert got == pytest.approx(want)


def test_multileave_three_permutations_is_uniform_over_orders() -> None:
    lists = [(1, 2, 3), (2, 3, 1), (3, 1, 2)]
    dist = interleave.get("team_draft_multileave").distribution(lists, k=3)
    # Each ranker picks its top document first in random order: all 3! orders, 1/6 each.
    assert sorted(p.docs for p in dist) == sorted(itertools.permutations((1, 2, 3)))
    assert all(p == pytest.approx(1 / 6) for p in dist.values())


def test_multileave_with_two_rankers_is_team_draft() -> None:
    for a, b in SMALL_INPUTS:
        ml = as_table(interleave.get("team_draft_multileave").distribution([a, b], k=3))
        td = reference_team_draft(a, b, 3)
        assert ml.keys() == td.keys()
        for key, p in td.items():
            assert ml[key] == pytest.approx(p)


def test_probabilistic_distribution_matches_page_probability() -> None:
    method = interleave.get("probabilistic")
    a, b = (1, 2, 3, 4), (3, 5, 1)
    dist = method.distribution([a, b], k=3)
    assert sum(dist.values()) == pytest.approx(1.0)
    by_docs: Counter[tuple[Hashable, ...]] = Counter()
    for page, p in dist.items():
        by_docs[page.docs] += p
    for docs, p in by_docs.items():
        page = Page("probabilistic", (a, b), docs, (None,) * len(docs))
        assert method.page_probability(page) == pytest.approx(p)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("team_draft", {}),
        ("team_draft", {"neutral_prefix": True}),
        ("team_draft", {"competitive_pairs": True}),
        ("balanced", {}),
        ("team_draft_multileave", {}),
        ("probabilistic", {}),
        ("optimized", {}),
    ],
)
def test_sampled_pages_follow_the_exact_distribution(name: str, options: dict[str, bool]) -> None:
    method = interleave.get(name, **options)
    lists = [(1, 2, 3, 4), (2, 4, 5, 1)]
    if name == "team_draft_multileave":
        lists.append((5, 3, 1, 6))
    dist = as_table(method.distribution(lists, k=4))
    rng = np.random.default_rng(20261129)
    draws = 20_000
    seen: Counter[tuple[tuple[Hashable, ...], tuple[int | None, ...]]] = Counter()
    for _ in range(draws):
        page = method.interleave(lists, k=4, rng=rng)
        seen[(page.docs, page.teams)] += 1
    assert set(seen) <= set(dist), "interleave drew a page the distribution does not list"
    keys = sorted(dist, key=repr)
    observed = [seen[key] for key in keys]
    expected = [dist[key] * draws for key in keys]
    if len(keys) > 1:
        assert chisquare(observed, expected).pvalue > 1e-4
    assert sum(dist.values()) == pytest.approx(1.0)
