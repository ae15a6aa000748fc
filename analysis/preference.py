"""Which of two rankers users prefer, from per-impression interleaving outcomes.

An interleaving outcome is +1 when ranker `a` wins an impression, -1 when `b` wins, 0 for a
tie, or in between for probabilistic interleaving's expected outcome. The preference is

    delta_AB = (wins_a + ties / 2) / n - 1 / 2 = sum(outcome) / (2 n)

over the n impressions (the two forms agree for outcomes in {-1, 0, 1}; the second also
covers fractional outcomes). delta > 0 means users prefer `a` (Chapelle et al. 2012,
"Large-scale validation and analysis of interleaved search evaluation", TOIS 30(1)).

Impressions of one user are not independent (the same person, the same propensity to click),
so every interval and test here treats the user as the unit:

* `bootstrap_ci`: a user-clustered percentile bootstrap. Users are resampled with
  replacement, by multinomial or Poisson(1) weights, and the statistic is recomputed from
  the weighted per-user sums. Both are vectorised through `UserResampler`, which draws per-
  user resample counts without ever materialising a resampled log.
* `clustered_t_test`: a t-test of mean outcome = 0 (equivalently, of the per-impression
  winning score (1 + outcome) / 2 = 1/2) with a cluster-robust (CR1) standard error over
  users and G - 1 degrees of freedom. This is the impression-weighted estimate with
  user-clustered errors, not a t-test on per-user means; it matches statsmodels
  `OLS(...).fit(cov_type="cluster")`.
* `sign_test`: the two-sided binomial sign test over decisive impressions (ties dropped), as
  in the interleaving literature. It counts impressions, so it is exact under the null of
  no preference, where team assignment is randomised per impression, but it understates
  uncertainty under heterogeneous preferences; the clustered t-test decides the winner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

# scipy.stats and statsmodels are imported inside the functions that use them: importing
# them takes seconds, and `python -m analysis --help` must stay instant.

__all__ = [
    "ClusteredMean",
    "Preference",
    "UserResampler",
    "UserTotals",
    "Weights",
    "bootstrap_ci",
    "bootstrap_deltas",
    "clustered_t_test",
    "preference",
    "preference_from_totals",
    "preferences",
    "sign_test",
    "user_totals",
]

Weights = Literal["multinomial", "poisson"]

# Resample by category (distinct per-user rows) when there are at most users / 32 of them:
# a multinomial draw costs ~130 ns per category against ~5 ns per user for drawing indices.
_CATEGORY_FACTOR: Final = 32
# Draw indices and gather rows when fewer than users / 4 are drawn; count them otherwise.
_GATHER_FACTOR: Final = 4


class UserResampler:
    """Column sums of per-user statistics over users resampled with replacement.

    `values` holds one row per user (for the preference: impressions and outcome total). A
    resample draws `size` users with replacement (multinomial weights) or gives every user a
    Poisson(size / users) weight; either way only the per-user counts matter, drawn exactly
    by whichever of two routes is cheaper:

    * Few distinct rows (outcomes in {-1, 0, 1} give few distinct (impressions, total)
      pairs): per-row counts are Multinomial(size, share of each row) or independent
      Poisson(size * share), since sums of independent Poissons are Poisson.
    * Otherwise: a multinomial resample is `size` uniform user indices; a Poisson one is
      N ~ Poisson(size) uniform indices, which gives each user an independent
      Poisson(size / users) count. Indices are counted with `bincount` or, when few are
      drawn, their rows gathered.

    The object holds the prepared rows, so one resampler serves many sizes (power curves).
    """

    __slots__ = ("_categories", "_shares", "_values_t")

    def __init__(self, values: ArrayLike) -> None:
        """Prepare `values` (users x statistics, or one statistic per user) for resampling.

        Raises:
            ValueError: If `values` is empty, more than two-dimensional or not finite.
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"values must be a non-empty (users, k) array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("values must be finite")
        self._values_t = np.ascontiguousarray(x.T)
        self._categories: NDArray[np.float64] | None = None
        self._shares: NDArray[np.float64] | None = None
        limit = len(x) // _CATEGORY_FACTOR
        # Distinct rows are at least as many as any column's distinct values: a cheap veto.
        if all(len(np.unique(column)) <= limit for column in self._values_t):
            categories, counts = np.unique(x, axis=0, return_counts=True)
            if len(categories) <= limit:
                self._categories = categories
                self._shares = counts / len(x)

    @property
    def users(self) -> int:
        """Number of users (rows) resampled from."""
        return int(self._values_t.shape[1])

    def sums(
        self,
        resamples: int,
        *,
        rng: np.random.Generator,
        size: int | None = None,
        weights: Weights = "multinomial",
    ) -> NDArray[np.float64]:
        """Column sums over `resamples` resampled sets of users.

        Args:
            resamples: Number of resamples.
            rng: Source of randomness.
            size: Users drawn per resample (the expected number for Poisson weights);
                defaults to the number of users (the bootstrap).
            weights: "multinomial" (draw exactly `size`) or "poisson" (Poisson weights).

        Returns:
            Array of shape (resamples, k): row r sums the statistics over resample r.
        """
        if resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {resamples}")
        users = self.users
        size = users if size is None else size
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if weights not in ("multinomial", "poisson"):
            raise ValueError(f"weights must be 'multinomial' or 'poisson', got {weights!r}")
        if self._categories is not None and self._shares is not None:
            if weights == "multinomial":
                counts = rng.multinomial(size, self._shares, size=resamples)
            else:
                counts = rng.poisson(self._shares * size, size=(resamples, len(self._shares)))
            return counts.astype(np.float64) @ self._categories
        xt = self._values_t
        if weights == "multinomial":
            draws = np.full(resamples, size, dtype=np.int64)
        else:
            draws = rng.poisson(size, size=resamples)
        out = np.empty((resamples, xt.shape[0]), dtype=np.float64)
        for r, k in enumerate(draws.tolist()):
            idx = rng.integers(0, users, size=k)
            if k * _GATHER_FACTOR < users:
                out[r] = np.take(xt, idx, axis=1).sum(axis=1)
            else:
                out[r] = xt @ np.bincount(idx, minlength=users)
        return out


