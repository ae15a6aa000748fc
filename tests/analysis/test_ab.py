"""A/B metrics: per-user means by hand, Welch against statsmodels, A/A levels, SRM."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from numpy.typing import NDArray
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.ab import (
    Metric,
    arm_moments,
    compare_arms,
    compare_moments,
    sample_ratio_mismatch,
    units_per_arm,
    user_metrics,
)
from analysis.moments import Moments

ALPHA = 0.05

TINY = pl.DataFrame(
    {
        "unit_id": ["a", "a", "b", "c", "d", "d"],
        "arm": ["ctl", "ctl", "ctl", "trt", "trt", "trt"],
        "clicks": [0, 2, 1, 3, 0, 1],
        "first_click_rank": [None, 2, 1, 4, None, 1],
        "success": [None, True, False, True, None, None],
    },
    schema_overrides={"clicks": pl.Int32, "first_click_rank": pl.Int32},
)


def _tolerance(p: float, trials: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / trials)


def test_user_metrics_by_hand() -> None:
    per_user = user_metrics(TINY)
    assert per_user["unit_id"].to_list() == ["a", "b", "c", "d"]
    row = per_user.row(0, named=True)  # user a: no click, then 2 clicks first at rank 2
    assert row["impressions"] == 2
    assert row[Metric.CTR] == 0.5
    assert row[Metric.CLICKS_PER_QUERY] == 1.0
    assert row[Metric.ABANDONMENT] == 0.5
    assert row[Metric.RECIPROCAL_RANK] == pytest.approx((0 + 1 / 2) / 2)
    assert row[Metric.SUCCESS] == 1.0  # only the judged impression counts
    assert per_user.row(3, named=True)[Metric.SUCCESS] is None  # user d: nothing judged


def test_arm_moments_and_compare_arms_by_hand() -> None:
    moments = arm_moments(TINY)
    assert moments["ctl"][Metric.CTR] == Moments.from_array([0.5, 1.0])
    assert moments["trt"][Metric.RECIPROCAL_RANK] == Moments.from_array([0.25, 0.5])
    assert moments["trt"][Metric.SUCCESS] == Moments.from_array([1.0])
    results = {r.metric: r for r in compare_arms(TINY, "ctl", "trt")}
    assert set(results) == {str(m) for m in Metric}
    assert results["clicks_per_query"].effect == pytest.approx((3 + 0.5) / 2 - (1 + 1) / 2)
    assert math.isnan(results["success"].p_value)  # one treatment user judged
    with pytest.raises(ValueError, match="no impressions"):
        compare_arms(TINY, "ctl", "missing")


def test_welch_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    control, treatment = rng.beta(2, 5, 80), rng.beta(2.4, 5, 130)
    ours = compare_moments(Moments.from_array(control), Moments.from_array(treatment), alpha=0.1)
    theirs = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, p, _ = theirs.ttest_ind(usevar="unequal")
    low, high = theirs.tconfint_diff(alpha=0.1, usevar="unequal")
    assert ours.p_value == pytest.approx(p)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((low, high))
    assert ours.effect == pytest.approx(treatment.mean() - control.mean())
    assert ours.lift == pytest.approx(ours.effect / control.mean())


def test_constant_arms() -> None:
    same = compare_moments(Moments.from_array([1.0, 1.0]), Moments.from_array([1.0, 1.0, 1.0]))
    assert (same.p_value, same.significant) == (1.0, False)
    differ = compare_moments(Moments.from_array([0.0, 0.0]), Moments.from_array([1.0, 1.0]))
    assert differ.p_value == 0.0


def _aa_user_means(
    rng: np.random.Generator, experiments: int, users: int
) -> tuple[
    NDArray[np.int64], NDArray[np.int64], dict[str, NDArray[np.float64]], NDArray[np.float64]
]:
    """Simulated A/A logs: (experiment, arm, per-user metric means, impressions' clicks)."""
    count = experiments * users
    experiment = np.repeat(np.arange(experiments), users)
    arm = rng.integers(0, 2, count)
    # Users differ a lot: their own click propensity, click depth, rank and success.
    propensity = rng.beta(1.5, 2.0, count)
    depth = rng.gamma(1.0, 0.5, count)
    rank_p = rng.beta(2.0, 2.0, count)
    success_p = rng.beta(2.0, 2.0, count)
    n = rng.poisson(3.0, count) + 1
    user = np.repeat(np.arange(count), n)
    clicked = rng.random(user.size) < propensity[user]
    clicks = clicked * (1 + rng.poisson(depth[user]))
    rank = rng.geometric(rank_p[user])
    judged = rng.random(user.size) < 0.7
    success = clicked & (rng.random(user.size) < success_p[user])
    per_impression = {
        Metric.CTR: clicked.astype(np.float64),
        Metric.CLICKS_PER_QUERY: clicks.astype(np.float64),
        Metric.ABANDONMENT: (~clicked).astype(np.float64),
        Metric.RECIPROCAL_RANK: np.where(clicked, 1.0 / rank, 0.0),
    }
    means = {str(m): np.bincount(user, v, count) / n for m, v in per_impression.items()}
    judged_n = np.bincount(user, judged, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        means[Metric.SUCCESS] = np.bincount(user, judged & success, count) / judged_n
    return experiment, arm, means, np.column_stack([user, clicked])


def _group_moments(
    group: NDArray[np.int64], values: NDArray[np.float64], groups: int
) -> list[Moments]:
    keep = np.isfinite(values)
    g, v = group[keep], values[keep]
    n = np.bincount(g, minlength=groups)
    total = np.bincount(g, v, groups)
    total_sq = np.bincount(g, v * v, groups)
    return [Moments(int(a), float(b), float(c)) for a, b, c in zip(n, total, total_sq, strict=True)]


def test_aa_false_positive_rate_of_every_metric() -> None:
    experiments, users = 1000, 400
    experiment, arm, means, impressions = _aa_user_means(
        np.random.default_rng(99), experiments, users
    )
    group = experiment * 2 + arm
    tol = _tolerance(ALPHA, experiments)
    for metric in Metric:
        moments = _group_moments(group, means[metric], 2 * experiments)
        rejections = sum(
            compare_moments(moments[2 * e], moments[2 * e + 1]).p_value < ALPHA
            for e in range(experiments)
        )
        assert abs(rejections / experiments - ALPHA) < tol, (metric, rejections)
    # An impression-level test of CTR ignores that a user's impressions are alike: it
    # must reject a true null too often, which is why users are the unit.
    user, clicked = impressions[:, 0], impressions[:, 1].astype(np.float64)
    naive = _group_moments(group[user], clicked, 2 * experiments)
    naive_rate = np.mean(
        [
            compare_moments(naive[2 * e], naive[2 * e + 1]).p_value < ALPHA
            for e in range(experiments)
        ]
    )
    assert naive_rate > ALPHA + tol, naive_rate


def test_srm_flags_a_48_52_split_but_not_a_fair_one() -> None:
    weights = {"control": 0.5, "treatment": 0.5}
    broken = sample_ratio_mismatch({"control": 48_000, "treatment": 52_000}, weights)
    assert broken.mismatch
    assert broken.statistic == pytest.approx(2 * 2000**2 / 50_000)
    assert broken.expected == (50_000.0, 50_000.0)
    fair_count = int(np.random.default_rng(5).binomial(100_000, 0.5))
    fair = sample_ratio_mismatch(
        {"control": fair_count, "treatment": 100_000 - fair_count}, weights
    )
    assert not fair.mismatch


def test_srm_uses_designed_weights() -> None:
    # A 10/90 design observed at 10/90 is fine; the same counts against 50/50 are not.
    counts = {"a": 10_000, "b": 90_000}
    assert not sample_ratio_mismatch(counts, {"a": 1, "b": 9}).mismatch
    assert sample_ratio_mismatch(counts, {"a": 1, "b": 1}).mismatch
    three = sample_ratio_mismatch({"a": 100, "b": 100}, {"a": 1, "b": 1, "c": 1})
    assert three.counts == (100, 100, 0)
    assert three.mismatch


def test_srm_validates() -> None:
    with pytest.raises(ValueError, match="without a designed weight"):
        sample_ratio_mismatch({"a": 1, "z": 1}, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="positive"):
        sample_ratio_mismatch({"a": 1}, {"a": 1, "b": 0})
    with pytest.raises(ValueError, match="at least one unit"):
        sample_ratio_mismatch({}, {"a": 1, "b": 1})


def test_units_per_arm_counts_distinct_users() -> None:
    assert units_per_arm(TINY) == {"ctl": 2, "trt": 2}
