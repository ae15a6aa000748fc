"""The report end to end on synthetic logs: the right winner, a readable HTML, a short summary,
the warnings it must raise, and a CLI that fails in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import interleave
from analysis.__main__ import main
from analysis.balance import first_pick_balance, position_balance
from analysis.outcomes import interleaving_outcomes
from analysis.preference import user_totals
from analysis.report import (
    MIN_POWER_EXPERIMENTS,
    POWER_DRAWS,
    POWER_EXPERIMENTS,
    AlertKind,
    Report,
    ReportError,
    _balance,
    _balanced_alerts,
    _pair_data,
    _plan,
    _position_team_counts,
    _team_patterns,
    _user_runs,
    _with_days,
    build_report,
    read_truth,
    write_html,
)
from analysis.report import summary as report_summary
from analysis.schema import (
    ASSIGNMENT_SCHEMA,
    CLICK_SCHEMA,
    IMPRESSION_SCHEMA,
    QRELS_SCHEMA,
    Design,
    ExperimentSpec,
    Kind,
    append_experiment,
    journal_dir,
    uncompacted_segments,
    write_frame,
)
from analysis.sequential import cumulative_user_moments
from analysis.summary import MAX_LINES, summary

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 2, tzinfo=UTC)
QUERIES = 30
DOCS_PER_QUERY = 12
DEPTH = 10
K = 8
DAYS = 5
# Position-based clicks: examination by position, attractiveness by relevance grade.
EXAMINE = 0.95 / np.arange(1, K + 1) ** 0.7
ATTRACT = np.array([0.04, 0.35, 0.7])


def _world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per query: grades of its docs, and the ranked lists of x (by grade) and y (at random)."""
    grades = np.zeros((QUERIES, DOCS_PER_QUERY), dtype=np.int64)
    grades[:, :2], grades[:, 2:5] = 2, 1
    lists = np.empty((2, QUERIES, DEPTH), dtype=np.int64)
    for q in range(QUERIES):
        docs = np.arange(DOCS_PER_QUERY)
        noise = rng.random(DOCS_PER_QUERY)
        lists[0, q] = docs[np.lexsort((noise, -grades[q]))][:DEPTH]
        lists[1, q] = rng.permutation(docs)[:DEPTH]
    return grades, lists


def _doc_ids(q: np.ndarray, ids: np.ndarray) -> list[list[str | None]]:
    return [
        [f"q{qi}-d{d}" if d >= 0 else None for d in row] for qi, row in zip(q, ids, strict=True)
    ]


