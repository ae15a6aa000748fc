"""Holm correction: a hand computation, alignment with pairs and validation."""

from __future__ import annotations

import math

import pytest

from analysis.multiple import holm

PAIRS = [("a", "b"), ("a", "c"), ("b", "c"), ("a", "d")]


def test_holm_by_hand() -> None:
    # Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running
    # max 0.02, 0.03, 0.06, 0.06; back in input order below.
    adjusted = holm(PAIRS, [0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert [r.p_adjusted for r in adjusted] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r.reject for r in adjusted] == [True, False, False, True]
    assert [(r.a, r.b) for r in adjusted] == PAIRS
    assert [r.p_value for r in adjusted] == [0.01, 0.04, 0.03, 0.005]


def test_adjusted_never_exceeds_one_nor_falls_below_raw() -> None:
    raw = [0.9, 0.5, 0.7, 0.95]
    adjusted = holm(PAIRS, raw)
    assert all(1.0 >= r.p_adjusted >= r.p_value for r in adjusted)


def test_single_pair_is_unchanged_and_empty_is_empty() -> None:
    assert holm([("a", "b")], [0.03])[0].p_adjusted == pytest.approx(0.03)
    assert holm([], []) == ()


def test_a_pair_not_tested_is_left_out_of_the_family() -> None:
    """A nan p-value (fewer than two users) is never rejected, and the others are corrected
    as a family of three: the same as leaving that pair out."""
    adjusted = holm(PAIRS, [0.01, math.nan, 0.03, 0.005], alpha=0.05)
    alone = holm([PAIRS[0], PAIRS[2], PAIRS[3]], [0.01, 0.03, 0.005], alpha=0.05)
    assert math.isnan(adjusted[1].p_adjusted)
    assert not adjusted[1].reject
    kept = [adjusted[0], adjusted[2], adjusted[3]]
    assert [r.p_adjusted for r in kept] == pytest.approx([r.p_adjusted for r in alone])
    assert [r.p_adjusted for r in kept] == pytest.approx([0.02, 0.03, 0.015])
    assert all(math.isnan(r.p_adjusted) for r in holm(PAIRS[:2], [math.nan, math.nan]))


def test_validates() -> None:
    with pytest.raises(ValueError, match="align"):
        holm(PAIRS, [0.1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([("a", "b")], [1.5])
    with pytest.raises(ValueError, match="alpha"):
        holm([("a", "b")], [0.1], alpha=0.0)