@dataclass(frozen=True, slots=True, eq=False)
class UserTotals:
    """Per-user sums of one ranker pair's outcomes, oriented so that positive favours `a`.

    Attributes:
        unit_ids: User ids, sorted (so resampling with a seeded generator is reproducible).
        impressions: Impressions per user.
        wins: Impressions `a` won (outcome > 0).
        losses: Impressions `b` won (outcome < 0).
        ties: Impressions with outcome exactly 0.
        total: Sum of outcomes.
        total_sq: Sum of squared outcomes.
    """

    unit_ids: tuple[str, ...]
    impressions: NDArray[np.int64]
    wins: NDArray[np.int64]
    losses: NDArray[np.int64]
    ties: NDArray[np.int64]
    total: NDArray[np.float64]
    total_sq: NDArray[np.float64]

    @property
    def users(self) -> int:
        """Number of users."""
        return len(self.unit_ids)


@dataclass(frozen=True, slots=True)
class ClusteredMean:
    """A mean per impression with a user-clustered standard error and its t-test.

    Attributes:
        estimate: Sum of outcomes over impressions (impression-weighted mean).
        se: Cluster-robust (CR1) standard error, clustered by user.
        df: Degrees of freedom, users - 1.
        t: estimate / se.
        p_value: Two-sided p-value of estimate = 0.
    """

    estimate: float
    se: float
    df: int
    t: float
    p_value: float


@dataclass(frozen=True, slots=True)
class Preference:
    """The preference between rankers `a` and `b` in one interleaving experiment.

    Attributes:
        a: First ranker; delta > 0 means users prefer it.
        b: Second ranker.
        impressions: Impressions compared.
        users: Users who saw them.
        wins: Impressions `a` won.
        losses: Impressions `b` won.
        ties: Impressions neither won.
        delta: delta_AB = (wins + ties / 2) / impressions - 1/2.
        ci_low: Lower end of the user-clustered bootstrap interval of delta (nan with
            fewer than two users).
        ci_high: Upper end of that interval.
        p_sign: Sign-test p-value (ties dropped).
        p_t: Clustered t-test p-value; it decides `winner`.
        alpha: Significance level for `winner`; the interval has level 1 - alpha.
        winner: The preferred ranker if p_t < alpha, else None.
    """

    a: str
    b: str
    impressions: int
    users: int
    wins: int
    losses: int
    ties: int
    delta: float
    ci_low: float
    ci_high: float
    p_sign: float
    p_t: float
    alpha: float
    winner: str | None


