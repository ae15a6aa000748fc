"""mSPRT: hand-computed values, and its level under daily peeking where a fixed test fails."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from analysis.moments import Moments
from analysis.sequential import cumulative_user_moments, mixing_rho, msprt

ALPHA = 0.05
DAYS = 14


def _tolerance(p: float, trials: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / trials)


def test_one_look_by_hand() -> None:
    look = Moments.from_array([0.5, 1.5, 1.0, 2.0])  # mean 1.25, variance 5/12
    path = msprt([look], rho=0.5, alpha=ALPHA)
    n, s = 4, math.sqrt(5 / 12)
    z2 = n * 1.25**2 / s**2
    grow = 1 + n * 0.25
    log_lambda = z2 * n * 0.25 / (2 * grow) - 0.5 * math.log(grow)
    assert path.p_values[0] == pytest.approx(min(1.0, math.exp(-log_lambda)))
    half = s / 2 * math.sqrt(grow / (n * 0.25) * (2 * math.log(20) + math.log(grow)))
    assert (path.ci_low[0], path.ci_high[0]) == pytest.approx((1.25 - half, 1.25 + half))


def test_p_values_never_rise_and_interval_never_widens() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, 5000)
    looks = [Moments.from_array(x[:k]) for k in range(100, 5001, 100)]
    path = msprt(looks)
    assert all(b <= a for a, b in zip(path.p_values, path.p_values[1:], strict=False))
    assert all(b >= a for a, b in zip(path.ci_low, path.ci_low[1:], strict=False))
    assert all(b <= a for a, b in zip(path.ci_high, path.ci_high[1:], strict=False))
    assert path.users[-1] == 5000


def test_rejection_inside_the_interval_agrees() -> None:
    # p < alpha exactly when the null lies outside that look's (un-intersected) interval.
    look = Moments.from_array(np.random.default_rng(1).normal(0.15, 1.0, 800))
    path = msprt([look], alpha=ALPHA)
    assert (path.p_values[0] < ALPHA) == (not path.ci_low[0] <= 0 <= path.ci_high[0])


def test_early_looks_without_variance() -> None:
    path = msprt([Moments(), Moments.from_array([1.0]), Moments.from_array([1.0, 1.0])])
    assert path.p_values == (1.0, 1.0, 1.0)
    assert path.rejected_at is None
    assert math.isinf(path.ci_low[-1])


def test_mixing_rho_matches_the_default() -> None:
    assert mixing_rho(3000) == pytest.approx(0.05, rel=0.05)
    assert mixing_rho(100) > mixing_rho(10_000)
    with pytest.raises(ValueError, match="planned_users"):
        mixing_rho(0)
    with pytest.raises(ValueError, match="rho"):
        msprt([], rho=0.0)


def _daily_user_means(
    rng: np.random.Generator, experiments: int, users: int, effect: float
) -> list[list[Moments]]:
    """Cumulative per-user-mean Moments per day; users arrive over the days and return."""
    arrival = rng.integers(0, DAYS, (experiments, users, 1))
    active = np.arange(DAYS)[None, None, :] >= arrival
    rate = rng.gamma(2.0, 0.75, (experiments, users, 1))
    n = rng.poisson(rate, (experiments, users, DAYS)) * active
    decisive = rng.beta(2.0, 3.0, (experiments, users, 1))
    wins = rng.binomial(n, decisive * (0.5 + effect))
    losses = rng.binomial(n - wins, decisive * (0.5 - effect) / (1 - decisive * (0.5 + effect)))
    cum_n = n.cumsum(axis=2)
    cum_total = (wins - losses).cumsum(axis=2).astype(np.float64)
    seen = cum_n > 0
    mean = np.divide(cum_total, cum_n, out=np.zeros_like(cum_total), where=seen)
    count = seen.sum(axis=1)
    total = mean.sum(axis=1)
    total_sq = (mean * mean).sum(axis=1)
    return [
        [Moments(int(count[e, d]), float(total[e, d]), float(total_sq[e, d])) for d in range(DAYS)]
        for e in range(experiments)
    ]


def _fixed_p(m: Moments) -> float:
    if m.n < 3 or m.sem == 0:
        return 1.0
    return float(2 * stats.t.sf(abs(m.mean / m.sem), m.n - 1))


def _peeking_rates(looks: list[list[Moments]], users: int) -> tuple[float, float, float]:
    """(mSPRT ever rejects, fixed t-test ever rejects, fixed t-test at the last day)."""
    sequential = naive = final = 0
    rho = mixing_rho(users)  # tuned to the planned sample, as a user would
    for path in looks:
        sequential += msprt(path, rho=rho, alpha=ALPHA).rejected_at is not None
        p = [_fixed_p(m) for m in path]
        naive += min(p) < ALPHA
        final += p[-1] < ALPHA
    return sequential / len(looks), naive / len(looks), final / len(looks)


def test_aa_daily_peeking_keeps_level_and_fixed_test_does_not() -> None:
    experiments = 1000
    looks = _daily_user_means(np.random.default_rng(31), experiments, 300, effect=0.0)
    sequential, naive, final = _peeking_rates(looks, 300)
    tol = _tolerance(ALPHA, experiments)
    # Always valid: at most alpha (it is conservative, so no lower bound).
    assert sequential < ALPHA + tol, sequential
    # A fixed-horizon test is fine once, at its horizon...
    assert abs(final - ALPHA) < tol, final
    # ...but stopping at the first daily p < alpha inflates the error well past alpha.
    assert naive > ALPHA + tol, naive


def test_msprt_finds_a_real_effect() -> None:
    # A test that never rejects would pass the A/A check: it must also find an effect.
    looks = _daily_user_means(np.random.default_rng(32), 200, 300, effect=0.08)
    sequential, _, _ = _peeking_rates(looks, 300)
    assert sequential > 0.8, sequential


def test_cumulative_user_moments_by_hand() -> None:
    frame = pl.DataFrame(
        {
            "unit_id": ["u1", "u1", "u2", "u1", "u3"],
            "day": [1, 1, 1, 2, 3],
            "outcome": [1.0, 0.0, -1.0, -1.0, 1.0],
        }
    )
    looks = cumulative_user_moments(frame, period="day")
    # Day 1: u1 mean 1/2, u2 -1. Day 2: u1 mean 0. Day 3: adds u3 = 1.
    expected = ([0.5, -1.0], [0.0, -1.0], [0.0, -1.0, 1.0])
    assert looks == tuple(Moments.from_array(v) for v in expected)