def _frames(
    spec: ExperimentSpec,
    unit: np.ndarray,
    q: np.ndarray,
    ts: list[datetime],
    treatment: list[str],
    rankers: list[list[str]],
    lists: np.ndarray,
    docs: np.ndarray,
    teams: np.ndarray,
    clicks: np.ndarray,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = unit.size
    ids = [f"{spec.experiment_id}-i{i}" for i in range(n)]
    imps = pl.DataFrame(
        {
            "impression_id": ids,
            "experiment_id": [spec.experiment_id] * n,
            "experiment_version": [spec.version] * n,
            "unit_id": [f"u{u}" for u in unit],
            "query_id": [f"q{x}" for x in q],
            "design": [str(spec.design)] * n,
            "treatment": treatment,
            "rankers": rankers,
            "lists": [
                [[f"q{q[i]}-d{d}" for d in lists[r, i]] for r in range(lists.shape[0])]
                for i in range(n)
            ],
            "doc_ids": _doc_ids(q, docs),
            "teams": [[None if t < 0 else int(t) for t in row] for row in teams],
            "ts": ts,
            "page_start": [0] * n,
            "seed": list(range(n)),
            "excluded": [None] * n,
        },
        schema=IMPRESSION_SCHEMA,
    )
    rows, pos = np.nonzero(clicks)
    click_frame = pl.DataFrame(
        {
            "click_id": [f"{spec.experiment_id}-c{j}" for j in range(rows.size)],
            "impression_id": [ids[r] for r in rows],
            "experiment_id": [spec.experiment_id] * rows.size,
            "experiment_version": [spec.version] * rows.size,
            "unit_id": [f"u{unit[r]}" for r in rows],
            "position": pos.tolist(),
            "doc_id": [f"q{q[r]}-d{docs[r, p]}" for r, p in zip(rows, pos, strict=True)],
            "ts": [ts[r] + timedelta(seconds=3) for r in rows],
        },
        schema=CLICK_SCHEMA,
    )
    return imps, click_frame


def write_log(
    logdir: Path,
    *,
    users: int = 500,
    per_user: int = 8,
    ab_share_x: float = 0.5,
    seed: int = 0,
    truth: bool = True,
) -> Path:
    """A log with an A/B test and team-draft and balanced interleaving of rankers x and y.

    x ranks each query's relevant documents first, y at random, so x is truly better. The A/B
    test is designed 50/50; `ab_share_x` sets the share of users actually assigned to x (a
    value far from 0.5 makes a sample-ratio mismatch).
    """
    rng = np.random.default_rng(seed)
    grades, lists = _world(rng)
    qrels = pl.DataFrame(
        {
            "query_id": [f"q{q}" for q in range(QUERIES) for _ in range(DOCS_PER_QUERY)],
            "doc_id": [f"q{q}-d{d}" for q in range(QUERIES) for d in range(DOCS_PER_QUERY)],
            "grade": grades.reshape(-1).tolist(),
        },
        schema=QRELS_SCHEMA,
    )
    logdir.mkdir(parents=True, exist_ok=True)
    qrels.write_parquet(logdir / "qrels.parquet")
    if truth:
        (logdir / "truth.json").write_text(
            json.dumps(
                {
                    "metric": "ndcg@8",
                    "description": "mean nDCG@8 over queries",
                    "rankers": {"x": 0.82, "y": 0.41},
                }
            )
        )
    n = users * per_user
    unit = np.repeat(np.arange(users), per_user)
    ts = [
        T0 + timedelta(days=int(d), seconds=int(s))
        for d, s in zip(rng.integers(0, DAYS, n), rng.integers(0, 86_000, n), strict=True)
    ]
    specs = [
        ExperimentSpec("ab", 1, "s1", Design.AB, ("x", "y"), weights=(0.5, 0.5), started_at=T0),
        ExperimentSpec(
            "td", 1, "s2", Design.INTERLEAVING, ("x", "y"), method="team_draft", started_at=T0
        ),
        ExperimentSpec(
            "bal", 1, "s3", Design.INTERLEAVING, ("x", "y"), method="balanced", started_at=T0
        ),
    ]
    for spec in specs:
        append_experiment(logdir, spec)
        q = rng.integers(0, QUERIES, n)
        if spec.design is Design.AB:
            arm_x = rng.random(users) < ab_share_x
            arm = np.where(arm_x[unit], 0, 1)
            docs = np.where(arm[:, None] == 0, lists[0, q], lists[1, q])[:, :K]
            teams = np.zeros((n, K), dtype=np.int8)
            treatment = ["x" if a == 0 else "y" for a in arm]
            rankers = [[t] for t in treatment]
            page_lists = docs[None, :, :DEPTH]
            assigned = ["x" if a else "y" for a in arm_x]
        else:
            method = interleave.get(spec.method or "")
            batch = method.interleave_batch(lists[:, q, :], k=K, rng=rng)
            docs, teams = batch.docs, batch.teams
            treatment = [spec.method or ""] * n
            rankers = [["x", "y"]] * n
            page_lists = lists[:, q, :]
            assigned = [spec.method or ""] * users
        grade = np.take_along_axis(grades[q], np.maximum(docs, 0), axis=1)
        clicks = (rng.random((n, K)) < EXAMINE * ATTRACT[grade]) & (docs >= 0)
        imps, click_frame = _frames(
            spec, unit, q, ts, treatment, rankers, page_lists, docs, teams, clicks
        )
        write_frame(logdir, Kind.IMPRESSIONS, imps)
        write_frame(logdir, Kind.CLICKS, click_frame)
        write_frame(
            logdir,
            Kind.ASSIGNMENTS,
            pl.DataFrame(
                {
                    "experiment_id": [spec.experiment_id] * users,
                    "experiment_version": [spec.version] * users,
                    "unit_id": [f"u{u}" for u in range(users)],
                    "treatment": assigned,
                    "ts": [T0] * users,
                },
                schema=ASSIGNMENT_SCHEMA,
            ),
        )
    return logdir


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("log"))


