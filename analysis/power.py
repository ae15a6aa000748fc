"""How many users and queries each design needs to find the better ranker.

Two answers, which should agree:

* Analytic, from the observed effect and its variance with statsmodels' power classes, two-
  sided at alpha = 0.05: `ab_users_per_arm` (Welch/t-test on per-user means, as
  `analysis.ab` tests), `interleaving_users` (the user-clustered t-test of
  `analysis.preference`, as a one-sample t-test on users' linearised contributions) and
  `sign_test_impressions` (the sign test, as a one-sample proportion test of decisive
  impressions, scaled up for ties).
* Empirical: treat the observed users as the population, draw simulated experiments of N
  users with replacement at growing N (vectorised through `UserResampler`), run the design's
  test on each, and record the fraction that find the TRUE direction (the sign of the
  full-sample effect) at alpha. A significant result in the wrong direction counts as a
  miss. `PowerCurve` holds the points for plotting and interpolates N at 80% and 95% power
  on their isotonic (monotone) fit.

Units: `PowerCurve.users` counts every user of a simulated experiment (both arms of an A/B
test); `impressions_at` multiplies by the mean impressions per user, and `impressions_ratio`
gives the A/B : interleaving ratio of queries needed, the figure the interleaving literature
reports (10x to 100x).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.moments import Moments
from analysis.preference import UserResampler, UserTotals

# scipy.stats and statsmodels are imported inside the functions that use them: importing
# them takes seconds, and `python -m analysis --help` must stay instant.

__all__ = [
    "POWER_LEVELS",
    "PowerCurve",
    "ab_power_curve",
    "ab_users_per_arm",
    "impressions_ratio",
    "interleaving_power_curve",
    "interleaving_users",
    "isotonic",
    "sign_test_impressions",
    "size_grid",
]

POWER_LEVELS: Final = (0.8, 0.95)

InterleavingTest = Literal["t", "sign"]


def _check_power(power: float, alpha: float) -> None:
    if not 0 < power < 1:
        raise ValueError(f"power must lie in (0, 1), got {power}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def ab_users_per_arm(
    control: Moments, treatment: Moments, *, power: float, alpha: float = 0.05
) -> float:
    """Users per arm for a two-sided two-sample t-test to detect the observed effect.

    The effect size is Cohen's d with the variance averaged over arms, from the Moments of
    the per-user metric in each arm; inf when the observed effect is 0.
    """
    from statsmodels.stats.power import TTestIndPower

    _check_power(power, alpha)
    sd = math.sqrt((control.variance + treatment.variance) / 2)
    d = abs(treatment.mean - control.mean) / sd if sd > 0 else math.inf
    if d == 0 or math.isnan(d):
        return math.inf
    return _t_test_size(
        lambda: TTestIndPower().solve_power(
            effect_size=d, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
        ),
        d,
        alpha=alpha,
        power=power,
        groups=2,
    )


def interleaving_users(totals: UserTotals, *, power: float, alpha: float = 0.05) -> float:
    """Users for the user-clustered t-test of the preference to detect the observed effect.

    The clustered estimate m = sum(total) / sum(impressions) is, to first order, a mean over
    users of r_u = (total_u - m n_u) / mean(n) plus m, so the test behaves as a one-sample
    t-test with effect size m * mean(n) / sd(total_u - m n_u); inf when m is 0.
    """
    from statsmodels.stats.power import TTestPower

    _check_power(power, alpha)
    n = totals.impressions.astype(np.float64)
    m = float(totals.total.sum() / n.sum())
    if m == 0 or totals.users < 2:
        return math.inf
    sd = float(np.std(totals.total - m * n, ddof=1))
    d = abs(m) * float(n.mean()) / sd if sd > 0 else math.inf
    return _t_test_size(
        lambda: TTestPower().solve_power(effect_size=d, alpha=alpha, power=power),
        d,
        alpha=alpha,
        power=power,
        groups=1,
    )


def _t_test_size(
    solve: Callable[[], object], d: float, *, alpha: float, power: float, groups: int
) -> float:
    """statsmodels' t-test sample size, or the normal approximation
    groups * ((z_a/2 + z_power) / d) ** 2 (at least 2, a t-test's fewest) where its solver
    fails: it warns that it did not converge (d = 1e-10, d = 20), returns no number, or settles
    on a size below the normal one, which a t-test never needs (a wrong root, seen at alpha
    1e-5). The solver's convergence warnings are not shown (30-40 lines a report); any other
    warning is."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    if math.isinf(d):
        return math.nan  # no spread at all: the t-test has no size (statsmodels says nan)
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)
    fallback = max(groups * (z / d) ** 2, 2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solved = np.asarray(solve(), dtype=np.float64)  # a float, or a one-element array
    failed = False
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            failed = True
        else:  # shown as it would have been
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    value = float(solved.reshape(-1)[0]) if solved.size == 1 else math.nan
    if failed or not math.isfinite(value) or value < fallback * (1 - 1e-9):
        return fallback
    return value


def sign_test_impressions(
    wins: int, losses: int, ties: int, *, power: float, alpha: float = 0.05
) -> float:
    """Impressions for the sign test to detect the observed win share (ties dropped).

    The decisive impressions needed come from a one-sample test of proportion
    wins / (wins + losses) against 1/2 with Cohen's h, then are divided by the decisive
    share of impressions; inf when wins == losses.
    """
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _check_power(power, alpha)
    decisive = wins + losses
    if decisive == 0 or wins == losses:
        return math.inf
    h = abs(float(proportion_effectsize(wins / decisive, 0.5)))
    needed = float(NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=0))
    return needed * (wins + losses + ties) / decisive