def _as_lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def user_totals(frame: pl.DataFrame | pl.LazyFrame, a: str, b: str) -> UserTotals:
    """Sum one pair's per-impression outcomes per user.

    Rows for the pair in either order count: a row with a = `b`, b = `a` has its outcome
    negated. A lazy frame is aggregated by the streaming engine.

    Args:
        frame: Interleaving outcomes with columns unit_id, a, b and outcome.
        a: The ranker whose wins are positive.
        b: The other ranker.

    Raises:
        ValueError: If a == b, the pair has a null outcome or one outside [-1, 1].
    """
    if a == b:
        raise ValueError(f"a and b must differ, both are {a!r}")
    forward = (pl.col("a") == a) & (pl.col("b") == b)
    backward = (pl.col("a") == b) & (pl.col("b") == a)
    y = pl.col("y")
    per_user = (
        _as_lazy(frame)
        .filter(forward | backward)
        .select(
            "unit_id",
            y=pl.when(forward).then(pl.col("outcome")).otherwise(-pl.col("outcome")),
        )
        .group_by("unit_id")
        .agg(
            impressions=pl.len().cast(pl.Int64),
            wins=(y > 0).sum().cast(pl.Int64),
            losses=(y < 0).sum().cast(pl.Int64),
            ties=(y == 0).sum().cast(pl.Int64),
            total=y.sum(),
            total_sq=(y * y).sum(),
            nulls=y.null_count(),
            lowest=y.min(),
            highest=y.max(),
        )
        .sort("unit_id")
        .collect(engine="streaming")
    )
    if per_user["nulls"].sum():
        raise ValueError(f"frame has null outcomes for the pair ({a!r}, {b!r})")
    out_of_range = per_user.select((pl.col("lowest") < -1) | (pl.col("highest") > 1)).to_series()
    if out_of_range.any():
        raise ValueError("outcome must lie in [-1, 1]")
    return UserTotals(
        unit_ids=tuple(per_user["unit_id"].to_list()),
        impressions=per_user["impressions"].to_numpy(),
        wins=per_user["wins"].to_numpy(),
        losses=per_user["losses"].to_numpy(),
        ties=per_user["ties"].to_numpy(),
        total=per_user["total"].to_numpy().astype(np.float64),
        total_sq=per_user["total_sq"].to_numpy().astype(np.float64),
    )


