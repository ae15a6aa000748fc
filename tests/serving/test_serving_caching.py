"""The ranking cache: bounded, least recently used first, counted, and invisible in results."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from serving_support import ClientFactory, make_config, make_corpus

from rankers.base import Query, Ranking
from rankers.static import StaticRanker
from serving.caching import RankingCache

IDS = make_corpus().ids


class CountingRanker:
    """Wraps a ranker and counts the queries it ranks."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self._lock = threading.Lock()

    def rank(self, query: Query, k: int) -> Ranking:
        with self._lock:
            self.calls += 1
        result: Ranking = self.inner.rank(query, k)
        return result


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = RankingCache(3)
    for i in range(3):
        cache.put(("a", f"q{i}", 5), (f"d{i}",))
    assert cache.get(("a", "q0", 5)) == ("d0",)  # q0 is now the most recently used
    cache.put(("a", "q3", 5), ("d3",))
    assert len(cache) == 3
    assert cache.evictions == 1
    assert cache.get(("a", "q1", 5)) is None  # the least recently used went first
    assert cache.get(("a", "q0", 5)) == ("d0",)
    assert cache.get(("a", "q3", 5)) == ("d3",)
    assert cache.get(("b", "q3", 5)) is None  # the ranker is part of the key
    assert cache.get(("a", "q3", 10)) is None  # and so is the depth
    assert (cache.hits, cache.misses) == (3, 3)
    assert cache.hit_ratio == 0.5
    for i in range(100):
        cache.put(("a", f"r{i}", 5), ())
    assert len(cache) == 3


def test_a_zero_capacity_cache_holds_nothing() -> None:
    cache = RankingCache(0)
    assert cache.hit_ratio == 0.0
    cache.put(("a", "q", 5), ("d",))
    assert len(cache) == 0
    assert cache.get(("a", "q", 5)) is None
    assert cache.misses == 1
    with pytest.raises(ValueError, match="capacity"):
        RankingCache(-1)


