"""Team balance checks for interleaved pages.

A fair interleaving method gives every team the same chance of each position, whatever the
rankers return: team-draft's coin decides who picks first (Radlinski, Kurup and Joachims
2008, "How does clickthrough data reflect retrieval quality?", CIKM). Imbalance means a bug
in the page builder or a biased method, and it biases the outcome towards whichever team
holds the top positions, because users click the top.

* `first_pick_balance`: how often each team took position 0. With two teams, a two-sided
  binomial test of share 1/2; with more, a chi-square test against equal shares.
* `position_balance`: at each position, a chi-square goodness-of-fit test of the team counts
  against equal shares, Holm-adjusted across positions. (Positions on one page are
  dependent, so they are tested one at a time, not pooled.)

Neutral positions (team None: a common prefix, an A/B page) are left out. A check flags
imbalance at p < 0.001 by default, as for sample-ratio mismatch: these run on every
experiment, so a false alarm must be rare, and real bugs give far smaller p-values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# scipy.stats and statsmodels are imported inside the functions that use them: importing
# them takes seconds, and `python -m analysis --help` must stay instant.

__all__ = [
    "FirstPickBalance",
    "PositionBalance",
    "TeamBalance",
    "first_pick_balance",
    "position_balance",
]

_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class FirstPickBalance:
    """Which team took position 0, and whether that is consistent with a fair coin.

    Attributes:
        counts: Impressions whose position 0 went to team i, for i in range(n_teams).
        impressions: Impressions with a team at position 0 (sum of counts).
        p_value: Two-sided test of equal shares (binomial for two teams, else chi-square).
        unbalanced: p_value < alpha.
    """

    counts: tuple[int, ...]
    impressions: int
    p_value: float
    unbalanced: bool


@dataclass(frozen=True, slots=True)
class PositionBalance:
    """Team counts at one position and their chi-square test against equal shares.

    Attributes:
        position: 0-based position on the page.
        counts: Impressions whose team at this position was i, for i in range(n_teams).
        p_value: Chi-square goodness-of-fit p-value.
        p_adjusted: Holm-adjusted across positions.
    """

    position: int
    counts: tuple[int, ...]
    p_value: float
    p_adjusted: float


@dataclass(frozen=True, slots=True)
class TeamBalance:
    """Per-position balance of a set of interleaved pages.

    Attributes:
        positions: One entry per position, in position order.
        unbalanced: Some position's adjusted p-value is below alpha.
    """

    positions: tuple[PositionBalance, ...]
    unbalanced: bool


def _teams(frame: pl.Series | pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    if isinstance(frame, pl.Series):
        return frame.alias("teams").to_frame().lazy()
    lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    return lf.select("teams")


def _check(n_teams: int, alpha: float) -> None:
    if n_teams < 2:
        raise ValueError(f"n_teams must be >= 2, got {n_teams}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def _counts(teams: pl.Series, lens: pl.Series, n_teams: int) -> tuple[int, ...]:
    counts = [0] * n_teams
    for team, count in zip(teams.to_list(), lens.to_list(), strict=True):
        if not 0 <= team < n_teams:
            raise ValueError(f"team {team} is outside range(n_teams={n_teams})")
        counts[team] += int(count)
    return tuple(counts)


def _equal_shares_p(counts: tuple[int, ...]) -> float:
    from scipy import stats

    total = sum(counts)
    if total == 0:
        return 1.0
    if len(counts) == 2:
        return float(stats.binomtest(counts[0], total, 0.5).pvalue)
    return float(stats.chisquare(np.asarray(counts, dtype=np.float64)).pvalue)


def first_pick_balance(
    frame: pl.Series | pl.DataFrame | pl.LazyFrame,
    *,
    n_teams: int = 2,
    alpha: float = _ALPHA,
) -> FirstPickBalance:
    """Test that each team takes position 0 equally often.

    Args:
        frame: A List(Int8) series of per-position teams, one per impression, or a frame
            with such a `teams` column (the impressions schema's).
        n_teams: Number of teams (rankers) on each page.
        alpha: Flag threshold.
    """
    _check(n_teams, alpha)
    first = (
        _teams(frame)
        .select(team=pl.col("teams").list.first())
        .drop_nulls()
        .group_by("team")
        .len()
        .collect(engine="streaming")
    )
    counts = _counts(first["team"], first["len"], n_teams)
    p = _equal_shares_p(counts)
    return FirstPickBalance(counts, sum(counts), p, p < alpha)


def position_balance(
    frame: pl.Series | pl.DataFrame | pl.LazyFrame,
    *,
    n_teams: int = 2,
    alpha: float = _ALPHA,
) -> TeamBalance:
    """Test at every position that the teams hold it equally often.

    Args:
        frame: A List(Int8) series of per-position teams, one per impression, or a frame
            with such a `teams` column.
        n_teams: Number of teams (rankers) on each page.
        alpha: Flag threshold for the Holm-adjusted p-values.
    """
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    _check(n_teams, alpha)
    long = (
        _teams(frame)
        .with_columns(position=pl.int_ranges(pl.col("teams").list.len()))
        .explode("teams", "position")
        .drop_nulls()
        .group_by("position", "teams")
        .len()
        .sort("position", "teams")
        .collect(engine="streaming")
    )
    positions: list[tuple[int, tuple[int, ...], float]] = []
    for (position,), group in long.group_by("position", maintain_order=True):
        counts = _counts(group["teams"], group["len"], n_teams)
        p = float(stats.chisquare(np.asarray(counts, dtype=np.float64)).pvalue)
        positions.append((int(position), counts, p))
    if not positions:
        return TeamBalance((), False)
    _, adjusted, _, _ = multipletests([p for _, _, p in positions], method="holm")
    balances = tuple(
        PositionBalance(pos, counts, p, float(adj))
        for (pos, counts, p), adj in zip(positions, adjusted, strict=True)
    )
    return TeamBalance(balances, any(b.p_adjusted < alpha for b in balances))
