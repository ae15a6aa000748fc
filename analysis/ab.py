"""A/B metrics per arm, their comparison between two arms, and the sample-ratio check.

Users, not impressions, are randomised to arms, so users are the unit of analysis: each
metric is first averaged over a user's impressions, and arms are compared on these per-user
means with Welch's t-test (unequal variances, Welch-Satterthwaite degrees of freedom). An
impression-level test would treat one user's correlated impressions as independent and
reject a true null too often. The estimand is the mean over users of each user's metric.

The comparison needs only each arm's `Moments` of the per-user means, so an arm's log
streams through a polars lazy scan; the test is the one statsmodels computes as
`CompareMeans(...).ttest_ind(usevar="unequal")` from the raw per-user values (checked in
tests/analysis/test_ab.py).

Metrics, per impression (`Metric`):
    ctr: 1 if the impression got at least one click.
    clicks_per_query: number of clicks.
    abandonment: 1 if no click (1 - ctr: the same test, mirrored).
    reciprocal_rank: 1 / rank of the first click (1-based), 0 without a click.
    success: 1 if a click landed on a relevant item; null when not judged, and then left
        out (a user with no judged impression has no success value).

The sample-ratio-mismatch check (Fabijan et al. 2019, "Diagnosing sample ratio mismatch in
online controlled experiments", KDD) compares units per arm with the designed weights by a
chi-square test and flags p < 0.001.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import polars as pl

from analysis.moments import Moments, moments_agg, moments_from_frame

# scipy.stats and statsmodels are imported inside the functions that use them: importing
# them takes seconds, and `python -m analysis --help` must stay instant.

__all__ = [
    "METRIC_EXPRS",
    "SRM_THRESHOLD",
    "Metric",
    "MetricComparison",
    "SampleRatio",
    "arm_moments",
    "compare_arms",
    "compare_moments",
    "sample_ratio_mismatch",
    "units_per_arm",
    "user_metrics",
]

SRM_THRESHOLD: Final = 0.001


class Metric(StrEnum):
    """A/B metrics, each a per-impression value averaged per user."""

    CTR = "ctr"
    CLICKS_PER_QUERY = "clicks_per_query"
    ABANDONMENT = "abandonment"
    RECIPROCAL_RANK = "reciprocal_rank"
    SUCCESS = "success"


_clicks = pl.col("clicks")

METRIC_EXPRS: Final[Mapping[Metric, pl.Expr]] = {
    Metric.CTR: (_clicks > 0).cast(pl.Float64),
    Metric.CLICKS_PER_QUERY: _clicks.cast(pl.Float64),
    Metric.ABANDONMENT: (_clicks == 0).cast(pl.Float64),
    Metric.RECIPROCAL_RANK: (1.0 / pl.col("first_click_rank").cast(pl.Float64)).fill_null(0.0),
    Metric.SUCCESS: pl.col("success").cast(pl.Float64),
}


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric compared between a control and a treatment arm.

    Attributes:
        metric: Metric name.
        control: Control arm.
        treatment: Treatment arm.
        control_mean: Mean over control users of the per-user metric.
        treatment_mean: Mean over treatment users.
        effect: treatment_mean - control_mean.
        ci_low: Lower end of the Welch interval of the effect at level 1 - alpha.
        ci_high: Upper end of that interval.
        p_value: Welch two-sided p-value of effect = 0.
        control_users: Users in control with a value of the metric.
        treatment_users: Users in treatment with a value.
        alpha: Significance level.
        significant: p_value < alpha.
    """

    metric: str
    control: str
    treatment: str
    control_mean: float
    treatment_mean: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    control_users: int
    treatment_users: int
    alpha: float
    significant: bool

    @property
    def lift(self) -> float:
        """Relative effect, effect / control_mean (nan when control_mean is 0)."""
        return self.effect / self.control_mean if self.control_mean else math.nan


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Units per arm against the designed traffic weights.

    Attributes:
        arms: Arm names.
        counts: Units observed per arm.
        expected: Units expected per arm from the weights.
        statistic: Chi-square statistic.
        p_value: Chi-square p-value (arms - 1 degrees of freedom).
        mismatch: p_value < threshold: the split is broken, and no metric can be trusted.
    """

    arms: tuple[str, ...]
    counts: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    mismatch: bool


def _as_lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _user_metrics_lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return (
        _as_lazy(frame)
        .group_by("arm", "unit_id")
        .agg(
            pl.len().cast(pl.Int64).alias("impressions"),
            *(expr.mean().alias(str(metric)) for metric, expr in METRIC_EXPRS.items()),
        )
    )


def user_metrics(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per-user means of every metric.

    Args:
        frame: A/B outcomes, one row per impression, with columns unit_id, arm, clicks,
            first_click_rank and success.

    Returns:
        One row per (arm, unit_id), sorted, with `impressions` and one column per `Metric`
        (success is null for a user with no judged impression).
    """
    return _user_metrics_lazy(frame).sort("arm", "unit_id").collect(engine="streaming")