@pytest.fixture(scope="module")
def report(logdir: Path) -> Report:
    return build_report(logdir, alpha=0.05, seed=1, resamples=300, plots=True)


def test_report_names_the_better_ranker(report: Report) -> None:
    assert report.headline is not None
    assert report.headline.method == "team_draft"
    assert report.headline.winner == "x"
    assert report.headline.p_value < 0.05
    assert report.headline.delta > 0
    assert report.headline.ci[0] > 0
    td = next(r for r in report.interleaving if r.method == "team_draft")
    assert [p.winner for p in td.pairs] == ["x"]
    # Interleaving needs fewer queries than any A/B metric here: the ratio is above 1.
    assert report.headline.ratio is not None
    assert report.headline.ratio[0][0] > 1
    assert report.truth is not None
    td_agreement = next(a for a in report.agreement if a.design == "team_draft")
    assert (td_agreement.agree, td_agreement.total) == (1, 1)


def test_every_ab_metric_is_compared_and_sized(report: Report) -> None:
    (ab,) = report.ab
    assert {c.metric for c in ab.comparisons} == {
        "ctr",
        "clicks_per_query",
        "abandonment",
        "reciprocal_rank",
        "success",
    }
    assert ab.srm is not None
    assert not ab.srm.mismatch
    assert ab.srm_source == "assignments"
    sized = {s.test for s in report.sample_sizes if s.design is Design.AB}
    assert sized == {c.metric for c in ab.comparisons}
    assert len(report.ratios) == 2 * len(ab.comparisons)  # team-draft and balanced


def test_sequential_path_has_one_look_per_day(report: Report) -> None:
    pair = report.interleaving[0].pairs[0]
    assert len(pair.days) == DAYS
    assert len(pair.sequential.p_values) == DAYS
    assert list(pair.sequential.p_values) == sorted(pair.sequential.p_values, reverse=True)


def test_balanced_is_flagged_and_srm_is_not(report: Report) -> None:
    kinds = {(a.kind, a.experiment) for a in report.alerts}
    assert (AlertKind.BALANCED_BIAS, "bal v1") in kinds
    assert not any(a.kind is AlertKind.SAMPLE_RATIO_MISMATCH for a in report.alerts)
    assert not any(a.kind is AlertKind.UNBALANCED_TEAMS for a in report.alerts)


def test_balanced_disagreeing_with_team_draft_is_severe(report: Report) -> None:
    td = next(r for r in report.interleaving if r.method == "team_draft")
    bal = next(r for r in report.interleaving if r.method == "balanced")
    assert [a.kind for a in _balanced_alerts(bal, [td])] == [AlertKind.BALANCED_BIAS]
    flipped = replace(bal, pairs=(replace(bal.pairs[0], winner="y"),))
    alerts = _balanced_alerts(flipped, [td])
    assert [a.kind for a in alerts] == [AlertKind.DESIGNS_DISAGREE, AlertKind.BALANCED_BIAS]
    assert alerts[0].severe
    assert "team-draft" in alerts[0].message


def test_ab_only_log_has_no_headline(tmp_path: Path) -> None:
    log = write_log(tmp_path / "ab", users=150, per_user=3)
    lines = (log / "experiments.jsonl").read_text().splitlines()
    (log / "experiments.jsonl").write_text(lines[0] + "\n")
    got = build_report(log, seed=0, resamples=50, plots=True)
    assert got.headline is None
    assert got.interleaving == ()
    assert "No interleaving experiment" in summary(got)
    page = write_html(got, tmp_path / "out").read_text(encoding="utf-8")
    assert "Only A/B experiments" in page
    assert 'src="power.png"' in page


def test_a_log_of_one_user_is_reported_without_an_interval(tmp_path: Path) -> None:
    """One user (a server tried by hand): every test is untestable, and the report says so
    instead of failing or printing an interval of width zero."""
    log = write_log(tmp_path / "one", users=1, per_user=6)
    got = build_report(log, seed=0, resamples=50, plots=True)
    assert got.headline is not None
    assert all(math.isnan(x) for x in got.headline.ci)
    for result in got.interleaving:
        for pair in result.pairs:
            assert pair.winner is None
            assert math.isnan(pair.p_adjusted)
    text = summary(got)
    assert "[n/a], p-value n/a" in text
    assert any("only 1 user:" in alert.message for alert in got.alerts)
    page = write_html(got, tmp_path / "out").read_text(encoding="utf-8")
    assert "nan" not in page.replace("nanosecond", "")


