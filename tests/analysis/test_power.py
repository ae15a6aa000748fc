"""Power: analytic N agrees with empirical N; the vectorised tests keep their level."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

import numpy as np
import pytest
from numpy.typing import NDArray

from analysis.moments import Moments
from analysis.power import (
    PowerCurve,
    ab_power_curve,
    ab_users_per_arm,
    impressions_ratio,
    interleaving_power_curve,
    interleaving_users,
    isotonic,
    sign_test_impressions,
    size_grid,
)
from analysis.preference import UserTotals

ALPHA = 0.05


def _population(
    rng: np.random.Generator, users: int, prefer: NDArray[np.float64] | float, mirror: bool = False
) -> UserTotals:
    """Interleaving users: impressions, wins and losses with P(a wins | decisive) = prefer."""
    n = rng.poisson(4.0, users) + 1
    p = np.broadcast_to(np.asarray(prefer, dtype=np.float64), (users,))
    wins = rng.binomial(n, 0.5 * p)
    losses = rng.binomial(n - wins, 0.5 * (1 - p) / (1 - 0.5 * p))
    if mirror:  # every user and its mirror image: the population effect is exactly 0
        n, wins, losses = (
            np.concatenate([n, n]),
            np.concatenate([wins, losses]),
            np.concatenate([losses, wins]),
        )
    ties = n - wins - losses
    total = (wins - losses).astype(np.float64)
    return UserTotals(
        unit_ids=tuple(f"u{k}" for k in range(n.size)),
        impressions=n,
        wins=wins,
        losses=losses,
        ties=ties,
        total=total,
        total_sq=(wins + losses).astype(np.float64),
    )


def test_interpolation_and_isotonic_by_hand() -> None:
    curve = PowerCurve((100, 200, 400), (0.5, 0.7, 0.9), 100, 3.0, ALPHA)
    assert curve.users_at(0.8) == pytest.approx(300.0)
    assert curve.impressions_at(0.8) == pytest.approx(900.0)
    assert curve.users_at(0.4) == 100.0
    assert curve.users_at(0.95) is None
    assert isotonic([0.5, 0.75, 0.7, 0.9]) == pytest.approx([0.5, 0.725, 0.725, 0.9])
    other = PowerCurve((10, 20), (0.6, 1.0), 100, 3.0, ALPHA)
    assert impressions_ratio(curve, other, 0.8) == pytest.approx(900.0 / 45.0)
    assert impressions_ratio(curve, other, 0.95) is None


def test_size_grid() -> None:
    grid = size_grid(10, 10_000, 7)
    assert grid == (10, 32, 100, 316, 1000, 3162, 10_000)
    with pytest.raises(ValueError, match="low"):
        size_grid(1, 10)


def test_interleaving_analytic_matches_empirical() -> None:
    rng = np.random.default_rng(10)
    # Heterogeneous users (clustering matters) with a small average preference for a.
    population = _population(rng, 40_000, rng.beta(5.3, 4.7, 40_000))
    for power in (0.8, 0.95):
        analytic = interleaving_users(population, power=power)
        sizes = tuple(round(analytic * f) for f in (0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0))
        curve = interleaving_power_curve(population, sizes, rng=rng, experiments=600)
        empirical = curve.users_at(power)
        assert empirical is not None
        assert empirical == pytest.approx(analytic, rel=0.15), (power, analytic, empirical)


def test_sign_test_analytic_matches_empirical() -> None:
    rng = np.random.default_rng(11)
    population = _population(rng, 40_000, 0.54)  # homogeneous: the sign test is valid
    wins, losses = int(population.wins.sum()), int(population.losses.sum())
    ties = int(population.ties.sum())
    analytic = sign_test_impressions(wins, losses, ties, power=0.8)
    per_user = float(population.impressions.mean())
    sizes = tuple(round(analytic / per_user * f) for f in (0.5, 0.75, 0.9, 1.0, 1.1, 1.3, 1.6))
    curve = interleaving_power_curve(population, sizes, rng=rng, experiments=600, test="sign")
    empirical = curve.impressions_at(0.8)
    assert empirical == pytest.approx(analytic, rel=0.15)


def test_ab_analytic_matches_empirical() -> None:
    rng = np.random.default_rng(12)
    control, treatment = rng.beta(2.0, 5.0, 30_000), rng.beta(2.15, 5.0, 30_000)
    analytic = ab_users_per_arm(
        Moments.from_array(control), Moments.from_array(treatment), power=0.8
    )
    sizes = tuple(round(analytic * f) for f in (0.5, 0.75, 0.9, 1.0, 1.1, 1.3, 1.6))
    curve = ab_power_curve(control, treatment, sizes, rng=rng, experiments=600)
    per_arm = curve.users_at(0.8)
    assert per_arm is not None
    assert per_arm / 2 == pytest.approx(analytic, rel=0.15)
    assert curve.users == tuple(2 * s for s in sizes)


def test_vectorised_tests_keep_their_level() -> None:
    # With no true effect, "significant in the + direction" happens alpha / 2 of the time.
    rng = np.random.default_rng(13)
    experiments = 4000
    tol = 3 * math.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / experiments)
    # Users disagree in the t-test's population (it is clustered); not in the sign test's,
    # which counts impressions and is only valid when they do not.
    populations: dict[Literal["t", "sign"], UserTotals] = {
        "t": _population(rng, 5000, rng.beta(3.0, 3.0, 5000), mirror=True),
        "sign": _population(rng, 5000, 0.5, mirror=True),
    }
    for test, null in populations.items():
        assert null.total.sum() == 0
        curve = interleaving_power_curve(
            null,
            (200,),
            rng=rng,
            experiments=experiments,
            test=test,
            direction=1,
        )
        assert abs(curve.power[0] - ALPHA / 2) < tol, (test, curve.power)
    values = rng.beta(2.0, 5.0, 5000)
    ab = ab_power_curve(values, values, (150,), rng=rng, experiments=experiments, direction=1)
    assert abs(ab.power[0] - ALPHA / 2) < tol, ab.power


def test_no_effect_needs_infinite_users() -> None:
    m = Moments.from_array([0.0, 1.0, 0.5])
    assert ab_users_per_arm(m, m, power=0.8) == math.inf
    assert sign_test_impressions(10, 10, 5, power=0.8) == math.inf
    null = _population(np.random.default_rng(0), 100, 0.5, mirror=True)
    assert interleaving_users(null, power=0.8) == math.inf
    with pytest.raises(ValueError, match="direction"):
        interleaving_power_curve(null, (10,), rng=np.random.default_rng(0))


def test_sizes_where_the_solver_fails_are_the_normal_ones_without_warnings(
    recwarn: pytest.WarningsRecorder,
) -> None:
    # statsmodels' solver does not converge at d = 1e-10 or d = 50 (nan, and a warning: 30-40
    # lines a report); the size is then the normal approximation, at least 2 per arm.
    z = 1.959964 + 0.841621  # z_0.975 + z_0.8
    control = Moments(n=1000, total=0.0, total_sq=1000.0)  # mean 0, variance about 1
    tiny = Moments(n=1000, total=1e-7, total_sq=1000.0)  # mean 1e-10
    d = 1e-10 / math.sqrt((control.variance + tiny.variance) / 2)
    assert ab_users_per_arm(control, tiny, power=0.8) == pytest.approx(2 * (z / d) ** 2, rel=1e-4)
    huge = Moments(n=1000, total=50_000.0, total_sq=2_501_000.0)  # mean 50, variance about 1
    assert ab_users_per_arm(control, huge, power=0.8) == 2.0
    assert not [w for w in recwarn if "converge" in str(w.message).lower()]
    # Where it converges, the t-test's own size (a little above the normal one) is kept.
    moderate = Moments(n=1000, total=500.0, total_sq=1250.0)  # mean 0.5, variance about 1
    size = ab_users_per_arm(control, moderate, power=0.8)
    assert 2 * (z / 0.5) ** 2 < size < 2 * (z / 0.5) ** 2 + 2


@pytest.mark.parametrize(("mean", "alpha"), [(7.57, 1e-10), (0.00847, 1e-5)])
def test_a_solver_answer_below_the_normal_size_is_not_trusted(mean: float, alpha: float) -> None:
    # At these levels statsmodels answered a one-element array (a TypeError in float()) or
    # a wrong root 0.38 of the true size; a t-test never needs fewer users than the z-test.
    control = Moments(n=1000, total=0.0, total_sq=1000.0)
    treatment = Moments(n=1000, total=mean * 1000, total_sq=1000 * (1 + mean * mean))
    per_arm = ab_users_per_arm(control, treatment, power=0.95, alpha=alpha)
    d = mean / math.sqrt((control.variance + treatment.variance) / 2)
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(0.95)
    assert per_arm >= max(2 * (z / d) ** 2, 2.0) * (1 - 1e-9)
    assert per_arm <= max(2 * (z / d) ** 2, 2.0) * 1.1 + 10
