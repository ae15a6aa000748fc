"""Properties that hold for every input (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import interleave

ids = st.integers(min_value=0, max_value=15)
lists2 = st.tuples(st.lists(ids, max_size=12), st.lists(ids, max_size=12))
ks = st.integers(min_value=1, max_value=15)
seeds = st.integers(min_value=0, max_value=2**32)

ALL = [
    interleave.get("team_draft"),
    interleave.get("team_draft", neutral_prefix=True),
    interleave.get("team_draft", competitive_pairs=True),
    interleave.get("balanced"),
    interleave.get("team_draft_multileave"),
    interleave.get("probabilistic"),
    interleave.get("optimized", max_pages=200),
]
ORDER_PRESERVING = [m for m in ALL if m.name != "probabilistic"]


@settings(max_examples=60, deadline=None)
@given(lists=lists2, k=ks, seed=seeds)
def test_page_has_no_repeats_and_full_length(
    lists: tuple[list[int], list[int]], k: int, seed: int
) -> None:
    union = set(lists[0]) | set(lists[1])
    for method in ALL:
        page = method.interleave(lists, k=k, rng=np.random.default_rng(seed))
        assert len(set(page.docs)) == len(page.docs)
        # never cut to the shorter list: the page is as long as k and the union allow
        assert len(page.docs) == min(k, len(union))
        assert set(page.docs) <= union
        assert len(page.teams) == len(page.docs)


@settings(max_examples=60, deadline=None)
@given(lists=lists2, k=ks, seed=seeds)
def test_each_ranker_keeps_its_relative_order(
    lists: tuple[list[int], list[int]], k: int, seed: int
) -> None:
    for method in ORDER_PRESERVING:
        page = method.interleave(lists, k=k, rng=np.random.default_rng(seed))
        for t, lst in enumerate(page.lists):
            rank = {d: i for i, d in enumerate(lst)}
            mine = [rank[d] for d, team in zip(page.docs, page.teams, strict=True) if team == t]
            assert mine == sorted(mine), (method.name, t)


@settings(max_examples=80, deadline=None)
@given(
    perm=st.permutations(list(range(10))),
    k=ks,
    seed=seeds,
)
def test_team_draft_team_sizes_within_one_at_every_prefix(
    perm: list[int], k: int, seed: int
) -> None:
    # Both lists hold the same documents, so neither runs out before the page is full.
    a, b = list(range(10)), perm
    for method in (interleave.get("team_draft"), interleave.get("team_draft_multileave")):
        page = method.interleave([a, b], k=k, rng=np.random.default_rng(seed))
        na = nb = 0
        for team in page.teams:
            na += team == 0
            nb += team == 1
            assert abs(na - nb) <= 1


@settings(max_examples=60, deadline=None)
@given(lists=lists2, k=ks, seed=seeds)
def test_page_two_continues_page_one(lists: tuple[list[int], list[int]], k: int, seed: int) -> None:
    for method in ALL:
        if method.name == "optimized":
            continue  # its distribution is solved for the whole page length
        short = method.interleave(lists, k=k, rng=np.random.default_rng(seed))
        long = method.interleave(lists, k=k + 5, rng=np.random.default_rng(seed))
        assert long.docs[: len(short.docs)] == short.docs
        assert long.teams[: len(short.teams)] == short.teams


@settings(max_examples=60, deadline=None)
@given(lists=lists2, k=ks, seed=seeds)
def test_competitive_pairs_only_hides_teams(
    lists: tuple[list[int], list[int]], k: int, seed: int
) -> None:
    plain = interleave.get("team_draft").interleave(lists, k=k, rng=np.random.default_rng(seed))
    comp = interleave.get("team_draft", competitive_pairs=True).interleave(
        lists, k=k, rng=np.random.default_rng(seed)
    )
    assert comp.docs == plain.docs
    for p, c in zip(plain.teams, comp.teams, strict=True):
        assert c in (p, None)


@settings(max_examples=40, deadline=None)
@given(lst=st.lists(ids, max_size=12), k=ks, seed=seeds)
def test_identical_lists_always_tie_with_neutral_prefix(lst: list[int], k: int, seed: int) -> None:
    method = interleave.get("team_draft", neutral_prefix=True)
    page = method.interleave([lst, lst], k=k, rng=np.random.default_rng(seed))
    assert all(t is None for t in page.teams)
    clicks = range(len(page.docs))
    assert method.credit(page, clicks).winner is None


@settings(max_examples=60, deadline=None)
@given(lists=lists2, k=ks, seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_a_seeded_page_is_the_page_of_its_generator(
    lists: tuple[list[int], list[int]], k: int, seed: int
) -> None:
    for scheme in interleave.SEED_SCHEMES:
        for method in ALL:
            expected = method.interleave(
                list(lists), k=k, rng=interleave.rng_from_seed(seed, scheme)
            )
            assert method.interleave_seeded(list(lists), k=k, seed=seed, scheme=scheme) == expected


@settings(max_examples=40, deadline=None)
@given(lists=lists2, k=ks, seed=seeds)
def test_no_clicks_is_a_tie(lists: tuple[list[int], list[int]], k: int, seed: int) -> None:
    for method in ALL:
        page = method.interleave(list(lists), k=k, rng=interleave.rng_from_seed(seed))
        credit = method.credit(page, [])
        assert credit.winner is None
        assert all(value == 0 for row in credit.pairwise for value in row)


_COIN_SEEDS = range(400)


_COIN_METHODS = [*ALL, interleave.get("team_draft", neutral_prefix=True, competitive_pairs=True)]


@settings(max_examples=30, deadline=None)
@given(
    lists=st.tuples(*[st.lists(st.integers(min_value=0, max_value=200), max_size=90)] * 2),
    k=st.one_of(ks, st.integers(min_value=100, max_value=128)),
    scheme=st.sampled_from(interleave.SEED_SCHEMES),
)
def test_pages_are_decided_by_their_coin_bits(
    lists: tuple[list[int], list[int]], k: int, scheme: str
) -> None:
    # A server keeps pages by (lists, k, coin bits): seeds whose first words agree on those
    # bits must draft the same page, or a kept page would differ from the logged seed's.
    for method in _COIN_METHODS:
        bits = method.coin_bits(k)
        if bits is None:
            continue
        pages: dict[int, interleave.Page] = {}
        for seed in _COIN_SEEDS:
            coins = interleave.first_word(seed, scheme) & ((1 << bits) - 1)
            page = method.interleave_seeded(list(lists), k=k, seed=seed, scheme=scheme)
            assert pages.setdefault(coins, page) == page, (method.name, seed)


def test_coin_bits_are_known_for_the_raw_word_methods() -> None:
    assert interleave.get("team_draft").coin_bits(12) == 6
    assert interleave.get("team_draft", competitive_pairs=True).coin_bits(13) == 7
    assert interleave.get("team_draft").coin_bits(129) is None
    assert interleave.get("balanced").coin_bits(50) == 1
    assert interleave.get("probabilistic").coin_bits(12) is None
