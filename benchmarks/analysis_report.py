"""Benchmark: `analysis report` without plots on a 10,000,000-impression team-draft log.

Goal (issue 4, section 7): <= 10 s on 2 cores with bounded memory. The log is synthetic and
generated here once (cached under .cache/bench/): team-draft pages of 10 results from two
rankers over 2,000 queries, users with several impressions over 14 days, and clicks from a
position-based model that favours ranker "x" slightly. Beside the report's time and peak
resident memory it prints a reference measured in the same run: a plain eager polars read
of the same impressions and clicks (every column, as `pl.read_parquet` does by default).

Each measurement runs in a fresh child process, so its peak RSS is its own.

Run: python -m benchmarks.analysis_report [--impressions N] [--resamples B]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

import interleave
from analysis.schema import (
    CLICK_SCHEMA,
    IMPRESSION_SCHEMA,
    Design,
    ExperimentSpec,
    Kind,
    append_experiment,
    write_frame,
)

CACHE = Path(".cache/bench")
DEPTH = 10
QUERIES = 2_000
DOCS = 5_000
DAYS = 14
IMPRESSIONS_PER_USER = 10
CHUNK = 1_000_000
START = datetime(2026, 11, 2, tzinfo=UTC)


def _query_lists(rng: np.random.Generator) -> np.ndarray:
    """(2, QUERIES, DEPTH) ranked lists: y is x with its top half lightly shuffled."""
    x = np.stack([rng.choice(DOCS, size=DEPTH, replace=False) for _ in range(QUERIES)])
    y = x.copy()
    for q in range(QUERIES):
        head = rng.permutation(DEPTH // 2)
        y[q, : DEPTH // 2] = x[q, head]
        if rng.random() < 0.5:
            y[q, -1] = (x[q, -1] + 1 + rng.integers(DOCS - 1)) % DOCS
    return np.stack([x, y])


def _doc_list(ids: np.ndarray) -> pl.Series:
    """(n, k) int ids as a List(String) series of "d<id>"."""
    n, k = ids.shape
    flat = pl.Series(ids.reshape(-1)).cast(pl.String)
    return ("d" + flat).reshape((n, k)).cast(pl.List(pl.String))


def generate(logdir: Path, impressions: int, seed: int = 7) -> None:
    """Write a team-draft log of `impressions` impressions to `logdir` (chunked)."""
    rng = np.random.default_rng(seed)
    lists = _query_lists(rng)
    method = interleave.get("team_draft")
    spec = ExperimentSpec(
        "bench", 1, "salt", Design.INTERLEAVING, ("x", "y"), method="team_draft", started_at=START
    )
    logdir.mkdir(parents=True, exist_ok=True)
    append_experiment(logdir, spec)
    users = max(1, impressions // IMPRESSIONS_PER_USER)
    query_lists = pl.DataFrame(
        {"q": np.arange(QUERIES), "x": _doc_list(lists[0]), "y": _doc_list(lists[1])}
    ).select(
        "q", lists=pl.concat_list(pl.col("x").implode().over("q"), pl.col("y").implode().over("q"))
    )
    # Position-based clicks: examination 1/(rank+1)^0.7, attractiveness higher for x's picks.
    examine = 1.0 / np.arange(1, DEPTH + 1) ** 0.7
    for lo in range(0, impressions, CHUNK):
        n = min(CHUNK, impressions - lo)
        q = rng.integers(0, QUERIES, size=n)
        pages = method.interleave_batch(lists[:, q, :], k=DEPTH, rng=rng)
        attract = np.where(pages.teams == 0, 0.33, 0.30)
        clicks = rng.random((n, DEPTH)) < examine * attract
        user = rng.integers(0, users, size=n)
        offset = rng.integers(0, DAYS * 86_400_000_000, size=n)
        ids = pl.Series(np.arange(lo, lo + n)).cast(pl.String)
        imps = pl.DataFrame(
            {
                "impression_id": "i" + ids,
                "experiment_id": pl.repeat("bench", n, eager=True),
                "experiment_version": pl.repeat(1, n, dtype=pl.Int32, eager=True),
                "unit_id": "u" + pl.Series(user).cast(pl.String),
                "q": q,
                "design": pl.repeat("interleaving", n, eager=True),
                "treatment": pl.repeat("team_draft", n, eager=True),
                "doc_ids": _doc_list(pages.docs),
                "teams": pl.Series(pages.teams).reshape((n, DEPTH)).cast(pl.List(pl.Int8)),
                "offset": offset,
                "seed": pl.Series(rng.integers(0, 2**63, size=n, dtype=np.uint64)),
            }
        )
        imps = (
            imps.join(query_lists, on="q", how="left", maintain_order="left")
            .with_columns(
                query_id="q" + pl.col("q").cast(pl.String),
                rankers=pl.lit(["x", "y"], dtype=pl.List(pl.String)),
                ts=pl.lit(START, dtype=IMPRESSION_SCHEMA["ts"])
                + pl.duration(microseconds=pl.col("offset")),
                page_start=pl.lit(0, dtype=pl.Int32),
                excluded=pl.lit(None, dtype=pl.String),
            )
            .select(list(IMPRESSION_SCHEMA))
            .cast(dict(IMPRESSION_SCHEMA))  # type: ignore[arg-type]
        )
        rows, pos = np.nonzero(clicks)
        click_frame = pl.DataFrame(
            {
                "click_id": "c" + pl.Series(np.arange(rows.size) + lo * DEPTH).cast(pl.String),
                "impression_id": imps["impression_id"].gather(rows),
                "experiment_id": pl.repeat("bench", rows.size, eager=True),
                "experiment_version": pl.repeat(1, rows.size, dtype=pl.Int32, eager=True),
                "unit_id": imps["unit_id"].gather(rows),
                "position": pl.Series(pos, dtype=pl.Int16),
                "doc_id": imps["doc_ids"].gather(rows).list.get(pl.Series(pos)),
                "ts": imps["ts"].gather(rows) + timedelta(seconds=5),
            }
        ).cast(dict(CLICK_SCHEMA))  # type: ignore[arg-type]
        write_frame(logdir, Kind.IMPRESSIONS, imps)
        write_frame(logdir, Kind.CLICKS, click_frame)
        print(f"  generated {lo + n:,} / {impressions:,} impressions", file=sys.stderr)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_report(logdir: str, resamples: int) -> None:
    """What `python -m analysis report LOGDIR --out DIR --no-plots` does, timed with imports."""
    start = time.perf_counter()
    from analysis.report import build_report, write_html
    from analysis.summary import summary

    built = time.perf_counter()
    report = build_report(logdir, alpha=0.05, seed=0, resamples=resamples, plots=False)
    build = time.perf_counter() - built
    path = write_html(report, CACHE / "report")
    seconds = time.perf_counter() - start
    print(summary(report, html_path=path), file=sys.stderr)
    print(json.dumps({"seconds": seconds, "build": build, "rss_mb": _peak_rss_mb()}))


def _child_outcomes(logdir: str) -> None:
    """`analysis.outcomes.interleaving_outcomes` alone: the part of the report it costs."""
    from analysis.outcomes import interleaving_outcomes
    from analysis.schema import read_experiments

    (spec,) = read_experiments(logdir)
    start = time.perf_counter()
    interleaving_outcomes(logdir, spec)
    print(json.dumps({"seconds": time.perf_counter() - start, "rss_mb": _peak_rss_mb()}))


def _child_reference(logdir: str, columns: bool) -> None:
    """Eager polars read of the log: every column, or only those the report reads."""
    start = time.perf_counter()
    imp_cols = ["impression_id", "unit_id", "teams", "ts"] if columns else None
    click_cols = ["impression_id", "position"] if columns else None
    imps = pl.read_parquet(Path(logdir) / "impressions" / "part-*.parquet", columns=imp_cols)
    clicks = pl.read_parquet(Path(logdir) / "clicks" / "part-*.parquet", columns=click_cols)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"seconds": seconds, "rss_mb": _peak_rss_mb(), "rows": imps.height + clicks.height}
        )
    )


def _run_child(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.analysis_report", *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Generate the log once, then time the report and the reference in child processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=10_000_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument(
        "--child", choices=("report", "outcomes", "all", "used"), help=argparse.SUPPRESS
    )
    parser.add_argument("--logdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "report":
        _child_report(args.logdir, args.resamples)
        return
    if args.child == "outcomes":
        _child_outcomes(args.logdir)
        return
    if args.child in ("all", "used"):
        _child_reference(args.logdir, columns=args.child == "used")
        return
    logdir = CACHE / f"team_draft_{args.impressions}"
    if not (logdir / "experiments.jsonl").exists():
        print(f"generating {args.impressions:,} impressions under {logdir} (once)", file=sys.stderr)
        tmp = logdir.with_name(logdir.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        generate(tmp, args.impressions)
        tmp.rename(logdir)
    log = ["--logdir", str(logdir)]
    every = _run_child(["--child", "all", *log])
    used = _run_child(["--child", "used", *log])
    outcomes = _run_child(["--child", "outcomes", *log])
    rep = _run_child(["--child", "report", *log, "--resamples", str(args.resamples)])
    load = os.getloadavg()[0]
    print(
        f"analysis report --no-plots on {args.impressions:,} team-draft impressions "
        f"(goal <= 10 s; {os.cpu_count()} CPUs, load average {load:.1f} at the end)"
    )
    print(f"{'run (each in a fresh process)':<58} {'seconds':>8} {'peak RSS MB':>12}")
    rows = [
        ("braid report --no-plots (imports, build, HTML)", rep),
        ("  of which build_report", {"seconds": rep["build"], "rss_mb": math.nan}),
        ("  interleaving_outcomes alone (analysis.outcomes)", outcomes),
        ("reference: eager pl.read_parquet, every column", every),
        ("reference: eager pl.read_parquet, the columns used", used),
    ]
    for name, fig in rows:
        rss = "" if math.isnan(fig["rss_mb"]) else f"{fig['rss_mb']:,.0f}"
        print(f"{name:<58} {fig['seconds']:>8.2f} {rss:>12}")
    verdict = "ok" if rep["seconds"] <= 10 else "MISSED"
    print(f"goal <= 10 s: {verdict}")


if __name__ == "__main__":
    main()
