"""Preference: delta by hand, the clustered bootstrap's exact distribution, tests and A/A."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from statsmodels.regression.linear_model import OLS

from analysis.preference import (
    UserResampler,
    Weights,
    bootstrap_ci,
    bootstrap_deltas,
    clustered_t_test,
    preference,
    preferences,
    sign_test,
    user_totals,
)

ALPHA = 0.05


def _tolerance(p: float, trials: int, sds: float = 3.0) -> float:
    return sds * math.sqrt(p * (1 - p) / trials)


def _frame(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unit_id": [r[0] for r in rows],
            "impression_id": [f"i{k}" for k in range(len(rows))],
            "a": [r[1] for r in rows],
            "b": [r[2] for r in rows],
            "outcome": [r[3] for r in rows],
        }
    )


TINY = _frame(
    [
        ("u1", "x", "y", 1.0),
        ("u1", "x", "y", -1.0),
        ("u2", "x", "y", 0.0),
        ("u3", "y", "x", -1.0),  # the pair listed the other way round: a win for x
        ("u3", "x", "z", 1.0),  # another pair: ignored
    ]
)


def test_delta_by_hand() -> None:
    pref = preference(TINY, "x", "y", rng=np.random.default_rng(0), resamples=200)
    # x won u1's first and u3's impression, lost u1's second, tied u2's: n = 4.
    assert (pref.impressions, pref.users, pref.wins, pref.losses, pref.ties) == (4, 3, 2, 1, 1)
    assert pref.delta == pytest.approx((2 + 1 / 2) / 4 - 1 / 2)
    assert pref.p_sign == pytest.approx(1.0)  # 2 wins vs 1 loss
    assert pref.winner is None
    flipped = preference(TINY, "y", "x", rng=np.random.default_rng(0), resamples=200)
    assert flipped.delta == pytest.approx(-pref.delta)
    assert (flipped.wins, flipped.losses) == (pref.losses, pref.wins)


def test_fractional_outcomes_average() -> None:
    frame = _frame([("u1", "x", "y", 0.5), ("u1", "x", "y", -0.25), ("u2", "x", "y", 0.25)])
    pref = preference(frame, "x", "y", rng=np.random.default_rng(0), resamples=50)
    assert pref.delta == pytest.approx((0.5 - 0.25 + 0.25) / (2 * 3))
    assert (pref.wins, pref.losses, pref.ties) == (2, 1, 0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([-1.0, 0.0, 1.0]), min_size=1, max_size=30), st.integers(1, 5))
def test_delta_formula_matches_counts(outcomes: list[float], users: int) -> None:
    rows = [(f"u{k % users}", "x", "y", o) for k, o in enumerate(outcomes)]
    totals = user_totals(_frame(rows), "x", "y")
    wins, ties, n = outcomes.count(1.0), outcomes.count(0.0), len(outcomes)
    assert float(totals.total.sum()) / (2 * n) == pytest.approx((wins + ties / 2) / n - 1 / 2)
    assert int(totals.impressions.sum()) == n


def test_user_totals_validates() -> None:
    with pytest.raises(ValueError, match="differ"):
        user_totals(TINY, "x", "x")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        user_totals(_frame([("u1", "x", "y", 2.0)]), "x", "y")
    nulls = pl.DataFrame(
        {"unit_id": ["u"], "a": ["x"], "b": ["y"], "outcome": [None]},
        schema_overrides={"outcome": pl.Float64},
    )
    with pytest.raises(ValueError, match="null"):
        user_totals(nulls, "x", "y")
    with pytest.raises(ValueError, match="no impressions"):
        preference(TINY, "x", "w", rng=np.random.default_rng(0))


def test_result_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(5)
    rows = [(f"u{rng.integers(50)}", "x", "y", float(rng.choice([-1, 0, 1]))) for _ in range(400)]
    frame = _frame(rows)
    first = preference(frame, "x", "y", rng=np.random.default_rng(9))
    again = preference(
        frame.sample(fraction=1.0, shuffle=True, seed=1), "x", "y", rng=np.random.default_rng(9)
    )
    assert first == again


def test_preferences_covers_every_pair_once() -> None:
    pairs = [("x", "y"), ("y", "z"), ("z", "x"), ("x", "y")]
    frame = _frame([(f"u{k}", a, b, 1.0) for k, (a, b) in enumerate(pairs)])
    found = preferences(frame, rng=np.random.default_rng(0), resamples=20)
    assert [(p.a, p.b) for p in found] == [("x", "y"), ("x", "z"), ("y", "z")]
    assert [p.impressions for p in found] == [2, 1, 1]
    assert found[1].delta == pytest.approx(-0.5)  # z beat x, so x's delta is negative


# --- the bootstrap ---------------------------------------------------------------------------


def test_bootstrap_two_users_exact_distribution() -> None:
    # Users (n=1, total=1) and (n=3, total=-1). A resample holds (2, 0), (1, 1) or (0, 2)
    # copies with probabilities 1/4, 1/2, 1/4, giving delta 1/2, 0 and -1/6.
    trials = 4000
    deltas = bootstrap_deltas([1, 3], [1.0, -1.0], rng=np.random.default_rng(1), resamples=trials)
    for value, prob in ((0.5, 0.25), (0.0, 0.5), (-1 / 6, 0.25)):
        share = float(np.mean(np.isclose(deltas, value)))
        assert abs(share - prob) < _tolerance(prob, trials, 4)
    low, high = bootstrap_ci([1, 3], [1.0, -1.0], rng=np.random.default_rng(1), resamples=trials)
    assert (low, high) == pytest.approx((-1 / 6, 0.5))


def test_one_user_has_no_interval() -> None:
    """Resampling one user gives that user's delta every time: no interval, not [d, d]."""
    low, high = bootstrap_ci([4], [2.0], rng=np.random.default_rng(0), resamples=200)
    assert math.isnan(low)
    assert math.isnan(high)
    low, high = bootstrap_ci([4, 1], [2.0, 0.0], rng=np.random.default_rng(0), resamples=200)
    assert low < high


