"""From raw logs to per-impression outcomes: the glue between the log schema and the tests.

Two frames come out, whatever wrote the log (the simulator or the server):

* `interleaving_outcomes`: one row per (impression, ranker pair) with columns
  unit_id, impression_id, a, b, outcome in [-1, 1] (positive favours `a`) and the impression's
  ts, for `analysis.preference` and daily looks.
* `ab_outcomes`: one row per impression with unit_id, arm, clicks, first_click_rank and success,
  for `analysis.ab`.

Credit comes from the `interleave` package itself, so the analysis applies exactly the rule
the method defines. Team-based methods (credit = clicks per team) are computed in polars over a
lazy scan, joining clicks to their impression's team list, so a log of millions of impressions
streams. Methods whose credit needs the input lists (balanced, probabilistic, optimized) are
credited in batch by `Method.credit_batch` over integer-coded ids. Impressions marked
`excluded` are left out; a click repeated on one position counts once.
"""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

import interleave
from analysis.schema import QRELS_SCHEMA, Design, ExperimentSpec, Kind, scan

__all__ = ["TEAM_METHODS", "ab_outcomes", "interleaving_outcomes", "qrels"]

TEAM_METHODS: Final = frozenset({"team_draft", "team_draft_multileave"})

OUTCOME_SCHEMA: Final = pl.Schema(
    {
        "unit_id": pl.String(),
        "impression_id": pl.String(),
        "a": pl.String(),
        "b": pl.String(),
        "outcome": pl.Float64(),
        "ts": pl.Datetime("us", "UTC"),
    }
)


def _impressions(logdir: str | os.PathLike[str], spec: ExperimentSpec) -> pl.LazyFrame:
    return scan(logdir, Kind.IMPRESSIONS).filter(
        (pl.col("experiment_id") == spec.experiment_id)
        & (pl.col("experiment_version") == spec.version)
        & pl.col("excluded").is_null()
    )


def _clicks(logdir: str | os.PathLike[str], spec: ExperimentSpec) -> pl.LazyFrame:
    return (
        scan(logdir, Kind.CLICKS)
        .filter(
            (pl.col("experiment_id") == spec.experiment_id)
            & (pl.col("experiment_version") == spec.version)
        )
        .select("impression_id", "position")
        .unique()
    )


def qrels(logdir: str | os.PathLike[str]) -> pl.LazyFrame | None:
    """The relevance judgments of a log directory, if it has any."""
    path = Path(logdir) / "qrels.parquet"
    if not path.exists():
        return None
    return pl.scan_parquet(path, schema=QRELS_SCHEMA)


def interleaving_outcomes(logdir: str | os.PathLike[str], spec: ExperimentSpec) -> pl.DataFrame:
    """Per (impression, ranker pair) outcomes of one interleaving experiment version."""
    if spec.design is not Design.INTERLEAVING or spec.method is None:
        raise ValueError(f"experiment {spec.experiment_id!r} is not an interleaving experiment")
    method = interleave.get(spec.method, **dict(spec.options))
    if spec.method in TEAM_METHODS:
        scores = _team_scores(logdir, spec)
    else:
        scores = _batch_scores(logdir, spec, method)
    return _pairs(scores, spec.rankers, pairwise=spec.method in ("probabilistic",))


def _key() -> pl.Expr:
    """The join key of an impression: a 64-bit hash of its id."""
    return pl.col("impression_id").hash(seed=0x5EED)


