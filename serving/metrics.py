"""Prometheus metrics of one service instance (its own registry, so apps never share state).

The metrics every search updates (requests and their latency, impressions, clicks, refusals,
table reads) are `LoopCounter`s and `LoopHistogram`s: plain numbers changed by the event loop's
thread alone and read when scraped. prometheus_client's own take a lock and cost the search
path microseconds a request; the others (ranker failures and timings, batch sizes, journal
gauges) are prometheus_client's. Unlike those, the loop metrics export no ``_created`` series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from serving.caching import RankingCache

__all__ = ["CONTENT_TYPE", "LoopCounter", "LoopHistogram", "Metrics"]

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


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up, not by {amount}")
        self.value += amount


class _Buckets:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a bucket counts values <= its bound
        self.sum += value


_Child = TypeVar("_Child", _Count, _Buckets)


class _LoopFamily(Collector, Generic[_Child]):
    """Children by label values, made on first use; `collect` reads them when scraped."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}

    def labels(self, *values: str) -> _Child:
        """The child of these label values (made on first use)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._child()
        return child

    def _child(self) -> _Child:
        raise NotImplementedError


class LoopCounter(_LoopFamily[_Count]):
    """A labelled counter for one thread's use: ``counter.labels(*values).inc()``."""

    def _child(self) -> _Count:
        return _Count()

    def collect(self) -> Iterator[Metric]:
        """The counter's family, one sample per label values (what a scrape reads)."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value)
        yield family


class LoopHistogram(_LoopFamily[_Buckets]):
    """A labelled histogram for one thread's use: ``histogram.labels(*values).observe(x)``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets))

    def _child(self) -> _Buckets:
        return _Buckets(self.bounds)

    def collect(self) -> Iterator[Metric]:
        """The histogram's family: cumulative buckets, count and sum per label values."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [*(repr(b) for b in self.bounds), "+Inf"]
        for values, child in list(self._children.items()):
            counts, cumulative = list(child.counts), []
            running = 0
            for edge, count in zip(edges, counts, strict=True):
                running += count
                cumulative.append((edge, running))
            family.add_metric(values, cumulative, child.sum)
        yield family


class Metrics:
    """Every metric the service exports."""

    __slots__ = (
        "_routes",
        "batch_size",
        "clicks",
        "fsync_restarts",
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
        self._routes: dict[tuple[str, int], tuple[_Count, _Buckets]] = {}
        r = self.registry
        self.requests = LoopCounter(
            "braid_requests", "HTTP requests by route and status.", ("route", "status")
        )
        self.request_seconds = LoopHistogram(
            "braid_request_seconds", "HTTP request latency by route.", ("route",), _LATENCY_BUCKETS
        )
        self.refused = LoopCounter(
            "braid_refused",
            "Requests refused, by reason (unknown impression, position not shown, bad image, "
            "oversized upload, an upload the models are too busy for, ...).",
            ("reason",),
        )
        self.impressions = LoopCounter(
            "braid_impressions", "Impressions logged by experiment.", ("experiment",)
        )
        self.clicks = LoopCounter("braid_clicks", "Clicks logged by experiment.", ("experiment",))
        self.ranker_failures = Counter(
            "braid_ranker_failures",
            "Ranker calls that failed or timed out, by ranker and reason.",
            ("ranker", "reason"),
            registry=r,
        )
        self.ranker_table_reads = LoopCounter(
            "braid_ranker_table_reads",
            "Corpus-image lists read from a ranker's precomputed table (no ranking), by ranker.",
            ("ranker",),
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
        self.fsync_restarts = Gauge(
            "braid_journal_fsync_restarts",
            "Times the journal's fsync process was lost and started again, since start.",
            registry=r,
        )
        self.uncompacted = Gauge(
            "braid_journal_uncompacted_records",
            "Records in the active journal segment, not yet compacted to Parquet.",
            registry=r,
        )
        for loop_metric in (
            self.requests,
            self.request_seconds,
            self.refused,
            self.impressions,
            self.clicks,
            self.ranker_table_reads,
        ):
            r.register(loop_metric)

    def route(self, route: str, status: int) -> tuple[_Count, _Buckets]:
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

    def watch_pages(self, totals: Callable[[], tuple[int, int, int]]) -> None:
        """Export the kept pages' hits, misses (both since start) and entries, which `totals`
        gives when scraped."""
        self.registry.register(_PageMemoCollector(totals))

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


class _PageMemoCollector(Collector):
    """The kept interleaved pages (`serving.pages.PageMemo`), read at scrape time."""

    def __init__(self, totals: Callable[[], tuple[int, int, int]]) -> None:
        self._totals = totals

    def collect(self) -> Iterator[Metric]:
        hits, misses, entries = self._totals()
        yield CounterMetricFamily(
            "braid_kept_pages_hits",
            "Interleaved pages served from those kept by their lists and coins.",
            value=hits,
        )
        yield CounterMetricFamily(
            "braid_kept_pages_misses",
            "Interleaved pages drafted (and kept) because none was kept for their coins.",
            value=misses,
        )
        yield GaugeMetricFamily(
            "braid_kept_pages_entries",
            "Interleaved pages kept now, over every experiment version's memo.",
            value=entries,
        )
