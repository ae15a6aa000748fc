"""Outcomes computed from logs equal the interleaving methods' own credit, for every method."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import interleave
from analysis.outcomes import ab_outcomes, interleaving_outcomes
from analysis.schema import (
    QRELS_SCHEMA,
    Click,
    Design,
    ExperimentSpec,
    Impression,
    Kind,
    append_experiment,
    to_frame,
    write_frame,
)

TS = datetime(2026, 11, 1, tzinfo=UTC)


def write_interleaving_log(
    tmp: Path, method_name: str, rankers: tuple[str, ...], seed: int = 0
) -> tuple[ExperimentSpec, dict[str, interleave.Credit]]:
    rng = np.random.default_rng(seed)
    method = interleave.get(method_name)
    spec = ExperimentSpec("exp", 1, "salt", Design.INTERLEAVING, rankers, method=method_name)
    append_experiment(tmp, spec)
    imps, clicks, want = [], [], {}
    for i in range(300):
        lists = [[f"d{x}" for x in rng.permutation(12)[:8]] for _ in rankers]
        page = method.interleave(lists, k=6, rng=rng)
        iid = f"imp-{i}"
        excluded = "ranker_failed:x" if i % 50 == 7 else None
        imps.append(
            Impression(
                iid,
                "exp",
                1,
                f"user-{i % 40}",
                f"q{i}",
                Design.INTERLEAVING,
                method_name,
                rankers,
                tuple(tuple(x) for x in lists),
                tuple(page.docs),
                page.teams,
                TS,  # type: ignore[arg-type]
                excluded=excluded,
            )
        )
        pos = sorted({int(p) for p in rng.choice(6, size=int(rng.integers(0, 4)))})
        for j, p in enumerate(pos + pos[:1]):  # one repeated click: counts once
            clicks.append(
                Click(f"c-{i}-{j}", iid, "exp", 1, f"user-{i % 40}", p, str(page.docs[p]), TS)
            )
        if excluded is None:
            want[iid] = method.credit(page, pos)
    write_frame(tmp, Kind.IMPRESSIONS, to_frame(imps))
    write_frame(tmp, Kind.CLICKS, to_frame(clicks))
    return spec, want


@pytest.mark.parametrize(
    ("name", "rankers"),
    [
        ("team_draft", ("x", "y")),
        ("balanced", ("x", "y")),
        ("probabilistic", ("x", "y")),
        ("optimized", ("x", "y")),
        ("team_draft_multileave", ("x", "y", "z")),
    ],
)
def test_outcomes_equal_method_credit(tmp_path: Path, name: str, rankers: tuple[str, ...]) -> None:
    spec, want = write_interleaving_log(tmp_path, name, rankers)
    got = interleaving_outcomes(tmp_path, spec)
    pairs = len(rankers) * (len(rankers) - 1) // 2
    assert got.height == len(want) * pairs
    index = {rk: i for i, rk in enumerate(rankers)}
    for row in got.iter_rows(named=True):
        credit = want[row["impression_id"]]
        expected = credit.pairwise[index[row["a"]]][index[row["b"]]]
        assert row["outcome"] == pytest.approx(expected), row


def test_ab_outcomes(tmp_path: Path) -> None:
    spec = ExperimentSpec("ab", 2, "s", Design.AB, ("x", "y"), weights=(0.5, 0.5))
    imps = [
        Impression(
            "i1",
            "ab",
            2,
            "u1",
            "q1",
            Design.AB,
            "x",
            ("x",),
            (("a", "b", "c"),),
            ("a", "b", "c"),
            (0, 0, 0),
            TS,
        ),
        Impression(
            "i2",
            "ab",
            2,
            "u2",
            "q1",
            Design.AB,
            "y",
            ("y",),
            (("c", "a", "b"),),
            ("c", "a", "b"),
            (0, 0, 0),
            TS,
            page_start=10,
        ),
        Impression("i3", "ab", 2, "u2", "q2", Design.AB, "y", ("y",), (("a",),), ("a",), (0,), TS),
    ]
    clicks = [
        Click("c1", "i1", "ab", 2, "u1", 2, "c", TS),
        Click("c2", "i1", "ab", 2, "u1", 1, "b", TS),
        Click("c3", "i2", "ab", 2, "u2", 1, "a", TS),
        Click("c3b", "i2", "ab", 2, "u2", 1, "a", TS),
    ]
    write_frame(tmp_path, Kind.IMPRESSIONS, to_frame(imps))
    write_frame(tmp_path, Kind.CLICKS, to_frame(clicks))
    got = {
        r["unit_id"] + r["arm"] + str(r["clicks"]): r
        for r in ab_outcomes(tmp_path, spec).iter_rows(named=True)
    }
    assert got["u1x2"]["first_click_rank"] == 2
    assert got["u2y1"]["first_click_rank"] == 12  # page 2 starts at rank 11
    assert got["u2y0"]["first_click_rank"] is None
    assert all(r["success"] is None for r in got.values())
    pl.DataFrame(
        {"query_id": ["q1"], "doc_id": ["b"], "grade": [2]}, schema=QRELS_SCHEMA
    ).write_parquet(tmp_path / "qrels.parquet")
    judged = {
        r["unit_id"] + r["arm"] + str(r["clicks"]): r["success"]
        for r in ab_outcomes(tmp_path, spec).iter_rows(named=True)
    }
    assert judged == {"u1x2": True, "u2y1": False, "u2y0": False}


def test_team_outcomes_survive_hash_collisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every impression id hashing alike must not mix impressions: the string join takes over."""
    import analysis.outcomes as outcomes_module

    spec, want = write_interleaving_log(tmp_path, "team_draft", ("x", "y"), seed=3)
    monkeypatch.setattr(outcomes_module, "_key", lambda: pl.lit(7, dtype=pl.UInt64))
    got = interleaving_outcomes(tmp_path, spec)
    assert got.height == len(want)
    for row in got.iter_rows(named=True):
        assert row["outcome"] == pytest.approx(want[row["impression_id"]].outcome)
