"""The loop-thread metrics: what a scrape shows is what was counted."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_count_by_label() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.impressions.labels("exp-a").inc()
    metrics.impressions.labels("exp-b").inc(2)
    samples = _samples(metrics)
    assert samples[("braid_impressions_total", (("experiment", "exp-a"),))] == 3
    assert samples[("braid_impressions_total", (("experiment", "exp-b"),))] == 2


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    metrics = Metrics()
    count, latency = metrics.route("/search", 200)
    assert metrics.route("/search", 200) == (count, latency)  # looked up once
    for seconds in (0.0005, 0.001, 0.003, 0.2, 9.0):  # 0.001 lies on a bound: counted at it
        count.inc()
        latency.observe(seconds)
    samples = _samples(metrics)
    route = ("route", "/search")
    assert samples[("braid_requests_total", (route, ("status", "200")))] == 5
    bucket = {
        le: samples[("braid_request_seconds_bucket", (("le", le), route))]
        for le in ("0.001", "0.005", "0.25", "5.0", "+Inf")
    }
    assert bucket == {"0.001": 2, "0.005": 3, "0.25": 4, "5.0": 4, "+Inf": 5}
    assert samples[("braid_request_seconds_count", (route,))] == 5
    assert samples[("braid_request_seconds_sum", (route,))] == pytest.approx(9.2045)


def test_wrong_label_count_and_a_decrement_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="takes labels"):
        metrics.requests.labels("/search")
    with pytest.raises(ValueError, match="only goes up"):
        metrics.clicks.labels("exp").inc(-1)