def test_srm_is_flagged_on_a_skewed_split(tmp_path: Path) -> None:
    skewed = write_log(tmp_path / "skewed", users=300, per_user=3, ab_share_x=0.7)
    got = build_report(skewed, seed=0, resamples=50, plots=False)
    (ab,) = got.ab
    assert ab.srm is not None
    assert ab.srm.mismatch
    alert = next(a for a in got.alerts if a.kind is AlertKind.SAMPLE_RATIO_MISMATCH)
    assert alert.experiment == "ab v1"
    assert alert.severe
    assert "sample ratio mismatch" in summary(got)


def test_html_has_its_sections_and_figures(report: Report, tmp_path: Path) -> None:
    path = write_html(report, tmp_path / "out")
    page = path.read_text(encoding="utf-8")
    for anchor in ("warnings", "preference", "ab", "sample-sizes", "truth", "diagnostics"):
        assert f'id="{anchor}"' in page
    for heading in ("Methods", "Caveats", "x beats y", "Sample ratio", "Team balance"):
        assert heading in page
    sources = [part.split('"', 1)[0] for part in page.split('<img src="')[1:]]
    assert set(sources) == {
        "preference.png",
        "power.png",
        "clicks.png",
        "balance.png",
        "sequential.png",
    }
    for source in sources:
        figure = path.parent / source
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<style>" in page
    assert "http" not in page.split("<main>")[0]  # nothing fetched from the network


def test_html_without_plots_has_no_images(logdir: Path, tmp_path: Path) -> None:
    got = build_report(logdir, seed=0, resamples=50, plots=False)
    page = write_html(got, tmp_path / "bare").read_text(encoding="utf-8")
    assert "<img" not in page
    assert "--no-plots" in page
    assert not list((tmp_path / "bare").glob("*.png"))


def test_summary_is_short_and_says_what_matters(report: Report) -> None:
    text = summary(report, html_path="out/index.html")
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES
    assert lines[1].startswith("Winner: x over y")
    assert "p-value" in text
    assert "ratio A/B : interleaving" in text
    assert "team_draft interleaving" in text
    assert "Warnings" in text
    assert lines[-1].startswith("Report: out/index.html")
    assert report_summary(report, html_path="out/index.html") == text  # the same, re-exported


def test_report_is_reproducible_from_its_seed(logdir: Path) -> None:
    one = build_report(logdir, seed=3, resamples=100, plots=False)
    two = build_report(logdir, seed=3, resamples=100, plots=False)
    assert one.interleaving[0].pairs[0].preference == two.interleaving[0].pairs[0].preference
    assert [s.curve for s in one.sample_sizes] == [s.curve for s in two.sample_sizes]


# The report computes balance, user totals and sequential looks its own (faster) way: each
# must equal the analysis module it stands in for.


@pytest.mark.parametrize(("experiment", "method"), [("td", "team_draft"), ("bal", "balanced")])
def test_balance_equals_analysis_balance(logdir: Path, experiment: str, method: str) -> None:
    spec = ExperimentSpec(experiment, 1, "", Design.INTERLEAVING, ("x", "y"), method=method)
    patterns = _team_patterns(logdir, spec)
    first, positions = _balance(_position_team_counts(patterns, 2), 2)
    frame = (
        pl.scan_parquet(logdir / "impressions" / "*.parquet")
        .filter(pl.col("experiment_id") == experiment)
        .select("teams")
    )
    assert first == first_pick_balance(frame, alpha=0.001)
    want = position_balance(frame, alpha=0.001)
    assert positions.unbalanced == want.unbalanced
    for got_row, want_row in zip(positions.positions, want.positions, strict=True):
        assert (got_row.position, got_row.counts) == (want_row.position, want_row.counts)
        assert got_row.p_value == pytest.approx(want_row.p_value)
        assert got_row.p_adjusted == pytest.approx(want_row.p_adjusted)


