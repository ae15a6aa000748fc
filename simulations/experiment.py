"""Simulate A/B tests and interleaving experiments on the same rankers, into one log.

A `World` is what every experiment of a scenario shares: the corpus, the query pool (images of
one style that have a twin in another), each ranker's lists for every query, and the users'
click model. An experiment draws its own population, spreads each user's queries over the
experiment's days, shows pages and samples clicks, all vectorised in batches, and writes
assignments, impressions and clicks in exactly the schema the server writes
(`analysis.schema`). Every impression of a batch records the batch's seed: re-running
`interleave_batch` on the batch's logged lists, in log order, with
`rng_from_seed(seed, spec.seed_scheme)` regenerates its pages exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

import interleave
from analysis.schema import (
    ASSIGNMENT_SCHEMA,
    CLICK_SCHEMA,
    IMPRESSION_SCHEMA,
    Design,
    ExperimentSpec,
    Kind,
    append_experiment,
    write_frame,
)
from rankers.corpus import Corpus
from simulations.click_models import ClickModel
from simulations.population import Population
from simulations.relevance import Labels

__all__ = ["START", "World", "run_ab", "run_interleaving"]

START: Final = datetime(2026, 1, 5, tzinfo=UTC)
"""Simulated experiments start on this (fixed) day, so logs are reproducible."""

IntArray = npt.NDArray[np.int64]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True, eq=False)
class World:
    """What every experiment of a simulation shares.

    Attributes:
        corpus: The image corpus.
        labels: Its label codes.
        pool: Corpus rows of the query images.
        tables: For each ranker name, (len(pool), depth) corpus rows of its list per query.
        model: The users' click model.
        k: Results per page.
        days: Days each experiment runs.
    """

    corpus: Corpus
    labels: Labels
    pool: IntArray
    tables: dict[str, IntArray]
    model: ClickModel
    k: int
    days: int

    def __post_init__(self) -> None:
        for name, table in self.tables.items():
            if table.shape[0] != len(self.pool) or table.shape[1] < self.k:
                raise ValueError(f"tables[{name!r}] must have one row per query and >= k columns")


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _units(population: Population, lo: int, hi: int) -> tuple[IntArray, IntArray]:
    """Impression rows of users lo..hi: the user of each impression and its query number."""
    counts = population.queries[lo:hi]
    users = np.repeat(np.arange(lo, hi), counts)
    return users, counts


def _timestamps(
    rng: np.random.Generator, users: IntArray, counts: IntArray, days: int
) -> npt.NDArray[np.int64]:
    """Microseconds since the epoch: each user arrives on a random day, then queries at
    random times over the rest of the experiment, in order."""
    start_us = int(START.timestamp() * 1_000_000)
    span = days * 86_400_000_000
    arrive = rng.integers(0, span, size=len(counts))
    offsets = rng.random(len(users))
    first = np.repeat(arrive, counts)
    ts = first + (offsets * (span - first)).astype(np.int64)
    # sort each user's queries by time (users are contiguous)
    order = np.lexsort((ts, users))
    return start_us + ts[order]


def _strings(ids: pl.Series, codes: IntArray) -> pl.Series:
    flat = codes.reshape(-1)
    out = ids.gather(np.maximum(flat, 0))
    if (flat < 0).any():
        out = pl.select(pl.when(pl.Series(flat >= 0)).then(out)).to_series()
    return out


def _nested(ids: pl.Series, codes: IntArray) -> pl.Series:
    """(n, r, depth) corpus rows -> List(List(String)), padding (-1) dropped."""
    n, r, depth = codes.shape
    arr = _strings(ids, codes).reshape((n, r, depth))
    out = arr.cast(pl.List(pl.List(pl.String)))
    if (codes < 0).any():
        out = pl.select(out.list.eval(pl.element().list.drop_nulls())).to_series()
    return out


def _lists(ids: pl.Series, codes: IntArray) -> pl.Series:
    """(n, k) corpus rows -> List(String), padding (-1) dropped."""
    n, k = codes.shape
    out = _strings(ids, codes).reshape((n, k)).cast(pl.List(pl.String))
    if (codes < 0).any():
        out = pl.select(out.list.drop_nulls()).to_series()
    return out


def _write_batch(
    out: Path,
    spec: ExperimentSpec,
    world: World,
    *,
    first_index: int,
    unit_ids: pl.Series,
    queries: IntArray,
    treatment: pl.Series,
    rankers: pl.Series,
    lists: IntArray,
    docs: IntArray,
    teams: npt.NDArray[np.int8],
    clicks: npt.NDArray[np.bool_],
    ts_us: npt.NDArray[np.int64],
    seed: int,
) -> None:
    ids = pl.Series(world.corpus.ids)
    n = len(queries)
    impression_ids = pl.select(
        pl.format("{}#{}", pl.lit(spec.experiment_id), pl.int_range(first_index, first_index + n))
    ).to_series()
    ts = pl.Series(ts_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    team_values = pl.Series(teams.reshape(-1))
    team_series = (
        pl.select(pl.when(team_values >= 0).then(team_values))
        .to_series()
        .reshape((n, docs.shape[1]))
    )
    team_series = team_series.cast(pl.List(pl.Int8))
    doc_series = _lists(ids, docs)
    frame = pl.DataFrame(
        {
            "impression_id": impression_ids,
            "experiment_id": pl.repeat(spec.experiment_id, n, eager=True),
            "experiment_version": pl.repeat(spec.version, n, dtype=pl.Int32, eager=True),
            "unit_id": unit_ids,
            "query_id": ids.gather(queries),
            "design": pl.repeat(str(spec.design), n, eager=True),
            "treatment": treatment,
            "rankers": rankers,
            "lists": _nested(ids, lists),
            "doc_ids": doc_series,
            "teams": team_series,
            "ts": ts,
            "page_start": pl.repeat(0, n, dtype=pl.Int32, eager=True),
            "seed": pl.repeat(seed, n, dtype=pl.UInt64, eager=True),
            "excluded": pl.repeat(None, n, dtype=pl.String, eager=True),
        },
        schema=IMPRESSION_SCHEMA,
    )
    if (docs < 0).any():  # a short page: drop the teams of its empty slots
        frame = frame.with_columns(pl.col("teams").list.head(pl.col("doc_ids").list.len()))
    write_frame(out, Kind.IMPRESSIONS, frame)
    rows, pos = np.nonzero(clicks)
    click_frame = pl.DataFrame(
        {
            "click_id": pl.select(
                pl.format("{}/{}", impression_ids.gather(rows), pl.Series(pos))
            ).to_series(),
            "impression_id": impression_ids.gather(rows),
            "experiment_id": pl.repeat(spec.experiment_id, len(rows), eager=True),
            "experiment_version": pl.repeat(spec.version, len(rows), dtype=pl.Int32, eager=True),
            "unit_id": unit_ids.gather(rows),
            "position": pl.Series(pos.astype(np.int16)),
            "doc_id": ids.gather(docs[rows, pos]),
            "ts": pl.Series(ts_us[rows] + (pos.astype(np.int64) + 1) * 2_000_000)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
        },
        schema=CLICK_SCHEMA,
    )
    write_frame(out, Kind.CLICKS, click_frame)
    first = (
        pl.DataFrame({"unit_id": unit_ids, "treatment": treatment, "ts": ts})
        .group_by("unit_id", maintain_order=True)
        .agg(pl.col("treatment").first(), pl.col("ts").min())
    )
    assignments = first.select(
        experiment_id=pl.lit(spec.experiment_id),
        experiment_version=pl.lit(spec.version, dtype=pl.Int32),
        unit_id="unit_id",
        treatment="treatment",
        ts="ts",
    )
    write_frame(out, Kind.ASSIGNMENTS, assignments.cast(dict(ASSIGNMENT_SCHEMA)))  # type: ignore[arg-type]


def _arms(spec: ExperimentSpec, unit_ids: tuple[str, ...]) -> IntArray:
    """A/B arm of each unit: blake2b(salt, unit) as a uniform number against the weights."""
    edges = np.cumsum(np.asarray(spec.weights, dtype=np.float64))
    edges /= edges[-1]
    u = (
        np.array([interleave.seed_for(spec.salt, unit, "") for unit in unit_ids], dtype=np.float64)
        / 2.0**64
    )
    return np.minimum(np.searchsorted(edges, u, side="right"), len(edges) - 1).astype(np.int64)


def run_ab(
    world: World,
    spec: ExperimentSpec,
    population: Population,
    out: Path,
    *,
    rng: np.random.Generator,
    batch_users: int = 50_000,
    progress: Progress | None = None,
) -> int:
    """Simulate an A/B test: each user sees one arm's ranker. Returns impressions written."""
    if spec.design is not Design.AB:
        raise ValueError("spec must be an A/B experiment")
    append_experiment(out, spec)
    arms = _arms(spec, population.unit_ids)
    tables = [world.tables[name] for name in spec.rankers]
    names = pl.Series(spec.rankers)
    written = 0
    for lo in range(0, len(population), batch_users):
        hi = min(len(population), lo + batch_users)
        users, counts = _units(population, lo, hi)
        qpos = rng.integers(0, len(world.pool), size=len(users))
        arm = arms[users]
        lists = np.empty((len(users), world.k), dtype=np.int64)
        for a, table in enumerate(tables):
            mask = arm == a
            lists[mask] = table[qpos[mask], : world.k]
        queries = world.pool[qpos]
        grades = world.labels.grades(queries, lists)
        clicks = world.model.sample(grades, rng, population.propensity[users])
        treatment = names.gather(arm)
        _write_batch(
            out,
            spec,
            world,
            first_index=written,
            unit_ids=pl.Series(population.unit_ids).gather(users),
            queries=queries,
            treatment=treatment,
            rankers=pl.select(pl.concat_list(treatment)).to_series(),
            lists=lists[:, None, :],
            docs=lists,
            teams=np.zeros(lists.shape, dtype=np.int8),
            clicks=clicks,
            ts_us=_timestamps(rng, users, counts, world.days),
            seed=0,
        )
        written += len(users)
        if progress is not None:
            progress(len(users))
    return written


