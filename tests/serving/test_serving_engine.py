"""The experiment engine: deterministic assignment, designed weights, exclusive layers,
versioning, and state rebuilt from its events."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any

import pytest
from scipy import stats

from analysis.schema import Design, ExperimentSpec
from serving.assignment import allocate, choose_arm, unit_point
from serving.config import ExperimentConfig
from serving.engine import INTERLEAVED, Engine
from serving.errors import ConfigError, ConflictError, UnknownExperimentError

RANKERS = ("a", "b", "c", "d")
UNITS = [f"unit-{i}" for i in range(20_000)]


def ab(experiment_id: str = "exp", **kwargs: Any) -> ExperimentConfig:
    fields: dict[str, Any] = {
        "id": experiment_id,
        "design": Design.AB,
        "rankers": ("a", "b", "c"),
        "weights": (0.2, 0.3, 0.5),
    }
    fields.update(kwargs)
    return ExperimentConfig(**fields)


def interleaving(experiment_id: str, **kwargs: Any) -> ExperimentConfig:
    fields: dict[str, Any] = {
        "id": experiment_id,
        "design": Design.INTERLEAVING,
        "rankers": ("a", "b"),
        "method": "team_draft",
    }
    fields.update(kwargs)
    return ExperimentConfig(**fields)


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.specs: list[ExperimentSpec] = []

    def engine(self, events: list[dict[str, Any]] | None = None) -> Engine:
        return Engine(
            RANKERS,
            "a",
            events=events or (),
            persist=lambda e: self.events.append(dict(e)),
            on_version=self.specs.append,
        )


def test_unit_point_is_stable_and_salted() -> None:
    assert unit_point("s", "u") == unit_point("s", "u")
    assert unit_point("s", "u") != unit_point("t", "u")
    # Length-prefixed parts: ("ab", "c") and ("a", "bc") differ.
    assert unit_point("ab", "c") != unit_point("a", "bc")
    assert 0 <= unit_point("s", "u") < 1
    # The documented construction: BLAKE2b-64 of length-prefixed UTF-8 parts, over 2**64.
    h = hashlib.blake2b(digest_size=8, person=b"braid.assign")
    for part in (b"salt", b"unit-1"):
        h.update(len(part).to_bytes(8, "little") + part)
    assert unit_point("salt", "unit-1") == int.from_bytes(h.digest(), "little") / 2**64


def test_choose_arm_edges() -> None:
    assert choose_arm((1, 1), 0.0) == 0
    assert choose_arm((1, 1), 0.4999) == 0
    assert choose_arm((1, 1), 0.5) == 1
    assert choose_arm((1, 3), 0.26) == 1
    with pytest.raises(ValueError, match="positive"):
        choose_arm((1, 0), 0.5)
    with pytest.raises(ValueError, match="point"):
        choose_arm((1, 1), 1.0)


def test_assignment_shares_match_the_weights() -> None:
    engine = Recorder().engine()
    engine.create(ab())
    counts = Counter(engine.route(unit).treatment for unit in UNITS)
    weights = {"a": 0.2, "b": 0.3, "c": 0.5}
    observed = [counts[arm] for arm in weights]
    expected = [len(UNITS) * w for w in weights.values()]
    # A fixed set of units gives a fixed split; under a uniform hash its chi-square p-value is
    # uniform, so it is above 0.001 unless the hash or the weights' mapping is broken.
    assert stats.chisquare(observed, expected).pvalue > 0.001
    for arm, w in weights.items():
        sd = math.sqrt(len(UNITS) * w * (1 - w))
        assert abs(counts[arm] - len(UNITS) * w) < 4.5 * sd


def test_assignment_is_deterministic_across_engines() -> None:
    first, second = Recorder().engine(), Recorder().engine()
    first.create(ab())
    second.create(ab())
    for unit in UNITS[:500]:
        assert first.route(unit).treatment == second.route(unit).treatment


def test_layers_are_mutually_exclusive_and_cover_their_traffic() -> None:
    engine = Recorder().engine()
    engine.create(interleaving("x", layer="main", traffic=0.5))
    engine.create(interleaving("y", layer="main", traffic=0.3, rankers=("c", "d")))
    engine.create(ab("z", layer="other", traffic=1.0))
    states = {s.id: s for s in engine.experiments()}
    in_x = in_y = 0
    for unit in UNITS:
        point = unit_point("main", unit)
        members = [e for e in ("x", "y") if states[e].owns(point)]
        assert len(members) <= 1  # at most one experiment per layer
        in_x += members == ["x"]
        in_y += members == ["y"]
        # The other layer is orthogonal: every unit is in z.
        assert states["z"].owns(unit_point("other", unit))
    assert abs(in_x / len(UNITS) - 0.5) < 0.02
    assert abs(in_y / len(UNITS) - 0.3) < 0.02
    # Units of the first layer are served by it; the rest fall through to the next layer.
    routes = Counter(
        engine.route(u).experiment.id  # type: ignore[union-attr]
        for u in UNITS[:2000]
    )
    assert set(routes) == {"x", "y", "z"}
    with pytest.raises(ConflictError, match="traffic free"):
        engine.create(interleaving("w", layer="main", traffic=0.3))
    engine.stop("y")
    engine.create(interleaving("w", layer="main", traffic=0.3))
    assert [s.id for s in engine.experiments() if s.running] == ["x", "z", "w"]


def test_allocate_takes_free_space_lowest_first() -> None:
    assert allocate([], 0.5) == ((0.0, 0.5),)
    assert allocate([(0.0, 0.5)], 0.25) == ((0.5, 0.75),)
    assert allocate([(0.2, 0.4), (0.6, 1.0)], 0.3) == ((0.0, 0.2), (0.4, 0.5))
    assert allocate([(0.0, 0.8)], 0.3) is None


def test_new_weights_make_a_new_version_and_a_new_salt() -> None:
    recorder = Recorder()
    engine = recorder.engine()
    engine.create(ab())
    before = {u: engine.route(u).treatment for u in UNITS[:2000]}
    state = engine.update("exp", weights=(0.5, 0.3, 0.2))
    assert state.version == 2
    assert [s.version for s in state.history] == [1, 2]
    assert state.history[0].salt != state.history[1].salt
    assert [s.version for s in recorder.specs] == [1, 2]
    after = {u: engine.route(u).treatment for u in UNITS[:2000]}
    assert before != after  # re-randomised, openly, under version 2
    # Equivalent weights (same shares) are not a new version.
    assert engine.update("exp", weights=(5, 3, 2)).version == 2
    # Serving settings are not a new version either.
    assert engine.update("exp", page_size=20).version == 2


def test_events_rebuild_the_same_state() -> None:
    recorder = Recorder()
    engine = recorder.engine()
    engine.create(ab(layer="l1", traffic=0.6))
    engine.create(interleaving("i", layer="l1", traffic=0.4))
    engine.update("exp", weights=(1, 1, 1))
    engine.stop("i")
    engine.create(interleaving("j", layer="l1", traffic=0.4, rankers=("b", "c")))
    replayed = Engine(RANKERS, "a", events=recorder.events)
    assert [(s.id, s.version, s.running, s.intervals) for s in replayed.experiments()] == [
        (s.id, s.version, s.running, s.intervals) for s in engine.experiments()
    ]
    for unit in UNITS[:1000]:
        assert replayed.route(unit) == engine.route(unit)


def test_reconcile_keeps_runtime_state_and_versions_design_changes() -> None:
    recorder = Recorder()
    engine = recorder.engine()
    engine.reconcile([ab()])
    engine.stop("exp")
    restarted = recorder.engine(list(recorder.events))
    restarted.reconcile([ab()])
    assert restarted.get("exp").running is False  # stopped through the API: stays stopped
    assert restarted.get("exp").version == 1
    restarted.update("exp", page_size=30)
    again = recorder.engine(list(recorder.events))
    again.reconcile([ab()])  # an unchanged entry leaves the API's changes alone
    assert again.get("exp").config.page_size == 30
    changed = recorder.engine(list(recorder.events))
    changed.reconcile([ab(weights=(1, 1, 2))])  # an edited entry is applied, started as it says
    state = changed.get("exp")
    assert (state.version, state.running, state.config.page_size) == (2, True, 10)
    halted = recorder.engine(list(recorder.events))
    halted.reconcile([ab(weights=(1, 1, 2), running=False)])
    assert halted.get("exp").running is False


def test_interleaving_route_runs_every_ranker() -> None:
    engine = Recorder().engine()
    engine.create(interleaving("i"))
    route = engine.route("someone")
    assert route.treatment == INTERLEAVED
    assert route.rankers == ("a", "b")


def test_no_experiment_routes_to_the_default_ranker() -> None:
    engine = Recorder().engine()
    route = engine.route("someone")
    assert route.experiment is None
    assert route.rankers == ("a",)


def test_engine_errors() -> None:
    engine = Recorder().engine()
    with pytest.raises(UnknownExperimentError):
        engine.get("nope")
    with pytest.raises(ConfigError, match="unknown rankers"):
        engine.create(ab(rankers=("a", "zz", "b")))
    engine.create(ab())
    with pytest.raises(ConflictError, match="exists already"):
        engine.create(ab())
    with pytest.raises(ConfigError, match="weights"):
        engine.update("exp", weights=(1, 1))
    with pytest.raises(ConfigError, match="default ranker"):
        Engine(RANKERS, "nope")


def test_seed_scheme_is_recorded_and_an_old_version_keeps_its_own() -> None:
    recorder = Recorder()
    engine = recorder.engine()
    engine.create(interleaving("i"))
    engine.update("i", page_size=20)  # a settings change re-emits the definition
    assert all(e["seed_scheme"] == "blake2b-pcg64" for e in recorder.events if "salt" in e)
    assert recorder.specs[-1].seed_scheme == "blake2b-pcg64"
    # Events logged before schemes were recorded replay as the scheme they were drafted with.
    old = [{k: v for k, v in e.items() if k != "seed_scheme"} for e in recorder.events]
    (state,) = Engine(RANKERS, "a", events=old).experiments()
    assert state.spec.seed_scheme == "seedsequence-pcg64"
    (state,) = Engine(RANKERS, "a", events=recorder.events).experiments()
    assert state.spec.seed_scheme == "blake2b-pcg64"


def test_kept_routes_follow_every_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving import engine as engine_module

    monkeypatch.setattr(engine_module, "_ROUTES", 50)  # emptied when full: stays bounded
    engine = Recorder().engine()
    engine.create(ab())
    served = {u: engine.route(u) for u in UNITS[:200]}
    assert all(route.experiment is not None for route in served.values())
    assert [engine.route(u) for u in UNITS[:200]] == list(served.values())
    engine.stop("exp")
    assert all(engine.route(u).experiment is None for u in UNITS[:200])
    engine.start("exp")
    again = [engine.route(u) for u in UNITS[:200]]
    assert all(route.experiment is not None for route in again)
    assert [r.treatment for r in again] == [r.treatment for r in served.values()]
    engine.update("exp", weights=(0.1, 0.1, 0.8))  # a new version: the kept routes go
    assert {engine.route(u).experiment.version for u in UNITS[:200]} == {2}  # type: ignore[union-attr]
    assert [engine.route(u).treatment for u in UNITS[:200]] != [r.treatment for r in again]
    fresh = Recorder().engine()  # version 1, nothing kept: the routes version 1 gave
    fresh.create(ab())
    assert [fresh.route(u).treatment for u in UNITS[:200]] == [r.treatment for r in again]