def test_totals_and_looks_equal_the_analysis_modules(logdir: Path) -> None:
    spec = ExperimentSpec(
        "td", 1, "", Design.INTERLEAVING, ("x", "y"), method="team_draft", started_at=T0
    )
    outcomes = interleaving_outcomes(logdir, spec)
    data = _pair_data(_with_days(outcomes, logdir, spec), "x", "y", "td v1")
    assert data is not None
    want = user_totals(outcomes, "x", "y")
    order = np.argsort(data.totals.unit_ids)  # users come ordered by a hash of their id
    assert tuple(np.asarray(data.totals.unit_ids)[order]) == want.unit_ids
    for name in ("impressions", "wins", "losses", "ties", "total", "total_sq"):
        np.testing.assert_allclose(getattr(data.totals, name)[order], getattr(want, name))
    days = pl.scan_parquet(logdir / "impressions" / "*.parquet").select(
        "impression_id", day=pl.col("ts").dt.date()
    )
    want_looks = cumulative_user_moments(
        outcomes.lazy().join(days, on="impression_id"), period="day"
    )
    assert data.days == tuple(T0.date() + timedelta(days=d) for d in range(DAYS))
    assert len(data.looks) == len(want_looks) == DAYS
    for got, expected in zip(data.looks, want_looks, strict=True):
        assert got.n == expected.n
        assert got.total == pytest.approx(expected.total, abs=1e-9)
        assert got.total_sq == pytest.approx(expected.total_sq, abs=1e-9)
    flipped = _pair_data(_with_days(outcomes, logdir, spec), "y", "x", "td v1")
    assert flipped is not None
    np.testing.assert_allclose(flipped.totals.total[order], -want.total)
    np.testing.assert_array_equal(flipped.totals.wins[order], want.losses)


def test_power_curves_have_a_bounded_cost() -> None:
    sizes, experiments = _plan((400.0, 700.0), 2) or ((), 0)
    assert experiments == POWER_EXPERIMENTS
    assert sizes[0] <= 400 / 2 / 8 + 1
    assert sizes[-1] >= 700  # twice the 95% size per arm: the curve reaches 95%
    for users in (1e5, 1e6):
        sizes, experiments = _plan((users, 2 * users), 2) or ((), 0)
        assert experiments >= MIN_POWER_EXPERIMENTS
        assert experiments * 2 * sum(sizes) <= POWER_DRAWS
    assert _plan((1e7, 2e7), 2) is None  # too large to simulate: analytic only
    assert _plan((math.inf, math.inf), 1) is None


def test_users_whose_hashes_collide_stay_apart() -> None:
    # Users a, b, c: a and b collide on the first hash, not on the second.
    first = np.array([5, 5, 7, 5], dtype=np.uint64)
    second = np.array([2, 1, 3, 2], dtype=np.uint64)
    order, starts = _user_runs(first, second)
    assert second[order].tolist() == [1, 2, 2, 3]
    assert starts.tolist() == [0, 1, 3]
    plain = np.array([9, 4, 9], dtype=np.uint64)
    order, starts = _user_runs(plain, plain + np.uint64(1))
    assert order.tolist() == [1, 0, 2]
    assert starts.tolist() == [0, 1]


def test_no_truth_means_no_agreement(tmp_path: Path) -> None:
    served = write_log(tmp_path / "served", users=120, per_user=3, truth=False)
    got = build_report(served, seed=0, resamples=50, plots=False)
    assert got.truth is None
    assert got.verdicts == ()
    assert all(s.direction == "observed" for s in got.sample_sizes if s.curve is not None)
    page = write_html(got, tmp_path / "out").read_text(encoding="utf-8")
    assert "no <code>truth.json</code>" in page


# Failures: one line, non-zero exit.


def test_missing_logdir_fails_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "report",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode != 0
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("error: log directory")
    assert "does not exist" in run.stderr


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "experiments.jsonl is missing"),
        (lambda d: (d / "experiments.jsonl").write_text(""), "no experiments in"),
        (lambda d: (d / "experiments.jsonl").write_text("{not json\n"), "corrupt experiment spec"),
    ],
)
def test_empty_or_corrupt_logdir_fails(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: Callable[[Path], object],
    message: str,
) -> None:
    setup(tmp_path)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