def _moment_check(sums: NDArray[np.float64], mean: float, var: float) -> None:
    r = sums.size
    assert abs(sums.mean() - mean) < 4 * math.sqrt(var / r)
    assert abs(sums.var(ddof=1) - var) < 4 * var * math.sqrt(2 / (r - 1))


@pytest.mark.parametrize("route", ["categories", "indices"])
@pytest.mark.parametrize(
    ("weights", "size", "mean", "var"),
    [
        # 64 users, half with value 1: the sum of `size` draws is Binomial(size, 1/2) for
        # multinomial weights and Poisson(size / 2) for Poisson weights.
        ("multinomial", None, 32.0, 16.0),
        ("poisson", None, 32.0, 32.0),
        ("multinomial", 10, 5.0, 2.5),
        ("poisson", 10, 5.0, 5.0),
    ],
)
def test_resampler_routes_draw_the_right_counts(
    route: str, weights: Weights, size: int | None, mean: float, var: float
) -> None:
    ones = np.repeat([0.0, 1.0], 32)
    values = ones if route == "categories" else np.column_stack([ones, np.arange(64.0)])
    resampler = UserResampler(values)
    # Make sure each parametrisation exercises the route it names.
    assert (resampler._categories is not None) == (route == "categories")
    sums = resampler.sums(4000, rng=np.random.default_rng(2), size=size, weights=weights)
    _moment_check(sums[:, 0], mean, var)


def test_resampler_validates() -> None:
    with pytest.raises(ValueError, match="finite"):
        UserResampler([1.0, math.inf])
    with pytest.raises(ValueError, match="non-empty"):
        UserResampler(np.empty((0, 2)))
    with pytest.raises(ValueError, match="weights"):
        UserResampler([1.0, 2.0]).sums(3, rng=np.random.default_rng(0), weights="bayes")  # type: ignore[arg-type]


