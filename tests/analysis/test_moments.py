"""Moments: merging equals the whole; mean and variance match numpy; the polars helpers."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.moments import Moments, moments_agg, moments_from_frame

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, max_size=40), st.lists(finite, max_size=40))
def test_merge_equals_whole(left: list[float], right: list[float]) -> None:
    merged = Moments.from_array(left) + Moments.from_array(right)
    whole = Moments.from_array(left + right)
    assert merged.n == whole.n
    assert merged.total == pytest.approx(whole.total, abs=1e-9)
    assert merged.total_sq == pytest.approx(whole.total_sq, rel=1e-12, abs=1e-9)


@given(st.lists(finite, min_size=2, max_size=60))
def test_mean_and_variance_match_numpy(values: list[float]) -> None:
    m = Moments.from_array(values)
    x = np.asarray(values)
    assert m.mean == pytest.approx(x.mean(), abs=1e-9)
    # The one-pass formula loses ~ eps * total_sq / n of absolute precision.
    assert m.variance == pytest.approx(x.var(ddof=1), abs=1e-9 * (1 + float(x @ x)))


def test_hand_computed() -> None:
    m = Moments.from_array([1.0, 2.0, 4.0])
    assert (m.n, m.total, m.total_sq) == (3, 7.0, 21.0)
    assert m.mean == pytest.approx(7 / 3)
    assert m.variance == pytest.approx((21 - 49 / 3) / 2)
    assert m.sem == pytest.approx(math.sqrt((21 - 49 / 3) / 2 / 3))


def test_empty_and_single() -> None:
    assert math.isnan(Moments().mean)
    assert math.isnan(Moments.from_array([3.0]).variance)
    assert sum([Moments.from_array([1.0]), Moments.from_array([2.0])], Moments()).n == 2


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        Moments.from_array([1.0, math.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        Moments.from_array([[1.0]])
    with pytest.raises(ValueError, match="n must be"):
        Moments(-1, 0.0, 0.0)


def test_polars_aggregation_streams_and_merges() -> None:
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({"day": rng.integers(0, 5, 1000), "x": rng.normal(size=1000)})
    frame = frame.with_columns(pl.when(pl.col("x") > 2).then(None).otherwise("x").alias("x"))
    per_day = frame.lazy().group_by("day").agg(*moments_agg("x")).collect(engine="streaming")
    merged = sum(moments_from_frame(per_day, "x"), Moments())
    kept = frame["x"].drop_nulls().to_numpy()
    whole = Moments.from_array(kept)
    assert merged.n == whole.n == kept.size  # nulls are skipped, not counted
    assert merged.total == pytest.approx(whole.total)
    assert merged.total_sq == pytest.approx(whole.total_sq)


def test_moments_agg_on_expression_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        moments_agg(pl.col("x") * 2)
    frame = pl.DataFrame({"x": [1.0, 2.0]}).select(*moments_agg(pl.col("x") * 2, name="y"))
    assert moments_from_frame(frame, "y") == (Moments(2, 6.0, 20.0),)
    with pytest.raises(ValueError, match="lacks"):
        moments_from_frame(frame, "x")