def _team_scores(logdir: str | os.PathLike[str], spec: ExperimentSpec) -> pl.DataFrame:
    """Clicks credited to each team per impression (team-draft family), in polars.

    Joins run on a 64-bit hash of the impression id, several times faster than on the strings.
    A collision that touches a clicked impression makes a click match two impressions, which
    the row count shows; the string join is then used instead.
    """
    imps = _impressions(logdir, spec).select("impression_id", "unit_id", "teams", "ts")
    r = len(spec.rankers)
    key = _key()
    clicks = _clicks(logdir, spec).with_columns(key=key).collect()
    joined = (
        clicks.lazy()
        .join(imps.select("teams", key=key), on="key", how="inner")
        .collect(engine="streaming")
    )
    on = "key"
    if joined.height > clicks.height:  # a hash collision: fall back to the ids themselves
        on = "impression_id"
        joined = (
            clicks.lazy()
            .join(imps.select("impression_id", "teams"), on=on, how="inner")
            .collect(engine="streaming")
        )
    credited = (
        joined.lazy()
        .with_columns(team=pl.col("teams").list.get(pl.col("position"), null_on_oob=True))
        .filter(pl.col("team").is_not_null())
        .group_by(on)
        .agg([(pl.col("team") == t).sum().cast(pl.Float64).alias(f"s{t}") for t in range(r)])
    )
    return (
        imps.select("impression_id", "unit_id", "ts", key=key)
        .join(credited, on=on, how="left")
        .with_columns([pl.col(f"s{t}").fill_null(0.0) for t in range(r)])
        .drop("key")
        .collect(engine="streaming")
    )


def _batch_scores(
    logdir: str | os.PathLike[str], spec: ExperimentSpec, method: interleave.Method
) -> pl.DataFrame:
    """Credit by `method.credit_batch` over integer-coded pages; returns s0.. and, for
    probabilistic interleaving, the expected pairwise outcome p01."""
    imps = (
        _impressions(logdir, spec)
        .select("impression_id", "unit_id", "lists", "doc_ids", "teams", "ts")
        .collect()
    )
    n = imps.height
    r = len(spec.rankers)
    if n == 0:
        empty: dict[str, pl.DataType] = {
            "impression_id": pl.String(),
            "unit_id": pl.String(),
            "ts": pl.Datetime("us", "UTC"),
        }
        empty |= {f"s{t}": pl.Float64() for t in range(r)}
        empty["p01"] = pl.Float64()
        return pl.DataFrame(schema=empty)
    ids = (
        pl.concat(
            [
                imps.select(pl.col("doc_ids").explode().alias("id")),
                imps.select(pl.col("lists").explode().explode().alias("id")),
            ]
        )
        .drop_nulls()
        .unique()
        .sort("id")["id"]
    )
    code = pl.Enum(ids)
    depth = int(
        imps.select(pl.col("lists").list.eval(pl.element().list.len()).list.max()).max().item() or 0
    )
    k = int(imps.select(pl.col("doc_ids").list.len().max()).item() or 0)
    lists = np.full((r, n, max(depth, 1)), -1, dtype=np.int64)
    for t in range(r):
        flat = imps.select(
            row=pl.int_range(pl.len()).repeat_by(pl.col("lists").list.get(t).list.len()).explode(),
            pos=pl.col("lists").list.get(t).list.eval(pl.int_range(pl.len())).explode(),
            doc=pl.col("lists").list.get(t).explode().cast(code).to_physical(),
        ).drop_nulls()
        lists[t, flat["row"].to_numpy(), flat["pos"].to_numpy()] = flat["doc"].to_numpy()
    page = imps.select(
        row=pl.int_range(pl.len()).repeat_by(pl.col("doc_ids").list.len()).explode(),
        pos=pl.col("doc_ids").list.eval(pl.int_range(pl.len())).explode(),
        doc=pl.col("doc_ids").explode().cast(code).to_physical(),
        team=pl.col("teams").explode().fill_null(-1),
    ).drop_nulls(["row"])
    docs = np.full((n, max(k, 1)), -1, dtype=np.int64)
    teams = np.full((n, max(k, 1)), -1, dtype=np.int8)
    rows, pos = page["row"].to_numpy(), page["pos"].to_numpy()
    docs[rows, pos] = page["doc"].to_numpy()
    teams[rows, pos] = page["team"].to_numpy()
    clicked = (
        _clicks(logdir, spec)
        .join(imps.lazy().select("impression_id").with_row_index("row"), on="impression_id")
        .collect()
    )
    clicks = np.zeros(docs.shape, dtype=bool)
    c_rows, c_pos = clicked["row"].to_numpy(), clicked["position"].to_numpy().astype(np.int64)
    shown = (c_pos >= 0) & (c_pos < docs.shape[1])
    c_rows, c_pos = c_rows[shown], c_pos[shown]
    keep = docs[c_rows, c_pos] >= 0
    clicks[c_rows[keep], c_pos[keep]] = True
    batch = interleave.PageBatch(method.name, lists, docs, teams)
    credit = method.credit_batch(batch, clicks)
    out = imps.select("impression_id", "unit_id", "ts").with_columns(
        [pl.Series(f"s{t}", credit.scores[:, t]) for t in range(r)]
    )
    return out.with_columns(p01=pl.Series(credit.pairwise[:, 0, 1]))


