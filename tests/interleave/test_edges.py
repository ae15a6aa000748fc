"""Defined behaviour at the edges: unequal lengths, repeats, overlap, large k, empty lists."""

from __future__ import annotations

import numpy as np
import pytest

import interleave

NAMES = interleave.names()


@pytest.mark.parametrize("name", NAMES)
def test_empty_lists_give_an_empty_page_and_a_tie(name: str) -> None:
    method = interleave.get(name)
    page = method.interleave([[], []], k=5, rng=np.random.default_rng(0))
    assert page.docs == ()
    credit = method.credit(page, [])
    assert credit.winner is None
    assert credit.outcome == 0


@pytest.mark.parametrize("name", NAMES)
def test_one_empty_list_gives_the_other(name: str) -> None:
    method = interleave.get(name)
    page = method.interleave([[], [3, 1, 2]], k=5, rng=np.random.default_rng(0))
    assert sorted(page.docs) == [1, 2, 3]
    if name != "probabilistic":
        assert page.docs == (3, 1, 2)
    assert all(t in (1, None) for t in page.teams)


@pytest.mark.parametrize("name", NAMES)
def test_unequal_lengths_are_not_cut(name: str) -> None:
    method = interleave.get(name)
    page = method.interleave([[1, 2], [3, 4, 5, 6, 7]], k=6, rng=np.random.default_rng(1))
    assert len(page.docs) == 6


@pytest.mark.parametrize("name", NAMES)
def test_repeats_inside_a_list_are_dropped(name: str) -> None:
    method = interleave.get(name)
    page = method.interleave([[1, 1, 2, 1], [2, 2, 3]], k=10, rng=np.random.default_rng(2))
    assert page.lists == ((1, 2), (2, 3))
    assert sorted(page.docs) == [1, 2, 3]


@pytest.mark.parametrize("name", NAMES)
def test_k_larger_than_the_union(name: str) -> None:
    method = interleave.get(name)
    page = method.interleave([["a", "b"], ["b", "c"]], k=100, rng=np.random.default_rng(3))
    assert sorted(page.docs) == ["a", "b", "c"]


@pytest.mark.parametrize("name", NAMES)
def test_any_hashable_ids(name: str) -> None:
    method = interleave.get(name)
    a = [("img", 1), "x", 3.5, frozenset({1})]
    b = ["x", ("img", 1), None]
    page = method.interleave([a, b], k=4, rng=np.random.default_rng(4))
    assert len(page.docs) == 4
    method.credit(page, [0, 1])


def test_identical_lists_plain_team_draft_gives_random_wins() -> None:
    # The documented reason for neutral_prefix: plain team-draft credits identical lists.
    method = interleave.get("team_draft")
    rng = np.random.default_rng(5)
    winners = {
        method.credit(method.interleave([[1, 2, 3]] * 2, k=3, rng=rng), [0]).winner
        for _ in range(50)
    }
    assert winners == {0, 1}


def test_team_draft_credit_counts_clicks_per_team() -> None:
    method = interleave.get("team_draft")
    page = interleave.Page("team_draft", ((1, 2), (3, 4)), (1, 3, 2, 4), (0, 1, 0, 1))
    c = method.credit(page, [0, 2, 3, 0])  # a repeated position counts once
    assert c.scores == (2.0, 1.0)
    assert c.winner == 0
    assert c.outcome == 1.0
    assert c.pairwise == ((0.0, 1.0), (-1.0, 0.0))


def test_multileave_pairwise_outcomes() -> None:
    method = interleave.get("team_draft_multileave")
    page = interleave.Page("team_draft_multileave", ((1,), (2,), (3,)), (1, 2, 3), (0, 1, 2))
    c = method.credit(page, [0, 1])
    assert c.scores == (1.0, 1.0, 0.0)
    assert c.winner is None  # two rankers share the most clicks
    assert c.pairwise[0][1] == 0.0
    assert c.pairwise[0][2] == 1.0
    assert c.pairwise[2][1] == -1.0