def _metric(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_cached_searches_equal_uncached_ones_and_are_counted(
    make_client: ClientFactory, tmp_path: Path, corpus_dir: Path
) -> None:
    def build(capacity: int, logs: str) -> tuple[Any, dict[str, CountingRanker]]:
        rankers = {
            name: CountingRanker(StaticRanker(IDS[seed:] + IDS[:seed], {}, name=name))
            for seed, name in ((1, "a"), (7, "b"), (13, "c"))
        }
        config = make_config(
            tmp_path / logs,
            corpus_dir,
            limits={"ranker_timeout": 1.0, "ranking_cache": capacity},
        )
        client = make_client(config, rankers=rankers)
        return client, rankers

    cached, cached_rankers = build(8, "cached")
    plain, plain_rankers = build(0, "plain")
    queries = [(IDS[i % 3], f"u{i}", 1 + i % 2) for i in range(12)]  # 3 ids, pages 1 and 2
    for corpus_id, unit, page in queries:
        body = {"corpus_id": corpus_id, "unit_id": unit, "page": page}
        one = cached.post("/search", json=body)
        other = plain.post("/search", json=body)
        assert one.status_code == other.status_code == 200, (one.text, other.text)
        a, b = one.json(), other.json()
        assert a["results"] == b["results"]
        assert a["has_more"] == b["has_more"]
    # Uncached: every search asks each ranker of its route once per page depth up to its own.
    assert sum(r.calls for r in plain_rankers.values()) > sum(
        r.calls for r in cached_rankers.values()
    )
    text = cached.get("/metrics").text
    hits = _metric(text, "braid_ranking_cache_hits_total")
    misses = _metric(text, "braid_ranking_cache_misses_total")
    # Each miss ranked afresh exactly once; a hit called no ranker.
    assert misses == sum(r.calls for r in cached_rankers.values())
    assert hits > 0
    assert _metric(text, "braid_ranking_cache_entries") <= 8  # bounded
    assert _metric(text, "braid_ranking_cache_evictions_total") > 0
    assert _metric(text, "braid_ranking_cache_hit_ratio") == pytest.approx(hits / (hits + misses))
    plain_text = plain.get("/metrics").text
    assert _metric(plain_text, "braid_ranking_cache_hits_total") == 0
    assert _metric(plain_text, "braid_ranking_cache_entries") == 0


def test_a_failed_ranking_is_not_cached(make_client: ClientFactory) -> None:
    class FlakyRanker(CountingRanker):
        def rank(self, query: Query, k: int) -> Ranking:
            result = super().rank(query, k)
            if self.calls == 1:
                raise RuntimeError("down once")
            return result

    flaky = FlakyRanker(StaticRanker(IDS, {}, name="a"))
    client = make_client(rankers={"a": flaky})
    first = client.post("/search", json={"corpus_id": IDS[0], "unit_id": "u1"})
    second = client.post("/search", json={"corpus_id": IDS[0], "unit_id": "u1"})
    assert first.status_code == second.status_code == 200
    assert flaky.calls == 2  # asked again after the failure
    third = client.post("/search", json={"corpus_id": IDS[0], "unit_id": "u1"})
    assert third.json()["results"] == second.json()["results"]
    assert flaky.calls == 2  # then served from the cache


class TableRanker(CountingRanker):
    """A ranker holding corpus-id rankings `depth` deep (`rankers.Precomputed`)."""

    def __init__(self, inner: Any, depth: int, *, broken: bool = False) -> None:
        super().__init__(inner)
        self.depth, self.broken, self.lookups = depth, broken, 0

    def precomputed_ids(self, corpus_id: str, k: int) -> tuple[str, ...] | None:
        self.lookups += 1
        if self.broken:
            raise RuntimeError("table unreadable")
        if k > self.depth:
            return None
        result: Ranking = self.inner.rank(Query(corpus_id=corpus_id), k)
        return result.ids


def test_a_precomputed_ranking_is_read_without_ranking(
    make_client: ClientFactory, tmp_path: Path, corpus_dir: Path
) -> None:
    """Pages within the table's depth are read from it (and cached), deeper ones are ranked,
    and the pages are the same as a ranker without a table gives."""
    config = make_config(tmp_path / "t", corpus_dir, limits={"ranker_timeout": 1.0})
    table = {
        "a": TableRanker(StaticRanker(IDS[1:] + IDS[:1], {}, name="a"), depth=5),
        "b": TableRanker(StaticRanker(IDS[2:] + IDS[:2], {}, name="b"), depth=5),
    }
    plain = {
        "a": CountingRanker(StaticRanker(IDS[1:] + IDS[:1], {}, name="a")),
        "b": CountingRanker(StaticRanker(IDS[2:] + IDS[:2], {}, name="b")),
    }
    with_table = make_client(config, rankers=table)
    without = make_client(make_config(tmp_path / "p", corpus_dir), rankers=plain)
    for page in (1, 2):
        body = {"corpus_id": IDS[4], "unit_id": "u1", "page": page}
        one, other = with_table.post("/search", json=body), without.post("/search", json=body)
        assert one.status_code == other.status_code == 200, (one.text, other.text)
        assert one.json()["results"] == other.json()["results"]
        if page == 1:  # page_size 5: the table is deep enough
            assert [r.calls for r in table.values()] == [0, 0]
            assert all(r.lookups == 1 for r in table.values())
    assert all(r.calls == 1 for r in table.values())  # depth 10 is past the table: ranked
    again = with_table.post("/search", json={"corpus_id": IDS[4], "unit_id": "u2"})
    assert again.status_code == 200
    assert all(r.lookups == 3 for r in table.values())  # page 1 came from the cache
    text = with_table.get("/metrics").text
    # Per ranker: page 1 read from the table (a miss), page 2's first list a hit and its
    # second ranked (a miss), then page 1 again a hit; each lookup counted once.
    assert _metric(text, "braid_ranking_cache_misses_total") == 4
    assert _metric(text, "braid_ranking_cache_hits_total") == 4
    for name in ("a", "b"):
        assert f'braid_ranker_table_reads_total{{ranker="{name}"}} 1.0' in text


def test_a_failing_table_counts_as_the_rankers_failure(
    make_client: ClientFactory, tmp_path: Path, corpus_dir: Path
) -> None:
    rankers = {
        "a": TableRanker(StaticRanker(IDS, {}, name="a"), depth=50, broken=True),
        "b": TableRanker(StaticRanker(IDS[3:] + IDS[:3], {}, name="b"), depth=50),
    }
    client = make_client(make_config(tmp_path, corpus_dir), rankers=rankers)
    answer = client.post("/search", json={"corpus_id": IDS[0], "unit_id": "u1"})
    assert answer.status_code == 200, answer.text  # b's list alone
    metrics = client.get("/metrics").text
    assert 'braid_ranker_failures_total{ranker="a",reason="RuntimeError"} 1.0' in metrics


def test_a_ranker_with_a_table_beside_one_without_counts_each_lookup_once(
    make_client: ClientFactory, tmp_path: Path, corpus_dir: Path
) -> None:
    table = TableRanker(StaticRanker(IDS[1:] + IDS[:1], {}, name="a"), depth=50)
    plain = CountingRanker(StaticRanker(IDS[2:] + IDS[:2], {}, name="b"))
    client = make_client(make_config(tmp_path, corpus_dir), rankers={"a": table, "b": plain})
    for unit in ("u1", "u2"):
        answer = client.post("/search", json={"corpus_id": IDS[4], "unit_id": unit})
        assert answer.status_code == 200, answer.text
    assert (table.calls, table.lookups, plain.calls) == (0, 1, 1)
    text = client.get("/metrics").text
    assert _metric(text, "braid_ranking_cache_misses_total") == 2  # a's table read, b ranked
    assert _metric(text, "braid_ranking_cache_hits_total") == 2  # both, the second time
