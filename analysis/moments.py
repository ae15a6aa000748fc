"""Sufficient statistics (n, sum, sum of squares) that merge with `+`.

Every mean-and-variance statistic in `analysis` reduces to a `Moments`, after GrowthBook's
gbstats `SampleMeanStatistic`: partitions of a log (days, Parquet parts, shards) each give a
`Moments`, and their sum is the `Moments` of the whole, so a large log streams through a
polars lazy scan and never has to sit in memory::

    parts = scan(logdir, Kind.IMPRESSIONS).group_by("day").agg(*moments_agg("outcome"))
    whole = sum(moments_from_frame(parts.collect(), "outcome"), Moments())

The variance is computed as (sum_sq - sum^2 / n) / (n - 1), which loses precision only when
the mean is many standard deviations from zero; the values analysed here (outcomes in
[-1, 1], click rates, reciprocal ranks, clicks per query) are not of that kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

__all__ = ["Moments", "moments_agg", "moments_from_frame"]


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of a sample; `a + b` is the moments of both samples.

    Attributes:
        n: Number of observations.
        total: Sum of the observations.
        total_sq: Sum of the squared observations.
    """

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.total_sq < 0:
            raise ValueError(f"total_sq must be >= 0, got {self.total_sq}")

    def __add__(self, other: Moments) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        """Sample mean (nan when there are no observations)."""
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance, ddof=1 (nan with fewer than two observations)."""
        if self.n < 2:
            return math.nan
        # Rounding can push a zero variance slightly negative.
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)

    @property
    def std(self) -> float:
        """Sample standard deviation, ddof=1."""
        return math.sqrt(self.variance)

    @property
    def sem(self) -> float:
        """Standard error of the mean, std / sqrt(n)."""
        return self.std / math.sqrt(self.n) if self.n else math.nan

    @classmethod
    def from_array(cls, values: ArrayLike) -> Moments:
        """The moments of a one-dimensional array of finite numbers.

        Raises:
            ValueError: If `values` is not one-dimensional or holds a nan or infinity.
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("values must be finite")
        return cls(int(x.size), float(x.sum()), float(np.dot(x, x)))


def moments_agg(column: str | pl.Expr, *, name: str | None = None) -> tuple[pl.Expr, ...]:
    """Polars aggregations giving the moments of `column`, for `group_by().agg()` or `select()`.

    Nulls are skipped (they count in neither n nor the sums), so a nullable metric such as
    success, known only where relevance judgments exist, is summarised over the known values.

    Args:
        column: A column name or an expression.
        name: Prefix of the output columns `{name}_n`, `{name}_total` and `{name}_total_sq`;
            defaults to `column` when it is a name.

    Returns:
        The three aggregation expressions.
    """
    if name is None:
        if not isinstance(column, str):
            raise ValueError("name is required when column is an expression")
        name = column
    value = (pl.col(column) if isinstance(column, str) else column).cast(pl.Float64)
    return (
        value.count().cast(pl.Int64).alias(f"{name}_n"),
        value.sum().alias(f"{name}_total"),
        (value * value).sum().alias(f"{name}_total_sq"),
    )


def moments_from_frame(frame: pl.DataFrame, name: str) -> tuple[Moments, ...]:
    """One `Moments` per row of a frame aggregated with `moments_agg(..., name=name)`."""
    cols = (f"{name}_n", f"{name}_total", f"{name}_total_sq")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the moments columns {missing} for name={name!r}")
    return tuple(Moments(int(n), float(t), float(s)) for n, t, s in frame.select(cols).iter_rows())