def _pairs(scores: pl.DataFrame, rankers: tuple[str, ...], *, pairwise: bool) -> pl.DataFrame:
    frames = []
    for i, j in combinations(range(len(rankers)), 2):
        if pairwise and (i, j) == (0, 1):
            outcome = pl.col("p01")
        else:
            outcome = (pl.col(f"s{i}") - pl.col(f"s{j}")).sign().cast(pl.Float64)
        frames.append(
            scores.select(
                "unit_id",
                "impression_id",
                a=pl.lit(rankers[i], dtype=pl.String),
                b=pl.lit(rankers[j], dtype=pl.String),
                outcome=outcome.cast(pl.Float64),
                ts="ts",
            )
        )
    if not frames:
        return pl.DataFrame(schema=OUTCOME_SCHEMA)
    return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)


def ab_outcomes(logdir: str | os.PathLike[str], spec: ExperimentSpec) -> pl.DataFrame:
    """Per-impression A/B outcomes of one A/B experiment version.

    `success` (a click on an item of grade >= 1) is known only when the log directory has
    relevance judgments (`qrels.parquet`); otherwise it is null.
    """
    if spec.design is not Design.AB:
        raise ValueError(f"experiment {spec.experiment_id!r} is not an A/B experiment")
    imps = _impressions(logdir, spec).select(
        "impression_id", "unit_id", "query_id", "doc_ids", "page_start", arm="treatment"
    )
    clicks = (
        _clicks(logdir, spec)
        .join(imps.select("impression_id", "query_id", "doc_ids"), on="impression_id", how="inner")
        .with_columns(doc_id=pl.col("doc_ids").list.get(pl.col("position"), null_on_oob=True))
    )
    clicks = clicks.filter(pl.col("doc_id").is_not_null())
    judged = qrels(logdir)
    if judged is not None:
        clicks = clicks.join(judged, on=["query_id", "doc_id"], how="left").with_columns(
            relevant=pl.col("grade").fill_null(0) >= 1
        )
    else:
        clicks = clicks.with_columns(relevant=pl.lit(None, dtype=pl.Boolean))
    per_imp = clicks.group_by("impression_id").agg(
        clicks=pl.len().cast(pl.Int32),
        first=pl.col("position").min(),
        hit=pl.col("relevant").any(ignore_nulls=False),
    )
    success = (
        pl.col("hit").fill_null(False) if judged is not None else pl.lit(None, dtype=pl.Boolean)
    )
    return (
        imps.join(per_imp, on="impression_id", how="left")
        .select(
            "unit_id",
            "arm",
            clicks=pl.col("clicks").fill_null(0).cast(pl.Int32),
            first_click_rank=(pl.col("page_start") + pl.col("first").cast(pl.Int32) + 1).cast(
                pl.Int32
            ),
            success=success,
        )
        .collect(engine="streaming")
    )
