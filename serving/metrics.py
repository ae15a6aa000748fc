"""Prometheus metrics of one service instance (its own registry, so apps never share state)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.caching import RankingCache

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The media type of the Prometheus text format."""

_LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Metrics:
    """Every metric the service exports."""

    __slots__ = (
        "_routes",
        "batch_size",
        "clicks",
        "impressions",
        "journal_commits",
        "journal_records",
        "ranker_failures",
        "ranker_seconds",
        "ranker_table_reads",
        "refused",
        "registry",
        "request_seconds",
        "requests",
        "uncompacted",
    )

    def __init__(self) -> None:
        """Create the metrics in a fresh registry."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._routes: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        r = self.registry
        self.requests = Counter(
            "braid_requests", "HTTP requests by route and status.", ("route", "status"), registry=r
        )
        self.request_seconds = Histogram(
            "braid_request_seconds",
            "HTTP request latency by route.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.refused = Counter(
            "braid_refused",
            "Requests refused for bad input, by reason (unknown impression, position not "
            "shown, bad image, oversized upload, ...).",
            ("reason",),
            registry=r,
        )
        self.impressions = Counter(
            "braid_impressions", "Impressions logged by experiment.", ("experiment",), registry=r
        )
        self.clicks = Counter(
            "braid_clicks", "Clicks logged by experiment.", ("experiment",), registry=r
        )
        self.ranker_failures = Counter(
            "braid_ranker_failures",
            "Ranker calls that failed or timed out, by ranker and reason.",
            ("ranker", "reason"),
            registry=r,
        )
        self.ranker_table_reads = Counter(
            "braid_ranker_table_reads",
            "Corpus-image lists read from a ranker's precomputed table (no ranking), by ranker.",
            ("ranker",),
            registry=r,
        )
        self.ranker_seconds = Histogram(
            "braid_ranker_seconds",
            "Time from submitting a query to a ranker to its answer.",
            ("ranker",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "braid_ranker_batch_size",
            "Queries per batched ranker call (micro-batching of concurrent requests).",
            ("ranker",),
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.journal_commits = Gauge(
            "braid_journal_commits", "Group commits (one fsync each) since start.", registry=r
        )
        self.journal_records = Gauge(
            "braid_journal_records", "Records committed to the journal since start.", registry=r
        )
        self.uncompacted = Gauge(
            "braid_journal_uncompacted_records",
            "Records in the active journal segment, not yet compacted to Parquet.",
            registry=r,
        )

    def route(self, route: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of a route template and status (their
        children are looked up once, not per request)."""
        key = (route, status)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = (
                self.requests.labels(route, str(status)),
                self.request_seconds.labels(route),
            )
        return found

    def watch(self, cache: RankingCache) -> None:
        """Export the ranking cache's counters (read when scraped: lookups stay lock-free)."""
        self.registry.register(_RankingCacheCollector(cache))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _RankingCacheCollector(Collector):
    """The ranking cache's lookups, hits, size and hit ratio, read at scrape time."""

    def __init__(self, cache: RankingCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self._cache
        yield CounterMetricFamily(
            "braid_ranking_cache_hits",
            "Rankers' lists of corpus-id queries served from the ranking cache.",
            value=cache.hits,
        )
        yield CounterMetricFamily(
            "braid_ranking_cache_misses",
            "Rankers' lists of corpus-id queries not in the ranking cache (ranked afresh).",
            value=cache.misses,
        )
        yield CounterMetricFamily(
            "braid_ranking_cache_evictions",
            "Lists evicted from the ranking cache (least recently used first).",
            value=cache.evictions,
        )
        yield GaugeMetricFamily(
            "braid_ranking_cache_entries", "Lists held in the ranking cache.", value=len(cache)
        )
        yield GaugeMetricFamily(
            "braid_ranking_cache_hit_ratio",
            "Hits over lookups of the ranking cache since start (0 before the first lookup).",
            value=cache.hit_ratio,
        )
