"""Team balance: fair team-draft pages pass, biased pages are flagged, counts by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analysis.balance import first_pick_balance, position_balance


def _pages(rng: np.random.Generator, pages: int, first_share: float) -> pl.Series:
    """Team-draft-like pages of 6 positions: each round of two, the first picker is a coin."""
    first = (rng.random((pages, 3)) >= first_share).astype(np.int8)
    teams = np.stack([first, 1 - first], axis=2).reshape(pages, 6)
    return pl.Series("teams", teams.tolist(), dtype=pl.List(pl.Int8))


def test_counts_by_hand_and_neutral_positions_skipped() -> None:
    teams = pl.Series("teams", [[0, 1, None], [1, 0], [None, 0], [0, 1, 1]], dtype=pl.List(pl.Int8))
    first = first_pick_balance(teams)
    assert first.counts == (2, 1)
    assert first.impressions == 3
    assert first.p_value == pytest.approx(1.0)
    per_position = position_balance(pl.DataFrame({"teams": teams}))
    assert [p.position for p in per_position.positions] == [0, 1, 2]
    assert [p.counts for p in per_position.positions] == [(2, 1), (2, 2), (0, 1)]


def test_fair_pages_are_not_flagged() -> None:
    teams = _pages(np.random.default_rng(0), 20_000, 0.5)
    assert not first_pick_balance(teams).unbalanced
    assert not position_balance(teams.to_frame().lazy()).unbalanced


def test_biased_first_pick_is_flagged() -> None:
    teams = _pages(np.random.default_rng(1), 5_000, 0.55)
    first = first_pick_balance(teams)
    assert first.unbalanced
    assert first.counts[0] > first.counts[1]
    assert position_balance(teams).unbalanced


def test_more_teams_use_chi_square() -> None:
    rng = np.random.default_rng(2)
    fair = pl.Series("teams", rng.integers(0, 3, (3000, 4)).tolist(), dtype=pl.List(pl.Int8))
    assert not first_pick_balance(fair, n_teams=3).unbalanced
    skewed = pl.Series(
        "teams", rng.choice(3, (3000, 4), p=[0.4, 0.3, 0.3]).tolist(), dtype=pl.List(pl.Int8)
    )
    assert first_pick_balance(skewed, n_teams=3).unbalanced


def test_validates() -> None:
    teams = pl.Series("teams", [[0, 2]], dtype=pl.List(pl.Int8))
    with pytest.raises(ValueError, match="outside"):
        position_balance(teams)
    with pytest.raises(ValueError, match="n_teams"):
        first_pick_balance(teams, n_teams=1)