def isotonic(values: ArrayLike) -> NDArray[np.float64]:
    """Non-decreasing least-squares fit (pool adjacent violators), equal weights."""
    y = np.asarray(values, dtype=np.float64)
    blocks: list[list[float]] = []  # [mean, weight]
    for v in y.tolist():
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.repeat([b[0] for b in blocks], [int(b[1]) for b in blocks])


@dataclass(frozen=True, slots=True)
class PowerCurve:
    """Empirical power at growing experiment sizes.

    Attributes:
        users: Users per simulated experiment (all arms), increasing.
        power: Fraction of simulated experiments significant in the true direction.
        experiments: Simulated experiments per point.
        impressions_per_user: Mean impressions per user, to convert users to queries.
        alpha: Significance level of the test.
    """

    users: tuple[int, ...]
    power: tuple[float, ...]
    experiments: int
    impressions_per_user: float
    alpha: float

    def users_at(self, target: float) -> float | None:
        """Users at which the curve's isotonic fit first reaches `target`, or None.

        Interpolates linearly between the two points around the crossing.
        """
        if not 0 < target < 1:
            raise ValueError(f"target must lie in (0, 1), got {target}")
        fit = isotonic(self.power)
        above = np.flatnonzero(fit >= target)
        if above.size == 0:
            return None
        i = int(above[0])
        if i == 0:
            return float(self.users[0])
        x0, x1, y0, y1 = self.users[i - 1], self.users[i], fit[i - 1], fit[i]
        return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))

    def impressions_at(self, target: float) -> float | None:
        """Impressions (queries) at which the fit first reaches `target`, or None."""
        users = self.users_at(target)
        return None if users is None else users * self.impressions_per_user


def impressions_ratio(ab: PowerCurve, interleaving: PowerCurve, target: float) -> float | None:
    """A/B : interleaving ratio of the impressions needed for `target` power, or None."""
    ab_n, il_n = ab.impressions_at(target), interleaving.impressions_at(target)
    if ab_n is None or il_n is None:
        return None
    return ab_n / il_n


def size_grid(low: int, high: int, points: int = 12) -> tuple[int, ...]:
    """About `points` distinct integers spaced geometrically from `low` to `high`."""
    if not 2 <= low <= high or points < 2:
        raise ValueError("need 2 <= low <= high and points >= 2")
    return tuple(sorted({round(float(x)) for x in np.geomspace(low, high, points)}))