def arm_moments(frame: pl.DataFrame | pl.LazyFrame) -> dict[str, dict[Metric, Moments]]:
    """The `Moments` of the per-user metric means in each arm (streams a lazy frame)."""
    per_arm = (
        _user_metrics_lazy(frame)
        .group_by("arm")
        .agg(*(e for metric in Metric for e in moments_agg(str(metric))))
        .sort("arm")
        .collect(engine="streaming")
    )
    by_metric = {metric: moments_from_frame(per_arm, str(metric)) for metric in Metric}
    return {
        str(arm): {metric: by_metric[metric][i] for metric in Metric}
        for i, arm in enumerate(per_arm["arm"].to_list())
    }


def compare_moments(
    control: Moments,
    treatment: Moments,
    *,
    alpha: float = 0.05,
    metric: str = "",
    names: tuple[str, str] = ("control", "treatment"),
) -> MetricComparison:
    """Welch's t-test and interval for treatment - control from per-user moments.

    Args:
        control: Moments of the per-user metric in the control arm.
        treatment: Moments in the treatment arm.
        alpha: Significance level; the interval has level 1 - alpha.
        metric: Metric name to carry in the result.
        names: (control, treatment) arm names to carry in the result.

    Returns:
        The comparison; with fewer than two users in an arm, p and the interval are nan.
    """
    from scipy import stats

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    effect = treatment.mean - control.mean
    p = low = high = math.nan
    if control.n >= 2 and treatment.n >= 2:
        vc, vt = control.variance / control.n, treatment.variance / treatment.n
        se = math.sqrt(vc + vt)
        if se > 0:
            df = (vc + vt) ** 2 / (vc * vc / (control.n - 1) + vt * vt / (treatment.n - 1))
            p = float(2 * stats.t.sf(abs(effect) / se, df))
            half = float(stats.t.ppf(1 - alpha / 2, df)) * se
            low, high = effect - half, effect + half
        else:
            # Both arms constant: the difference is known exactly.
            p = 1.0 if effect == 0 else 0.0
            low = high = effect
    return MetricComparison(
        metric=metric,
        control=names[0],
        treatment=names[1],
        control_mean=control.mean,
        treatment_mean=treatment.mean,
        effect=effect,
        ci_low=low,
        ci_high=high,
        p_value=p,
        control_users=control.n,
        treatment_users=treatment.n,
        alpha=alpha,
        significant=bool(p < alpha),
    )


def compare_arms(
    frame: pl.DataFrame | pl.LazyFrame,
    control: str,
    treatment: str,
    *,
    alpha: float = 0.05,
) -> tuple[MetricComparison, ...]:
    """Compare every `Metric` between two arms of an A/B log.

    Args:
        frame: A/B outcomes, one row per impression (see `user_metrics`).
        control: Control arm name.
        treatment: Treatment arm name.
        alpha: Significance level of each test (not corrected across metrics).

    Returns:
        One comparison per metric, in `Metric` order.

    Raises:
        ValueError: If an arm has no impressions.
    """
    moments = arm_moments(_as_lazy(frame).filter(pl.col("arm").is_in([control, treatment])))
    for arm in (control, treatment):
        if arm not in moments:
            raise ValueError(f"arm {arm!r} has no impressions")
    return tuple(
        compare_moments(
            moments[control][metric],
            moments[treatment][metric],
            alpha=alpha,
            metric=str(metric),
            names=(control, treatment),
        )
        for metric in Metric
    )


def units_per_arm(frame: pl.DataFrame | pl.LazyFrame) -> dict[str, int]:
    """Distinct units per arm, from any frame with columns unit_id and arm."""
    counts = (
        _as_lazy(frame)
        .group_by("arm")
        .agg(pl.col("unit_id").n_unique())
        .sort("arm")
        .collect(engine="streaming")
    )
    return {str(arm): int(n) for arm, n in counts.iter_rows()}


def sample_ratio_mismatch(
    counts: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
) -> SampleRatio:
    """Chi-square test of units per arm against the designed weights.

    Args:
        counts: Units observed per arm (an arm missing here counts 0).
        weights: Designed traffic share per arm (any positive scale; normalised here).
        threshold: Flag a mismatch below this p-value.

    Raises:
        ValueError: If an observed arm was not designed, a weight is not positive, or there
            are no units.
    """
    from scipy import stats

    unknown = sorted(set(counts) - set(weights))
    if unknown:
        raise ValueError(f"counts has arms without a designed weight: {unknown}")
    if len(weights) < 2 or any(not w > 0 for w in weights.values()):
        raise ValueError("weights must give a positive share to each of at least two arms")
    arms = tuple(sorted(weights))
    observed = np.array([counts.get(arm, 0) for arm in arms], dtype=np.float64)
    total = observed.sum()
    if total <= 0:
        raise ValueError("counts must hold at least one unit")
    share = np.array([weights[arm] for arm in arms], dtype=np.float64)
    expected = total * share / share.sum()
    result = stats.chisquare(observed, expected)
    p = float(result.pvalue)
    return SampleRatio(
        arms=arms,
        counts=tuple(int(c) for c in observed),
        expected=tuple(float(e) for e in expected),
        statistic=float(result.statistic),
        p_value=p,
        mismatch=p < threshold,
    )