def _check_pairs(impressions: ArrayLike, total: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    n = np.asarray(impressions, dtype=np.float64)
    t = np.asarray(total, dtype=np.float64)
    if n.ndim != 1 or n.shape != t.shape or n.size == 0:
        raise ValueError("impressions and total must be non-empty 1-d arrays of one length")
    if (n <= 0).any():
        raise ValueError("impressions must be positive for every user")
    return n, t


def bootstrap_deltas(
    impressions: ArrayLike,
    total: ArrayLike,
    *,
    rng: np.random.Generator,
    resamples: int = 1000,
    weights: Weights = "multinomial",
) -> NDArray[np.float64]:
    """delta_AB over user-clustered bootstrap resamples.

    Args:
        impressions: Impressions per user.
        total: Sum of outcomes per user.
        rng: Source of randomness.
        resamples: Number of bootstrap resamples.
        weights: "multinomial" (classic bootstrap) or "poisson" (Poisson(1) weights).

    Returns:
        One delta per resample; a Poisson resample that drew no user gives nan.
    """
    n, t = _check_pairs(impressions, total)
    sums = UserResampler(np.column_stack([n, t])).sums(resamples, rng=rng, weights=weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        deltas: NDArray[np.float64] = sums[:, 1] / (2.0 * sums[:, 0])
    return deltas


def bootstrap_ci(
    impressions: ArrayLike,
    total: ArrayLike,
    *,
    rng: np.random.Generator,
    level: float = 0.95,
    resamples: int = 1000,
    weights: Weights = "multinomial",
) -> tuple[float, float]:
    """Percentile interval of delta_AB from a user-clustered bootstrap.

    Args:
        impressions: Impressions per user.
        total: Sum of outcomes per user.
        rng: Source of randomness.
        level: Coverage of the interval.
        resamples: Number of bootstrap resamples.
        weights: "multinomial" or "poisson".

    Returns:
        (low, high); (nan, nan) with fewer than two users, where resampling users has nothing
        to vary (the one user's delta every time: an interval of width zero that would claim
        certainty), as the t-test's p-value is nan there.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if _check_pairs(impressions, total)[0].size < 2:
        return math.nan, math.nan
    deltas = bootstrap_deltas(impressions, total, rng=rng, resamples=resamples, weights=weights)
    deltas = deltas[np.isfinite(deltas)]
    tail = (1 - level) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    return float(low), float(high)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided binomial sign test of P(a wins | decisive) = 1/2; 1.0 with no decisive case."""
    from scipy import stats

    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be >= 0")
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(int(wins), int(wins + losses), 0.5).pvalue)


def clustered_t_test(impressions: ArrayLike, total: ArrayLike) -> ClusteredMean:
    """t-test of mean outcome per impression = 0 with a user-clustered standard error.

    With G users, m = sum(total) / sum(impressions) and residuals e_u = total_u - m n_u, the
    CR1 variance is G / (G - 1) * sum(e_u^2) / sum(n_u)^2, compared with t(G - 1).

    Args:
        impressions: Impressions per user.
        total: Sum of outcomes per user.

    Returns:
        The estimate (twice delta_AB), its standard error and the test; with fewer than two
        users the standard error and p-value are nan.
    """
    from scipy import stats

    n, t = _check_pairs(impressions, total)
    g = n.size
    n_sum = float(n.sum())
    m = float(t.sum()) / n_sum
    if g < 2:
        return ClusteredMean(m, math.nan, 0, math.nan, math.nan)
    resid = t - m * n
    se = math.sqrt(g / (g - 1) * float(resid @ resid)) / n_sum
    if se == 0.0:
        # Every user gave exactly the same mean outcome: certain if non-zero.
        stat = 0.0 if m == 0 else math.copysign(math.inf, m)
        return ClusteredMean(m, 0.0, g - 1, stat, 1.0 if m == 0 else 0.0)
    stat = m / se
    p = float(2 * stats.t.sf(abs(stat), g - 1))
    return ClusteredMean(m, se, g - 1, stat, p)


def preference_from_totals(
    totals: UserTotals,
    a: str,
    b: str,
    *,
    rng: np.random.Generator,
    alpha: float = 0.05,
    resamples: int = 1000,
    weights: Weights = "multinomial",
) -> Preference:
    """The preference of `a` over `b` from per-user totals (see `user_totals`).

    Raises:
        ValueError: If there are no users or alpha is not in (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if totals.users == 0:
        raise ValueError(f"no impressions for the pair ({a!r}, {b!r})")
    impressions = int(totals.impressions.sum())
    wins, losses, ties = int(totals.wins.sum()), int(totals.losses.sum()), int(totals.ties.sum())
    delta = float(totals.total.sum()) / (2 * impressions)
    low, high = bootstrap_ci(
        totals.impressions,
        totals.total,
        rng=rng,
        level=1 - alpha,
        resamples=resamples,
        weights=weights,
    )
    tested = clustered_t_test(totals.impressions, totals.total)
    winner = None
    if tested.p_value < alpha and delta != 0:
        winner = a if delta > 0 else b
    return Preference(
        a=a,
        b=b,
        impressions=impressions,
        users=totals.users,
        wins=wins,
        losses=losses,
        ties=ties,
        delta=delta,
        ci_low=low,
        ci_high=high,
        p_sign=sign_test(wins, losses),
        p_t=tested.p_value,
        alpha=alpha,
        winner=winner,
    )


def preference(
    frame: pl.DataFrame | pl.LazyFrame,
    a: str,
    b: str,
    *,
    rng: np.random.Generator,
    alpha: float = 0.05,
    resamples: int = 1000,
    weights: Weights = "multinomial",
) -> Preference:
    """The preference of `a` over `b` from per-impression interleaving outcomes.

    Args:
        frame: Outcomes with columns unit_id, a, b and outcome (others are ignored).
        a: The ranker whose wins are positive.
        b: The other ranker.
        rng: Source of randomness for the bootstrap.
        alpha: Significance level; the bootstrap interval has level 1 - alpha.
        resamples: Bootstrap resamples.
        weights: Bootstrap weights, "multinomial" or "poisson".
    """
    totals = user_totals(frame, a, b)
    return preference_from_totals(
        totals, a, b, rng=rng, alpha=alpha, resamples=resamples, weights=weights
    )


def preferences(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    rng: np.random.Generator,
    alpha: float = 0.05,
    resamples: int = 1000,
    weights: Weights = "multinomial",
) -> tuple[Preference, ...]:
    """The preference for every unordered ranker pair in `frame`, pairs in sorted order.

    Each pair is oriented as (first, second) in sorted order of names, so a multileave's
    pairs come out in a stable order to pass to `analysis.multiple.holm`.
    """
    lf = _as_lazy(frame)
    pairs = (
        lf.select(
            lo=pl.min_horizontal("a", "b"),
            hi=pl.max_horizontal("a", "b"),
        )
        .unique()
        .sort("lo", "hi")
        .collect(engine="streaming")
    )
    return tuple(
        preference(lf, lo, hi, rng=rng, alpha=alpha, resamples=resamples, weights=weights)
        for lo, hi in pairs.iter_rows()
        if lo != hi
    )
