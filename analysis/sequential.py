"""Always-valid p-values, so an experiment can be watched daily without inflating error.

A fixed-horizon test looked at every day and stopped at the first p < alpha rejects a true
null far more often than alpha. The mixture sequential probability ratio test (mSPRT;
Johari, Koomen, Pekelis and Walsh 2017, "Peeking at A/B tests", KDD; Robbins 1970) gives a
p-value path p_1 >= p_2 >= ... with P(some p_k < alpha) <= alpha under the null however
often, and whenever, one looks.

Choice: an mSPRT with a normal mixture on the mean of per-user values (for interleaving,
each user's mean outcome; users are the independent units). At a look with n users, mean
x and sample variance s^2 (plugged in for sigma^2, as Johari et al. do for large samples),
z = sqrt(n) (x - null) / s and, mixing the effect over N(null, tau^2) with tau = rho * s,

    Lambda_n = (1 + n rho^2)^(-1/2) * exp(z^2 n rho^2 / (2 (1 + n rho^2)))
    p_n = min(p_{n-1}, 1 / Lambda_n)

Inverting the test gives the always-valid confidence sequence

    x +- s / sqrt(n) * sqrt((1 + n rho^2) / (n rho^2) * (2 log(1 / alpha) + log(1 + n rho^2)))

intersected over looks so it only shrinks.

Mixing parameter: `rho` is the mixture's standard deviation in units of the per-user
standard deviation, so it is scale-free. The sequence is tightest near n* users with
rho^2 = (2 log(1 / alpha) + log(1 + 2 log(1 / alpha))) / n* (Howard, Ramdas, McAuliffe and
Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Stat.;
the same tuning as GrowthBook's sequential testing); `mixing_rho` computes it from the
planned sample. The default rho = 0.05
tunes for about 3,000 users at alpha = 0.05. Any fixed rho keeps the guarantee; it only
moves where power is best.

Caveat: a returning user's mean is recomputed at every look (per-user means do not arrive
as independent increments), and sigma is estimated; the guarantee is asymptotic. The A/A
tests in `tests/analysis` check it under daily peeking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from analysis.moments import Moments, moments_agg, moments_from_frame

__all__ = [
    "DEFAULT_RHO",
    "SequentialPath",
    "cumulative_user_moments",
    "mixing_rho",
    "msprt",
]

DEFAULT_RHO: Final = 0.05


@dataclass(frozen=True, slots=True)
class SequentialPath:
    """The mSPRT at each look, in look order.

    Attributes:
        users: Users seen by each look.
        estimate: Mean of the per-user values at each look.
        p_values: Always-valid p-values (non-increasing).
        ci_low: Lower end of the always-valid confidence sequence (non-decreasing).
        ci_high: Upper end of the confidence sequence (non-increasing).
        alpha: Level of the confidence sequence and of `rejected_at`.
        rho: Mixing standard deviation in per-user standard deviations.
        rejected_at: Index of the first look with p < alpha, or None.
    """

    users: tuple[int, ...]
    estimate: tuple[float, ...]
    p_values: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    alpha: float
    rho: float
    rejected_at: int | None


def mixing_rho(planned_users: int, alpha: float = 0.05) -> float:
    """The mixing rho whose confidence sequence is tightest at `planned_users` users."""
    if planned_users < 1:
        raise ValueError(f"planned_users must be >= 1, got {planned_users}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    log_term = 2 * math.log(1 / alpha)
    return math.sqrt((log_term + math.log(1 + log_term)) / planned_users)


def msprt(
    looks: Sequence[Moments],
    *,
    rho: float = DEFAULT_RHO,
    alpha: float = 0.05,
    null: float = 0.0,
) -> SequentialPath:
    """Always-valid p-values and confidence sequence over cumulative looks.

    Args:
        looks: For each look in time order (e.g. each day), the `Moments` of the per-user
            values of every user seen so far (cumulative, not that day's increment).
        rho: Mixing standard deviation in units of the per-user standard deviation.
        alpha: Level of the confidence sequence and of `rejected_at`.
        null: Mean under the null hypothesis.

    Returns:
        The path; looks with fewer than two users or zero variance have p = 1 (or carry the
        previous p) and an unbounded interval.
    """
    if rho <= 0 or not math.isfinite(rho):
        raise ValueError(f"rho must be positive and finite, got {rho}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    p_running, low_running, high_running = 1.0, -math.inf, math.inf
    users: list[int] = []
    estimates: list[float] = []
    p_values: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    rejected_at: int | None = None
    rho2 = rho * rho
    for k, look in enumerate(looks):
        n = look.n
        if n >= 2 and look.variance > 0:
            s = look.std
            z = math.sqrt(n) * (look.mean - null) / s
            grow = 1 + n * rho2
            log_lambda = z * z * n * rho2 / (2 * grow) - 0.5 * math.log(grow)
            p_running = min(p_running, math.exp(-log_lambda) if log_lambda > 0 else 1.0)
            half = (
                s
                / math.sqrt(n)
                * math.sqrt(grow / (n * rho2) * (2 * math.log(1 / alpha) + math.log(grow)))
            )
            low_running = max(low_running, look.mean - half)
            high_running = min(high_running, look.mean + half)
        if rejected_at is None and p_running < alpha:
            rejected_at = k
        users.append(n)
        estimates.append(look.mean)
        p_values.append(p_running)
        lows.append(low_running)
        highs.append(high_running)
    return SequentialPath(
        users=tuple(users),
        estimate=tuple(estimates),
        p_values=tuple(p_values),
        ci_low=tuple(lows),
        ci_high=tuple(highs),
        alpha=alpha,
        rho=rho,
        rejected_at=rejected_at,
    )


def cumulative_user_moments(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    period: str,
    value: str = "outcome",
) -> tuple[Moments, ...]:
    """Cumulative looks for `msprt`: Moments of per-user means of `value` up to each period.

    Args:
        frame: Per-impression rows with columns unit_id, `period` (sortable: a date, a day
            number) and `value`. For a preference, orient the outcome first (see
            `analysis.preference.user_totals`); half the per-user mean outcome is that user's
            delta.
        period: Column that orders looks.
        value: Column averaged per user.

    Returns:
        One `Moments` per distinct period, in ascending order, over every user seen up to
        and including it.
    """
    lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    daily = (
        lf.group_by("unit_id", period)
        .agg(n=pl.col(value).count(), total=pl.col(value).cast(pl.Float64).sum())
        .collect(engine="streaming")
    )
    periods = daily.get_column(period).unique().sort().to_list()
    looks: list[Moments] = []
    for cut in periods:
        per_user = (
            daily.lazy()
            .filter(pl.col(period) <= cut)
            .group_by("unit_id")
            .agg(pl.col("n").sum(), pl.col("total").sum())
            .filter(pl.col("n") > 0)
            .select(*moments_agg(pl.col("total") / pl.col("n"), name="user"))
            .collect()
        )
        looks.extend(moments_from_frame(per_user, "user"))
    return tuple(looks)