def test_corrupt_parquet_fails_in_one_line(tmp_path: Path) -> None:
    append_experiment(
        tmp_path,
        ExperimentSpec("td", 1, "s", Design.INTERLEAVING, ("x", "y"), method="team_draft"),
    )
    (tmp_path / "impressions").mkdir()
    (tmp_path / "impressions" / "part-0.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ReportError) as caught:
        build_report(tmp_path)
    assert "\n" not in str(caught.value)
    assert "td v1" in str(caught.value)


def test_an_empty_parquet_part_fails_instead_of_losing_its_rows(tmp_path: Path) -> None:
    append_experiment(
        tmp_path,
        ExperimentSpec("td", 1, "s", Design.INTERLEAVING, ("x", "y"), method="team_draft"),
    )
    (tmp_path / "impressions").mkdir()
    (tmp_path / "impressions" / "part-0.parquet").write_bytes(b"")  # a glob scan skipped it
    with pytest.raises(ReportError, match=r"part-0\.parquet is empty \(0 bytes\)"):
        build_report(tmp_path)


def test_a_truth_that_is_not_finite_is_refused(tmp_path: Path) -> None:
    (tmp_path / "truth.json").write_text(
        '{"metric": "m", "rankers": {"x": NaN, "y": 0.4}}'  # Python's json reads NaN
    )
    with pytest.raises(ReportError, match="finite number"):
        read_truth(tmp_path)


def test_experiments_without_impressions_fail(tmp_path: Path) -> None:
    append_experiment(
        tmp_path,
        ExperimentSpec("td", 1, "s", Design.INTERLEAVING, ("x", "y"), method="team_draft"),
    )
    with pytest.raises(ReportError, match="no impressions logged"):
        build_report(tmp_path)


def test_events_a_server_has_not_compacted_yet_are_said_to_be_left_out(tmp_path: Path) -> None:
    """A server's journal segments are written ahead with zeros: one that holds a line is
    flagged (the report cannot see it), one still all zeros is not."""
    append_experiment(
        tmp_path,
        ExperimentSpec("td", 1, "s", Design.INTERLEAVING, ("x", "y"), method="team_draft"),
    )
    journal = journal_dir(tmp_path)
    journal.mkdir()
    (journal / "segment-00000002.jsonl").write_bytes(bytes(4096))
    with pytest.raises(ReportError, match="no impressions logged") as refused:
        build_report(tmp_path)
    assert "journal" not in str(refused.value)
    (journal / "segment-00000001.jsonl").write_bytes(b"0badc0de impressions {}\n" + bytes(64))
    assert uncompacted_segments(tmp_path) == 1
    with pytest.raises(ReportError, match="a journal segment holds events not yet compacted"):
        build_report(tmp_path)
    log = write_log(tmp_path / "log", users=150, per_user=3)
    assert uncompacted_segments(log) == 0
    assert not any(a.kind is AlertKind.UNCOMPACTED for a in build_report(log, resamples=20).alerts)
    journal_dir(log).mkdir()
    for n in (1, 2):
        (journal_dir(log) / f"segment-{n:08d}.jsonl").write_bytes(b"0badc0de clicks {}\n")
    (alert,) = [
        a for a in build_report(log, resamples=20).alerts if a.kind is AlertKind.UNCOMPACTED
    ]
    assert alert.message.startswith("2 journal segments hold events not yet compacted")
    assert not alert.severe
    assert "\n  - 2 journal segments hold" in summary(build_report(log, resamples=20))


def test_cli_writes_the_report(
    logdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["report", str(logdir), "--out", str(tmp_path / "cli"), "--no-plots", "--resamples", "50"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Winner: x over y" in out
    assert (tmp_path / "cli" / "index.html").exists()


def test_help_is_instant_and_imports_nothing_heavy() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "analysis", "report", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "--no-plots" in run.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, analysis.__main__; "
            "print(sorted(m for m in ('matplotlib', 'scipy', 'statsmodels', 'rich') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert probe.stdout.strip() == "[]"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["report", "x", "--out", "y", "--alpha", "1.5"])
    assert caught.value.code == 2
