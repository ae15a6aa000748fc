"""Prometheus metrics of one service instance (its own registry, so apps never share state)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        "batch_size",
        "clicks",
        "impressions",
        "journal_commits",
        "journal_records",
        "ranker_failures",
        "ranker_seconds",
        "refused",
        "registry",
        "request_seconds",
        "requests",
        "uncompacted",
    )

    def __init__(self) -> None:
        """Create the metrics in a fresh registry."""
        self.registry = CollectorRegistry(auto_describe=True)
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

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
