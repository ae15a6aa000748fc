"""`simulations.rankings.ranking_table`: cached per ranker fingerprint, never stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rankers.base import Query, Ranking, fingerprint
from rankers.corpus import Corpus
from rankers.noisy import NoisyRanker
from rankers.static import StaticRanker
from simulations.rankings import ranking_table

IDS = [f"item/{i}" for i in range(12)]


def corpus() -> Corpus:
    return Corpus.from_arrays(
        "twelve",
        IDS,
        np.zeros((12, 1, 1, 3), np.uint8),
        styles=["s"] * 12,
        concepts=[f"c{i}" for i in range(12)],
        subcategories=["t"] * 12,
    )


class Counting:
    """Wraps a ranker and counts its calls."""

    def __init__(self, inner: StaticRanker) -> None:
        self.inner, self.calls = inner, 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def rank(self, query: Query, k: int) -> Ranking:
        self.calls += 1
        return self.inner.rank(query, k)


def test_a_table_is_computed_once_then_read_from_the_cache(tmp_path: Path) -> None:
    ranker = Counting(StaticRanker(IDS, {"item/0": ["item/5", "item/3"]}, name="fixed"))
    first = ranking_table(ranker, corpus(), [0, 1], 3, cache=tmp_path)
    assert ranker.calls == 2
    again = ranking_table(ranker, corpus(), [0, 1], 3, cache=tmp_path)
    assert ranker.calls == 2  # served from the cached file
    np.testing.assert_array_equal(again, first)
    assert first[0].tolist() == [5, 3, 1]  # the fixed list, then corpus order without itself


def test_a_changed_ranker_under_the_same_name_is_ranked_afresh(tmp_path: Path) -> None:
    before = StaticRanker(IDS, {"item/0": ["item/5"]}, name="model")
    after = StaticRanker(IDS, {"item/0": ["item/7"]}, name="model")  # a new version, same name
    assert fingerprint(before) != fingerprint(after)
    assert ranking_table(before, corpus(), [0], 2, cache=tmp_path)[0, 0] == 5
    assert ranking_table(after, corpus(), [0], 2, cache=tmp_path)[0, 0] == 7


def test_fingerprints_cover_the_parameters_and_the_base_ranker() -> None:
    base = StaticRanker(IDS, name="base")
    other_base = StaticRanker(IDS, {"item/0": ["item/2"]}, name="base")
    noisy = NoisyRanker(base, 2.0, "salt", name="noisy")
    assert fingerprint(noisy) != fingerprint(NoisyRanker(base, 2.0, "other salt", name="noisy"))
    assert fingerprint(noisy) != fingerprint(NoisyRanker(base, 3.0, "salt", name="noisy"))
    assert fingerprint(noisy) != fingerprint(NoisyRanker(other_base, 2.0, "salt", name="noisy"))
    assert fingerprint(noisy) == fingerprint(NoisyRanker(base, 2.0, "salt", name="noisy"))


def test_a_corrupt_or_zeroed_cache_file_is_built_again(tmp_path: Path) -> None:
    ranker = Counting(StaticRanker(IDS, {"item/0": ["item/5", "item/3"]}, name="fixed"))
    first = ranking_table(ranker, corpus(), [0, 1], 3, cache=tmp_path)
    (cached,) = tmp_path.glob("fixed-*.npy")
    cached.write_bytes(np.random.default_rng(0).bytes(200))  # unreadable
    np.testing.assert_array_equal(ranking_table(ranker, corpus(), [0, 1], 3, cache=tmp_path), first)
    assert ranker.calls == 4
    np.save(cached, np.zeros((2, 3), np.int64))  # readable, the right shape, no ranking
    np.testing.assert_array_equal(ranking_table(ranker, corpus(), [0, 1], 3, cache=tmp_path), first)
    assert ranker.calls == 6
    again = ranking_table(ranker, corpus(), [0, 1], 3, cache=tmp_path)
    np.testing.assert_array_equal(again, first)
    assert ranker.calls == 6  # the rebuilt file is read again