def _check_sizes(sizes: Sequence[int], experiments: int, alpha: float) -> None:
    if not sizes or any(s < 2 for s in sizes) or list(sizes) != sorted(set(sizes)):
        raise ValueError("sizes must be increasing distinct integers >= 2")
    if experiments < 1:
        raise ValueError(f"experiments must be >= 1, got {experiments}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def _direction(estimate: float, direction: int | None) -> int:
    if direction is None:
        if estimate == 0:
            raise ValueError("the full-sample effect is 0: pass direction explicitly")
        return 1 if estimate > 0 else -1
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or 1, got {direction}")
    return direction


def _found(p: NDArray[np.float64], estimate: NDArray[np.float64], alpha: float, way: int) -> float:
    return float(np.mean((p < alpha) & (np.sign(estimate) == way)))


def interleaving_power_curve(
    totals: UserTotals,
    users: Sequence[int],
    *,
    rng: np.random.Generator,
    experiments: int = 500,
    alpha: float = 0.05,
    test: InterleavingTest = "t",
    direction: int | None = None,
) -> PowerCurve:
    """Empirical power of an interleaving test at each experiment size.

    Args:
        totals: Per-user totals of the pair (the population to draw users from).
        users: Users per simulated experiment, increasing.
        rng: Source of randomness.
        experiments: Simulated experiments per size.
        alpha: Significance level.
        test: "t" (user-clustered t-test) or "sign" (sign test over impressions).
        direction: True sign of the preference (+1: `a` better); defaults to the sign of
            the full-sample delta.
    """
    from scipy import stats

    _check_sizes(users, experiments, alpha)
    if test not in ("t", "sign"):
        raise ValueError(f"test must be 't' or 'sign', got {test!r}")
    n = totals.impressions.astype(np.float64)
    t = totals.total
    way = _direction(float(t.sum()), direction)
    if test == "t":
        columns = np.column_stack([n, t, n * n, t * t, n * t])
    else:
        columns = np.column_stack([totals.wins, totals.losses]).astype(np.float64)
    resampler = UserResampler(columns)
    power: list[float] = []
    for size in users:
        s = resampler.sums(experiments, rng=rng, size=size)
        if test == "t":
            sn, st, snn, stt, snt = s.T
            m = st / sn
            rss = np.maximum(stt - 2 * m * snt + m * m * snn, 0.0)
            se = np.sqrt(size / (size - 1) * rss) / sn
            with np.errstate(divide="ignore", invalid="ignore"):
                tstat = np.where(se > 0, m / se, np.where(m == 0, 0.0, np.sign(m) * np.inf))
            p = 2 * stats.t.sf(np.abs(tstat), size - 1)
            power.append(_found(p, m, alpha, way))
        else:
            w, lo = s[:, 0], s[:, 1]
            p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(w, lo), w + lo, 0.5))
            power.append(_found(p, w - lo, alpha, way))
    return PowerCurve(
        users=tuple(int(u) for u in users),
        power=tuple(power),
        experiments=experiments,
        impressions_per_user=float(n.mean()),
        alpha=alpha,
    )


def ab_power_curve(
    control: ArrayLike,
    treatment: ArrayLike,
    users_per_arm: Sequence[int],
    *,
    rng: np.random.Generator,
    experiments: int = 500,
    alpha: float = 0.05,
    impressions_per_user: float = 1.0,
    direction: int | None = None,
) -> PowerCurve:
    """Empirical power of the A/B Welch test on one metric at each arm size.

    Args:
        control: Per-user metric values in the control arm (see `analysis.ab.user_metrics`).
        treatment: Per-user metric values in the treatment arm.
        users_per_arm: Users drawn into each arm per simulated experiment, increasing.
        rng: Source of randomness.
        experiments: Simulated experiments per size.
        alpha: Significance level.
        impressions_per_user: Mean impressions per user, to convert users to queries.
        direction: True sign of treatment - control; defaults to the full-sample sign.

    Returns:
        The curve, with `users` = 2 * users_per_arm (the whole experiment).
    """
    from scipy import stats

    _check_sizes(users_per_arm, experiments, alpha)
    c = np.asarray(control, dtype=np.float64)
    tr = np.asarray(treatment, dtype=np.float64)
    way = _direction(float(tr.mean() - c.mean()), direction)
    arms = (
        UserResampler(np.column_stack([c, c * c])),
        UserResampler(np.column_stack([tr, tr * tr])),
    )
    power: list[float] = []
    for size in users_per_arm:
        means, variances = [], []
        for arm in arms:
            total, total_sq = arm.sums(experiments, rng=rng, size=size).T
            mean = total / size
            means.append(mean)
            variances.append(np.maximum(total_sq - total * mean, 0.0) / (size - 1) / size)
        effect = means[1] - means[0]
        se = np.sqrt(variances[0] + variances[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            df = (variances[0] + variances[1]) ** 2 / (
                (variances[0] ** 2 + variances[1] ** 2) / (size - 1)
            )
            tstat = np.where(se > 0, effect / se, np.where(effect == 0, 0.0, np.inf))
        p = 2 * stats.t.sf(np.abs(tstat), np.where(se > 0, df, 1.0))
        power.append(_found(p, effect, alpha, way))
    return PowerCurve(
        users=tuple(2 * int(u) for u in users_per_arm),
        power=tuple(power),
        experiments=experiments,
        impressions_per_user=impressions_per_user,
        alpha=alpha,
    )
