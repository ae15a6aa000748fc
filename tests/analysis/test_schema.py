"""`analysis.schema.to_frame`: records become frames in the shared schema, value for value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest

from analysis.schema import (
    SCHEMAS,
    Assignment,
    Click,
    Design,
    Impression,
    Kind,
    to_frame,
)

EAST = timezone(timedelta(hours=2))


def impression(number: int, ts: datetime) -> Impression:
    return Impression(
        impression_id=f"imp-{number}",
        experiment_id="exp \u00e9",  # non-ASCII survives
        experiment_version=3,
        unit_id=f"u{number}",
        query_id='q "quoted"',
        design=Design.INTERLEAVING,
        treatment="interleaving",
        rankers=("a", "b"),
        lists=(("d1", "d2"), ("d2", "d3")),
        doc_ids=("d1", "d2", "d3"),
        teams=(0, None, 1),
        ts=ts,
        page_start=12,
        seed=2**64 - 1 - number,
        excluded=None if number else "ranker_failed:b",
    )


def test_impressions_round_trip_with_extreme_values() -> None:
    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # no fractional seconds
    records = [impression(0, whole), impression(1, datetime(2026, 1, 2, 5, 4, 5, 7, tzinfo=EAST))]
    frame = to_frame(records)
    assert frame.schema == SCHEMAS[Kind.IMPRESSIONS]
    rows = frame.to_dicts()
    assert rows[0]["seed"] == 2**64 - 1
    assert rows[0]["teams"] == [0, None, 1]
    assert rows[0]["lists"] == [["d1", "d2"], ["d2", "d3"]]
    assert rows[0]["excluded"] == "ranker_failed:b"
    assert rows[1]["excluded"] is None
    assert rows[0]["experiment_id"] == "exp \u00e9"
    assert rows[0]["query_id"] == 'q "quoted"'
    assert rows[0]["design"] == "interleaving"
    assert rows[0]["ts"] == whole
    assert rows[1]["ts"] == datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)  # moved to UTC


def test_clicks_and_assignments_keep_their_small_integer_types() -> None:
    now = datetime(2026, 5, 6, tzinfo=UTC)
    clicks = to_frame([Click("c1", "imp-1", "e", 1, "u", 32767, "d9", now)])
    assert clicks.schema == SCHEMAS[Kind.CLICKS]
    assert clicks["position"].to_list() == [32767]
    assignments = to_frame([Assignment("e", 2, "u", "A", now)])
    assert assignments.schema == SCHEMAS[Kind.ASSIGNMENTS]
    assert assignments.row(0, named=True)["treatment"] == "A"


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_frame([impression(0, datetime(2026, 1, 1))])
    with pytest.raises(ValueError, match="empty"):
        to_frame([])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(TypeError, match="one kind"):
        to_frame([impression(0, now), Assignment("e", 1, "u", "A", now)])  # type: ignore[list-item]
    with pytest.raises(pl.exceptions.InvalidOperationError):
        to_frame([Click("c1", "imp-1", "e", 1, "u", 40_000, "d9", now)])  # over Int16


def test_spec_keeps_its_seed_scheme_and_old_specs_read_as_legacy() -> None:
    import json

    from analysis.schema import ExperimentSpec

    spec = ExperimentSpec("e", 1, "s", Design.INTERLEAVING, ("a", "b"), method="team_draft")
    assert spec.seed_scheme == "blake2b-pcg64"
    assert ExperimentSpec.from_json(spec.to_json()) == spec
    old = json.loads(spec.to_json())
    del old["seed_scheme"]
    assert ExperimentSpec.from_json(json.dumps(old)).seed_scheme == "seedsequence-pcg64"
    with pytest.raises(ValueError, match="seed scheme"):
        ExperimentSpec("e", 1, "s", Design.AB, ("a",), (1.0,), seed_scheme="xorshift")


def test_numpy_scalars_and_odd_offsets() -> None:
    import numpy as np

    odd = timezone(timedelta(hours=1, seconds=30))  # not a whole minute: RFC 3339 cannot say it
    record = impression(3, datetime(2026, 1, 2, 12, 0, tzinfo=odd))
    record = Impression(
        **{
            **{f: getattr(record, f) for f in record.__struct_fields__},
            "seed": np.uint64(2**64 - 2),
            "teams": (np.int8(1), None, np.int8(0)),
            "doc_ids": (np.str_("d1"), "d2", "d3"),
        }
    )
    (row,) = to_frame([record]).to_dicts()
    assert row["seed"] == 2**64 - 2
    assert row["teams"] == [1, None, 0]
    assert row["doc_ids"] == ["d1", "d2", "d3"]
    assert row["ts"] == datetime(2026, 1, 2, 10, 59, 30, tzinfo=UTC)