def _simulate(
    rng: np.random.Generator,
    experiments: int,
    users: int,
    decisive: float | NDArray[np.float64],
    prefer: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Per-user impressions, wins and losses; `prefer` is each user's P(a wins | decisive)."""
    n = rng.poisson(5.0, (experiments, users)) + 1
    wins = rng.binomial(n, decisive * prefer)
    losses = rng.binomial(n - wins, decisive * (1 - prefer) / (1 - decisive * prefer))
    return n, wins, losses


@pytest.mark.parametrize("weights", ["multinomial", "poisson"])
def test_bootstrap_ci_covers_the_true_delta(weights: Weights) -> None:
    rng = np.random.default_rng(11)
    sims, users, decisive = 300, 300, 0.6
    # Users disagree strongly (Beta(1.1, 0.9) preferences, mean 0.55), so clustering matters.
    prefer = rng.beta(1.1, 0.9, (sims, users))
    n, wins, losses = _simulate(rng, sims, users, decisive, prefer)
    true_delta = decisive * (2 * 0.55 - 1) / 2
    covered = naive_covered = 0
    for k in range(sims):
        total = (wins[k] - losses[k]).astype(np.float64)
        low, high = bootstrap_ci(n[k], total, rng=rng, resamples=400, weights=weights)
        covered += low <= true_delta <= high
        # An impression-level interval that ignores users: it must undercover here.
        impressions = n[k].sum()
        mean = total.sum() / impressions
        sd = math.sqrt((wins[k] + losses[k]).sum() / impressions - mean**2)
        half = 1.96 * sd / math.sqrt(impressions) / 2
        naive_covered += abs(mean / 2 - true_delta) <= half
    assert abs(covered / sims - 0.95) < _tolerance(0.95, sims)
    assert naive_covered / sims < 0.95 - _tolerance(0.95, sims)


# --- tests of no preference ------------------------------------------------------------------


def test_sign_test_by_hand() -> None:
    assert sign_test(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test(0, 0) == 1.0


def test_clustered_t_matches_statsmodels() -> None:
    rng = np.random.default_rng(4)
    users = np.repeat(np.arange(30), rng.integers(1, 8, 30))
    y = rng.choice([-1.0, 0.0, 1.0], users.size) + 0.3 * (users % 3 == 0)
    y = np.clip(y, -1, 1)
    fit = OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": users})
    n = np.bincount(users).astype(np.float64)
    total = np.bincount(users, weights=y)
    tested = clustered_t_test(n, total)
    assert tested.estimate == pytest.approx(float(fit.params[0]))
    assert tested.se == pytest.approx(float(fit.bse[0]))
    assert tested.df == 29


def test_clustered_t_degenerate_cases() -> None:
    assert math.isnan(clustered_t_test([3], [1.0]).p_value)
    assert clustered_t_test([2, 2], [2.0, 2.0]).p_value == 0.0
    assert clustered_t_test([2, 2], [0.0, 0.0]).p_value == 1.0
    with pytest.raises(ValueError, match="positive"):
        clustered_t_test([0, 1], [0.0, 1.0])


def _rejection_rates(
    n: NDArray[np.int64], wins: NDArray[np.int64], losses: NDArray[np.int64]
) -> tuple[float, float]:
    experiments = n.shape[0]
    sign = sum(
        sign_test(int(w.sum()), int(lo.sum())) < ALPHA for w, lo in zip(wins, losses, strict=True)
    )
    t = sum(
        clustered_t_test(n[k], (wins[k] - losses[k]).astype(np.float64)).p_value < ALPHA
        for k in range(experiments)
    )
    return sign / experiments, t / experiments


def test_aa_false_positive_rates() -> None:
    # The same ranker on both sides: every decisive impression is a fair coin.
    rng = np.random.default_rng(2024)
    experiments, users = 2000, 200
    decisive = rng.beta(2.0, 3.0, (experiments, users))
    n, wins, losses = _simulate(rng, experiments, users, decisive, np.full_like(decisive, 0.5))
    sign_rate, t_rate = _rejection_rates(n, wins, losses)
    tol = _tolerance(ALPHA, experiments)
    assert abs(sign_rate - ALPHA) < tol, sign_rate
    assert abs(t_rate - ALPHA) < tol, t_rate


def test_clustered_t_holds_when_users_disagree_and_sign_test_does_not() -> None:
    # No preference on average, but each user strongly prefers one side: impressions of a
    # user are correlated. The clustered test keeps its level; the impression-level sign
    # test does not (which is why the clustered test decides the winner).
    rng = np.random.default_rng(7)
    experiments, users = 2000, 200
    prefer = 0.5 + 0.4 * rng.choice([-1.0, 1.0], (experiments, users))
    n, wins, losses = _simulate(rng, experiments, users, 0.6, prefer)
    sign_rate, t_rate = _rejection_rates(n, wins, losses)
    tol = _tolerance(ALPHA, experiments)
    assert abs(t_rate - ALPHA) < tol, t_rate
    assert sign_rate > ALPHA + tol, sign_rate


def test_finds_a_real_preference() -> None:
    rng = np.random.default_rng(8)
    n, wins, losses = _simulate(rng, 1, 3000, 0.5, np.full((1, 3000), 0.6))
    rows = []
    for u in range(3000):
        rows += [(f"u{u}", "x", "y", 1.0)] * int(wins[0, u]) + [(f"u{u}", "x", "y", -1.0)] * int(
            losses[0, u]
        )
        rows += [(f"u{u}", "x", "y", 0.0)] * int(n[0, u] - wins[0, u] - losses[0, u])
    pref = preference(_frame(rows), "x", "y", rng=rng)
    assert pref.winner == "x"
    assert 0 < pref.ci_low < pref.delta < pref.ci_high
    assert pref.delta == pytest.approx(0.5 * (0.6 - 0.4) / 2, abs=0.01)
