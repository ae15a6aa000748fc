"""A simulation scenario: which rankers are compared, by which designs, with how many users.

`simulate` builds the shared `World` (corpus, query pool, every ranker's lists, click model),
writes the known truth (`truth.json`: each ranker's expected gain per query, see
`simulations.relevance`) and the relevance judgments (`qrels.parquet`), then runs for every
pair an A/B test and the interleaving experiments, and for all rankers together a team-draft
multileave.
The first pair is the headline comparison and gets every interleaving method.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import interleave
from analysis.schema import Design, ExperimentSpec
from simulations import click_models
from simulations.experiment import World, run_ab, run_interleaving
from simulations.population import make_population
from simulations.relevance import Labels, true_utility

__all__ = ["Scenario", "SimulationResult", "simulate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to simulate. Ranker names are specs for `simulations.rankings.make_ranker`."""

    pairs: tuple[tuple[str, str], ...] = (
        ("effnet-lite0", "pixels-16"),
        ("effnet-lite2", "effnet-lite2+noise=3"),
        ("effnet-lite0", "effnet-lite2"),
        ("effnet-lite0", "effnet-lite0-int8"),
    )
    methods: tuple[str, ...] = ("team_draft", "balanced", "probabilistic", "optimized")
    other_methods: tuple[str, ...] = ("team_draft", "balanced")
    multileave: bool = True
    users: int = 10_000
    ab_users: int = 60_000
    queries_per_user: float = 5.0
    click_model: str = "dbn"
    click_params: dict[str, object] = field(default_factory=dict)
    k: int = 10
    depth: int = 20
    days: int = 14
    corpus: str = "emoji"
    query_style: str = "google"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("pairs must name at least one pair of rankers")
        for a, b in self.pairs:
            if a == b:
                raise ValueError(f"a pair compares two different rankers, got ({a!r}, {b!r})")
        for name in (*self.methods, *self.other_methods):
            interleave.get(name)  # raises for an unknown method
        if self.users <= 0 or self.ab_users <= 0:
            raise ValueError("users and ab_users must be positive")
        if not 0 < self.k <= self.depth:
            raise ValueError("k must be positive and at most depth")

    @property
    def rankers(self) -> tuple[str, ...]:
        """Every ranker named by the pairs, in order of first mention."""
        return tuple(dict.fromkeys(name for pair in self.pairs for name in pair))

    def experiments(self) -> list[ExperimentSpec]:
        """The experiment versions this scenario runs."""
        specs = []
        for i, (a, b) in enumerate(self.pairs):
            salt = f"sim{self.seed}-pair{i}"
            specs.append(
                ExperimentSpec(f"ab:{a}|{b}", 1, f"{salt}-ab", Design.AB, (a, b), (0.5, 0.5))
            )
            for method in self.methods if i == 0 else self.other_methods:
                specs.append(
                    ExperimentSpec(
                        f"{method}:{a}|{b}",
                        1,
                        f"{salt}-{method}",
                        Design.INTERLEAVING,
                        (a, b),
                        method=method,
                        options=interleave.get(method).options(),
                    )
                )
        if self.multileave and len(self.rankers) > 2:
            specs.append(
                ExperimentSpec(
                    "team_draft_multileave:all",
                    1,
                    f"sim{self.seed}-multileave",
                    Design.INTERLEAVING,
                    self.rankers,
                    method="team_draft_multileave",
                )
            )
        return specs


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What `simulate` wrote."""

    logdir: Path
    experiments: tuple[ExperimentSpec, ...]
    impressions: int
    truth: dict[str, float]
    seconds: float


def simulate(
    scenario: Scenario,
    out: Path,
    *,
    progress: bool = True,
    threads: int | None = None,
) -> SimulationResult:
    """Run every experiment of `scenario` into the empty log directory `out`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TimeRemainingColumn,
    )

    from rankers import corpus as corpora
    from simulations.rankings import make_ranker, ranking_table

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; pick a new log directory")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(scenario.seed)
    corpus = corpora.load(scenario.corpus)
    labels = Labels.of(corpus)
    styles = np.asarray(corpus.styles)
    twins = np.array([len(corpus.twins(i)) > 0 for i in corpus.ids])
    pool = np.flatnonzero((styles == scenario.query_style) & twins).astype(np.int64)
    if len(pool) == 0:
        raise ValueError(f"no {scenario.query_style!r} images with a twin in {scenario.corpus!r}")
    tables = {}
    for name in scenario.rankers:
        ranker = make_ranker(name, corpus, threads=threads)
        tables[name] = ranking_table(ranker, corpus, pool, scenario.depth)
    model = click_models.get(scenario.click_model, **scenario.click_params)
    world = World(corpus, labels, pool, tables, model, scenario.k, scenario.days)
    truth = {name: true_utility(model, labels, pool, tables[name], scenario.k) for name in tables}
    (out / "truth.json").write_text(
        json.dumps(
            {
                "metric": "expected_gain",
                "description": (
                    "expected gain per query (click probability times grade, 2 for the same "
                    "emoji in the other style, 1 for the same subcategory) when the ranker's "
                    f"list is shown alone, under the simulated {scenario.click_model} click "
                    "model, over the whole query pool"
                ),
                "rankers": truth,
            },
            indent=2,
        )
    )
    labels.qrels(corpus, pool).write_parquet(out / "qrels.parquet")
    specs = scenario.experiments()
    total = 0
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    ) as bar:
        for spec in specs:
            users = scenario.ab_users if spec.design is Design.AB else scenario.users
            population = make_population(
                users,
                rng=rng,
                prefix=f"e{specs.index(spec)}-u",
                mean_queries=scenario.queries_per_user,
            )
            task = bar.add_task(spec.experiment_id, total=population.impressions)

            def advance(n: int, task: TaskID = task) -> None:
                bar.advance(task, n)

            run = run_ab if spec.design is Design.AB else run_interleaving
            total += run(world, spec, population, out, rng=rng, progress=advance)
    return SimulationResult(out, tuple(specs), total, truth, time.perf_counter() - started)
