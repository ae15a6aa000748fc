"""The simulator writes the shared schema, pages regenerate from their seeds, and the science
holds: A/A experiments reject at the nominal rate, and balanced interleaving's bias shows up
where it should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import interleave
from analysis.outcomes import interleaving_outcomes
from analysis.preference import clustered_t_test, sign_test
from analysis.schema import Design, ExperimentSpec, Kind, read_experiments, scan, validate
from rankers.corpus import Corpus
from simulations import click_models
from simulations.experiment import World, run_ab, run_interleaving
from simulations.population import make_population
from simulations.relevance import Labels


def toy_world(n_items: int = 60, k: int = 6, depth: int = 8, seed: int = 0) -> World:
    """A synthetic corpus: 30 concepts in two styles; the good ranker lists the query's twin
    and relatives first, the bad one shuffles."""
    rng = np.random.default_rng(seed)
    concepts = tuple(f"c{i // 2}" for i in range(n_items))
    styles = tuple("google" if i % 2 == 0 else "twitter" for i in range(n_items))
    subcategories = tuple(f"s{i // 8}" for i in range(n_items))
    corpus = Corpus.from_arrays(
        "toy",
        ids=tuple(f"{styles[i]}/{concepts[i]}" for i in range(n_items)),
        images=rng.integers(0, 255, (n_items, 4, 4, 3), dtype=np.uint8),
        styles=styles,
        concepts=concepts,
        subcategories=subcategories,
    )
    labels = Labels.of(corpus)
    pool = np.arange(0, n_items, 2, dtype=np.int64)
    good = np.empty((len(pool), depth), dtype=np.int64)
    bad = np.empty((len(pool), depth), dtype=np.int64)
    for i, q in enumerate(pool):
        others = np.array([d for d in range(n_items) if d != q])
        grade = labels.grades(np.array([q]), others[None, :])[0]
        order = np.lexsort((rng.random(len(others)), -grade))
        good[i] = others[order[:depth]]
        bad[i] = rng.permutation(others)[:depth]
    model = click_models.get("pbm")
    return World(corpus, labels, pool, {"good": good, "bad": bad}, model, k, days=7)


def test_logs_match_the_schema_and_regenerate(tmp_path: Path) -> None:
    world = toy_world()
    rng = np.random.default_rng(1)
    spec = ExperimentSpec(
        "td", 1, "salt", Design.INTERLEAVING, ("good", "bad"), method="team_draft"
    )
    population = make_population(300, rng=rng, prefix="u")
    n = run_interleaving(world, spec, population, tmp_path, rng=rng, batch_users=100)
    assert n == population.impressions
    ab = ExperimentSpec("ab", 1, "s2", Design.AB, ("good", "bad"), (0.5, 0.5))
    run_ab(world, ab, make_population(300, rng=rng, prefix="v"), tmp_path, rng=rng)
    assert [s.experiment_id for s in read_experiments(tmp_path)] == ["td", "ab"]
    for kind in Kind:
        validate(scan(tmp_path, kind), kind)
    imps = scan(tmp_path, Kind.IMPRESSIONS).filter(pl.col("experiment_id") == "td").collect()
    assert imps.height == n
    assignments = scan(tmp_path, Kind.ASSIGNMENTS).collect()
    assert assignments.group_by("experiment_id", "unit_id").len()["len"].max() == 1
    # every click names a shown position and the document shown there
    clicks = (
        scan(tmp_path, Kind.CLICKS)
        .collect()
        .join(scan(tmp_path, Kind.IMPRESSIONS).collect(), on="impression_id")
    )
    shown = clicks.select(pl.col("doc_ids").list.get(pl.col("position")) == pl.col("doc_id"))
    assert shown.to_series().all()
    # pages regenerate: each batch's logged lists, in log order, with its seed
    method = interleave.get("team_draft")
    ids = {d: i for i, d in enumerate(world.corpus.ids)}
    parts = imps.partition_by("seed", maintain_order=True)
    assert len(parts) == 3
    for part in parts:
        lists = np.array(
            [[[ids[d] for d in lst] for lst in row] for row in part["lists"].to_list()]
        ).transpose(1, 0, 2)
        again = method.interleave_batch(
            lists, k=world.k, rng=interleave.rng_from_seed(part["seed"][0])
        )
        docs = [[world.corpus.ids[d] for d in row] for row in again.docs]
        assert docs == part["doc_ids"].to_list()
        assert again.teams.tolist() == part["teams"].to_list()


def test_better_ranker_wins_in_both_designs(tmp_path: Path) -> None:
    world = toy_world()
    rng = np.random.default_rng(2)
    spec = ExperimentSpec(
        "td", 1, "salt", Design.INTERLEAVING, ("good", "bad"), method="team_draft"
    )
    run_interleaving(world, spec, make_population(600, rng=rng), tmp_path, rng=rng)
    outcome = interleaving_outcomes(tmp_path, spec)
    assert outcome["outcome"].mean() > 0.1


@pytest.mark.parametrize("method", ["team_draft", "team_draft_multileave"])
def test_aa_false_positive_rate(method: str) -> None:
    """The same ranker on both sides: the clustered t-test rejects at about alpha = 0.05."""
    world = toy_world()
    rng = np.random.default_rng(3)
    table = world.tables["good"]
    m = interleave.get(method)
    experiments, users, alpha = 400, 150, 0.05
    rejections_t = rejections_sign = 0
    for _ in range(experiments):
        population = make_population(users, rng=rng, mean_queries=3)
        user = np.repeat(np.arange(users), population.queries)
        qpos = rng.integers(0, len(world.pool), size=len(user))
        lists = np.stack([table[qpos], table[qpos]])
        pages = m.interleave_batch(lists, k=world.k, rng=rng)
        grades = world.labels.grades(world.pool[qpos], pages.docs)
        clicks = world.model.sample(grades, rng, population.propensity[user])
        outcome = m.credit_batch(pages, clicks).outcome
        impressions = np.bincount(user, minlength=users)
        total = np.bincount(user, weights=outcome, minlength=users)
        rejections_t += clustered_t_test(impressions, total).p_value < alpha
        wins, losses = int((outcome > 0).sum()), int((outcome < 0).sum())
        rejections_sign += sign_test(wins, losses) < alpha
    tolerance = 3.5 * np.sqrt(alpha * (1 - alpha) / experiments)
    assert abs(rejections_t / experiments - alpha) < tolerance
    # identical lists make team-draft's credit a coin flip per click: the sign test is exact too
    assert abs(rejections_sign / experiments - alpha) < tolerance


def test_balanced_bias_shows_up_where_it_should() -> None:
    """B is A rotated by one position (A = 1, 2, ..., B = 2, ..., 1); no document is more
    relevant than another, so the rankers are equally good. Balanced interleaving still
    prefers B; team-draft does not."""
    rng = np.random.default_rng(4)
    n, depth, k = 20_000, 6, 6
    base = np.argsort(rng.random((n, 30)), axis=1)[:, :depth]
    lists = np.stack([base, np.roll(base, -1, axis=1)])
    model = click_models.get("pbm")
    grades = np.ones((n, k), dtype=np.int64)
    outcomes = {}
    for name in ("balanced", "team_draft"):
        m = interleave.get(name)
        pages = m.interleave_batch(lists, k=k, rng=rng)
        clicks = model.sample(grades, rng)
        outcomes[name] = m.credit_batch(pages, clicks).outcome
    se = 4 / np.sqrt(n)
    assert outcomes["balanced"].mean() < -se  # B wins though it is no better
    assert abs(outcomes["team_draft"].mean()) < se