def run_interleaving(
    world: World,
    spec: ExperimentSpec,
    population: Population,
    out: Path,
    *,
    rng: np.random.Generator,
    batch_users: int = 50_000,
    progress: Progress | None = None,
) -> int:
    """Simulate an interleaving experiment: every page merges the rankers' lists by the
    experiment's method; clicks are credited later, by the analysis. Returns impressions."""
    if spec.design is not Design.INTERLEAVING or spec.method is None:
        raise ValueError("spec must be an interleaving experiment")
    append_experiment(out, spec)
    method = interleave.get(spec.method, **dict(spec.options))
    tables = np.stack([world.tables[name] for name in spec.rankers])  # (r, pool, depth)
    rankers = pl.Series([list(spec.rankers)], dtype=pl.List(pl.String))
    written = 0
    for batch, lo in enumerate(range(0, len(population), batch_users)):
        hi = min(len(population), lo + batch_users)
        users, counts = _units(population, lo, hi)
        qpos = rng.integers(0, len(world.pool), size=len(users))
        lists = tables[:, qpos, :]
        seed = interleave.seed_for(spec.salt, "batch", str(batch))
        rng_pages = interleave.rng_from_seed(seed, spec.seed_scheme)
        pages = method.interleave_batch(lists, k=world.k, rng=rng_pages)
        queries = world.pool[qpos]
        grades = world.labels.grades(queries, pages.docs)
        clicks = world.model.sample(grades, rng, population.propensity[users])
        n = len(users)
        _write_batch(
            out,
            spec,
            world,
            first_index=written,
            unit_ids=pl.Series(population.unit_ids).gather(users),
            queries=queries,
            treatment=pl.repeat(spec.method, n, eager=True),
            rankers=rankers.gather(np.zeros(n, dtype=np.int64)),
            lists=np.ascontiguousarray(pages.lists.transpose(1, 0, 2)),
            docs=pages.docs,
            teams=pages.teams,
            clicks=clicks,
            ts_us=_timestamps(rng, users, counts, world.days),
            seed=seed,
        )
        written += n
        if progress is not None:
            progress(n)
    return written
