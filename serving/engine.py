"""The experiment engine: which experiment, version and treatment serve a unit.

State is a list of experiments, each with its current version and, while running, the
intervals of its layer it owns (see `serving.assignment`). Every change is an event (a plain
JSON-able mapping) handed to `persist` before it takes effect, and replaying the events
rebuilds the same state, so a restarted server assigns every unit exactly as before:

* ``define``: a new experiment, or a new version of one (new design: rankers, weights, method
  or options; a new version always gets a new salt), or new serving settings (page size).
* ``run``: the experiment serves its layer's units that fall in the given intervals.
* ``stop``: it serves nobody; its intervals are free for other experiments.

* ``configured``: the configuration file's entry for an experiment, as last applied.

`reconcile` applies a configuration at start-up. An entry that is unchanged since it was last
applied changes nothing, so what the API changed (weights, page size, a stop) survives a
restart. A new or edited entry is applied as the desired state: unknown experiments are
created, a changed design (rankers, weights, method, options) makes a new version, changed
settings are updated, and the experiment is started or stopped as the entry says.

A search is served by one experiment: the unit's experiment in the first layer (in order of
first definition) that has one. Only that experiment logs the unit's assignment (exposure
logging), so each layer's assignment counts stay comparable between its arms.

The engine is not thread-safe; the service uses it from its event loop only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import interleave
from analysis.schema import Design, ExperimentSpec
from serving.assignment import Interval, allocate, choose_arm, unit_point
from serving.config import ExperimentConfig, check_experiment
from serving.errors import ConfigError, ConflictError, UnknownExperimentError

__all__ = [
    "INTERLEAVED",
    "Engine",
    "ExperimentState",
    "Route",
    "config_from_json",
    "config_to_json",
]

INTERLEAVED = "interleaved"
"""The treatment name of every unit of an interleaving experiment."""

_ROUTES = 1 << 16
"""Units whose route the engine keeps (emptied when full)."""


@dataclass(frozen=True, slots=True)
class ExperimentState:
    """An experiment's current version and whether, and where, it runs.

    Attributes:
        config: The current design and serving settings.
        spec: The current version, as written to ``experiments.jsonl``.
        running: Whether it serves units.
        intervals: The parts of its layer it owns while running.
        history: Every version so far, oldest first (`spec` last).
    """

    config: ExperimentConfig
    spec: ExperimentSpec
    running: bool
    intervals: tuple[Interval, ...]
    history: tuple[ExperimentSpec, ...]

    @property
    def id(self) -> str:
        """The experiment id."""
        return self.config.id

    @property
    def version(self) -> int:
        """The current version."""
        return self.spec.version

    def owns(self, point: float) -> bool:
        """Whether a unit at `point` of the layer is in this experiment."""
        for low, high in self.intervals:  # noqa: SIM110 (no generator per new unit)
            if low <= point < high:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Route:
    """How one unit's search is served.

    Attributes:
        experiment: The serving experiment, or None (then `rankers` is the default ranker).
        treatment: The arm's ranker (A/B), `INTERLEAVED`, or the default ranker.
        rankers: The rankers to run: the arm's, every interleaved one, or the default.
    """

    experiment: ExperimentState | None
    treatment: str
    rankers: tuple[str, ...]


def config_to_json(config: ExperimentConfig) -> dict[str, Any]:
    """An experiment config as a JSON-able mapping (for events and the API)."""
    return {
        "id": config.id,
        "design": str(config.design),
        "rankers": list(config.rankers),
        "weights": list(config.weights),
        "method": config.method,
        "options": dict(config.options),
        "layer": config.layer,
        "traffic": config.traffic,
        "page_size": config.page_size,
        "salt": config.salt,
        "running": config.running,
    }


def config_from_json(data: Mapping[str, Any]) -> ExperimentConfig:
    """The inverse of `config_to_json`."""
    return ExperimentConfig(
        id=str(data["id"]),
        design=Design(data["design"]),
        rankers=tuple(data["rankers"]),
        weights=tuple(float(w) for w in data.get("weights", ())),
        method=data.get("method"),
        options=MappingProxyType(dict(data.get("options", {}))),
        layer=str(data.get("layer", "main")),
        traffic=float(data.get("traffic", 1.0)),
        page_size=int(data.get("page_size", 10)),
        salt=data.get("salt"),
        running=bool(data.get("running", True)),
    )


def _same_design(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    def shares(weights: Sequence[float]) -> tuple[float, ...]:
        total = math.fsum(weights) or 1.0
        return tuple(round(w / total, 12) for w in weights)

    return (
        a.design == b.design
        and a.rankers == b.rankers
        and shares(a.weights) == shares(b.weights)
        and a.method == b.method
        and dict(a.options) == dict(b.options)
    )


class Engine:
    """Experiments, their versions and layers; decides every unit's route."""

    __slots__ = (
        "_configured",
        "_default",
        "_layers",
        "_on_version",
        "_persist",
        "_rankers",
        "_routes",
        "_shared",
        "_states",
    )

    def __init__(
        self,
        rankers: Collection[str],
        default_ranker: str,
        *,
        events: Iterable[Mapping[str, Any]] = (),
        persist: Callable[[Mapping[str, Any]], None] | None = None,
        on_version: Callable[[ExperimentSpec], None] | None = None,
    ) -> None:
        """Rebuild the state from `events`.

        Args:
            rankers: The names of the rankers that exist.
            default_ranker: Serves units that are in no experiment.
            events: Earlier events, oldest first (what `persist` received before).
            persist: Called with each new event before it takes effect; it must make the
                event durable (raising stops the change).
            on_version: Called with each new experiment version (to log its spec).
        """
        self._rankers = frozenset(rankers)
        if default_ranker not in self._rankers:
            raise ConfigError(f"default ranker {default_ranker!r} is not a ranker")
        self._default = default_ranker
        self._states: dict[str, ExperimentState] = {}
        self._layers: dict[str, list[str]] = {}
        self._configured: dict[str, ExperimentConfig] = {}
        self._persist = persist
        self._on_version = on_version
        self._routes: dict[str, Route] = {}  # by unit id; emptied by every change
        self._shared: dict[tuple[str, str], Route] = {}  # one per treatment; emptied likewise
        for event in events:
            self._apply(event)

    # -- reading ---------------------------------------------------------------------------

    def experiments(self) -> tuple[ExperimentState, ...]:
        """Every experiment, in order of definition."""
        return tuple(self._states.values())

    def get(self, experiment_id: str) -> ExperimentState:
        """One experiment.

        Raises:
            UnknownExperimentError: No experiment has that id.
        """
        try:
            return self._states[experiment_id]
        except KeyError:
            raise UnknownExperimentError(f"no experiment {experiment_id!r}") from None

    def route(self, unit_id: str) -> Route:
        """How `unit_id`'s searches are served now.

        Routes are kept per unit until the experiments change (a unit searches many times;
        hashing it into every layer costs a search microseconds), at most `_ROUTES` of them.
        """
        route = self._routes.get(unit_id)
        if route is None:
            if len(self._routes) >= _ROUTES:
                self._routes.clear()
            route = self._routes[unit_id] = self._route(unit_id)
        return route

    def _route(self, unit_id: str) -> Route:
        for layer, members in self._layers.items():
            point = unit_point(layer, unit_id)
            for experiment_id in members:
                state = self._states[experiment_id]
                if state.running and state.owns(point):
                    return self._treat(state, unit_id)
        return self._shared_route(None, self._default, (self._default,))

    def _treat(self, state: ExperimentState, unit_id: str) -> Route:
        config = state.config
        if config.design is Design.INTERLEAVING:
            return self._shared_route(state, INTERLEAVED, config.rankers)
        arm = config.rankers[choose_arm(config.weights, unit_point(state.spec.salt, unit_id))]
        return self._shared_route(state, arm, (arm,))

    def _shared_route(
        self, state: ExperimentState | None, treatment: str, rankers: tuple[str, ...]
    ) -> Route:
        """The one `Route` of a treatment, shared by its units (made once, not per unit)."""
        key = ("" if state is None else state.id, treatment)
        route = self._shared.get(key)
        if route is None:
            route = self._shared[key] = Route(state, treatment, rankers)
        return route

    # -- changing ---------------------------------------------------------------------------

    def reconcile(self, configs: Sequence[ExperimentConfig]) -> None:
        """Apply the configured experiments (see the module docstring).

        Raises:
            ConfigError: An entry is invalid.
            ConflictError: A layer has not enough free traffic for an entry.
        """
        for config in configs:
            if self._configured.get(config.id) == config:
                continue
            state = self._states.get(config.id)
            if state is None:
                self.create(config)
            else:
                if state.running and not config.running:
                    self.stop(config.id)
                state = self._states[config.id]
                wanted = replace(config, running=state.running)
                if not _same_design(state.config, wanted):
                    self._define(wanted, state.version + 1)
                elif wanted != state.config:
                    self._update_settings(state, wanted)
                if config.running:
                    self.start(config.id)
            self._emit({"event": "configured", "config": config_to_json(config)})

    def create(self, config: ExperimentConfig) -> ExperimentState:
        """Define a new experiment (version 1) and run it if `config.running`.

        Raises:
            ConfigError: It names unknown rankers or methods, or its shape is wrong.
            ConflictError: The id is taken, or its layer has not enough free traffic.
        """
        if config.id in self._states:
            raise ConflictError(f"an experiment {config.id!r} exists already")
        check_experiment(config, self._rankers)
        intervals = self._allocate(config) if config.running else ()
        self._define(config, 1)
        if config.running:
            self._emit({"event": "run", "id": config.id, "intervals": intervals})
        return self._states[config.id]

    def start(self, experiment_id: str) -> ExperimentState:
        """Run a stopped experiment (a no-op if it runs).

        Raises:
            UnknownExperimentError: No experiment has that id.
            ConflictError: Its layer has not enough free traffic.
        """
        state = self.get(experiment_id)
        if not state.running:
            intervals = self._allocate(state.config)
            self._emit({"event": "run", "id": experiment_id, "intervals": intervals})
        return self._states[experiment_id]

    def stop(self, experiment_id: str) -> ExperimentState:
        """Stop an experiment (a no-op if it is stopped).

        Raises:
            UnknownExperimentError: No experiment has that id.
        """
        state = self.get(experiment_id)
        if state.running:
            self._emit({"event": "stop", "id": experiment_id})
        return self._states[experiment_id]

    def update(
        self,
        experiment_id: str,
        *,
        weights: Sequence[float] | None = None,
        traffic: float | None = None,
        page_size: int | None = None,
    ) -> ExperimentState:
        """Change an experiment. New weights make a new version with a new salt.

        Raises:
            UnknownExperimentError: No experiment has that id.
            ConfigError: The new values are invalid.
            ConflictError: The layer has not enough free traffic for the new share.
        """
        state = self.get(experiment_id)
        config = state.config
        if weights is not None:
            config = replace(config, weights=tuple(float(w) for w in weights))
        if traffic is not None:
            config = replace(config, traffic=float(traffic))
        if page_size is not None:
            config = replace(config, page_size=int(page_size))
        check_experiment(config, self._rankers)
        if not _same_design(state.config, config):
            intervals = self._reallocate(state, config)
            self._define(config, state.version + 1)
            if intervals is not None:
                self._emit({"event": "run", "id": config.id, "intervals": intervals})
        elif config != state.config:
            self._update_settings(state, config)
        return self._states[experiment_id]

    def _update_settings(self, state: ExperimentState, config: ExperimentConfig) -> None:
        intervals = self._reallocate(state, config)
        self._emit(
            {
                "event": "define",
                "config": config_to_json(config),
                "version": state.version,
                "salt": state.spec.salt,
                "started_at": state.spec.started_at.isoformat(),
                "seed_scheme": state.spec.seed_scheme,
            }
        )
        if intervals is not None:
            self._emit({"event": "run", "id": config.id, "intervals": intervals})

    def _reallocate(
        self, state: ExperimentState, config: ExperimentConfig
    ) -> tuple[Interval, ...] | None:
        """New intervals if the share or layer changed while running, else None."""
        if not state.running or (
            config.traffic == state.config.traffic and config.layer == state.config.layer
        ):
            return None
        return self._allocate(config, ignore=config.id)

    def _define(self, config: ExperimentConfig, version: int) -> None:
        base = config.salt or config.id
        salt = base if version == 1 else f"{base}#v{version}"
        started = datetime.now(UTC)
        spec = _spec(config, version, salt, started)
        if self._on_version is not None:
            self._on_version(spec)
        self._emit(
            {
                "event": "define",
                "config": config_to_json(config),
                "version": version,
                "salt": salt,
                "started_at": started.isoformat(),
                "seed_scheme": spec.seed_scheme,
            }
        )

    def _allocate(
        self, config: ExperimentConfig, *, ignore: str | None = None
    ) -> tuple[Interval, ...]:
        taken = [
            interval
            for other in self._states.values()
            if other.running and other.config.layer == config.layer and other.id != ignore
            for interval in other.intervals
        ]
        got = allocate(taken, config.traffic)
        if got is None:
            free = 1.0 - sum(high - low for low, high in taken)
            raise ConflictError(
                f"layer {config.layer!r} has {max(free, 0.0):.3g} of its traffic free, "
                f"experiment {config.id!r} needs {config.traffic:g}: stop another first"
            )
        return got

    def _emit(self, event: Mapping[str, Any]) -> None:
        if self._persist is not None:
            self._persist(event)
        self._apply(event)

    def _apply(self, event: Mapping[str, Any]) -> None:
        self._routes.clear()
        self._shared.clear()
        kind = event["event"]
        if kind == "define":
            config = config_from_json(event["config"])
            version = int(event["version"])
            started = datetime.fromisoformat(event["started_at"])
            # A version defined before seed schemes were recorded drafts as it always did.
            scheme = str(event.get("seed_scheme", interleave.LEGACY_SEED_SCHEME))
            spec = _spec(config, version, str(event["salt"]), started, scheme)
            old = self._states.get(config.id)
            history = () if old is None else old.history
            if not history or history[-1].version != version:
                history = (*history, spec)
            running = False if old is None else old.running
            intervals: tuple[Interval, ...] = () if old is None else old.intervals
            if old is not None and old.config.layer != config.layer:
                self._layers[old.config.layer].remove(config.id)
                running, intervals = False, ()
            members = self._layers.setdefault(config.layer, [])
            if config.id not in members:
                members.append(config.id)
            self._states[config.id] = ExperimentState(
                config=replace(config, running=running),
                spec=history[-1] if history[-1].version == version else spec,
                running=running,
                intervals=intervals,
                history=history,
            )
        elif kind == "run":
            state = self._states[event["id"]]
            intervals = tuple((float(low), float(high)) for low, high in event["intervals"])
            self._states[state.id] = replace(
                state, running=True, intervals=intervals, config=replace(state.config, running=True)
            )
        elif kind == "configured":
            config = config_from_json(event["config"])
            self._configured[config.id] = config
        elif kind == "stop":
            state = self._states[event["id"]]
            self._states[state.id] = replace(
                state, running=False, intervals=(), config=replace(state.config, running=False)
            )
        else:
            raise ValueError(f"unknown engine event {kind!r}")


def _spec(
    config: ExperimentConfig,
    version: int,
    salt: str,
    started: datetime,
    seed_scheme: str = interleave.SEED_SCHEME,
) -> ExperimentSpec:
    return ExperimentSpec(
        experiment_id=config.id,
        version=version,
        salt=salt,
        design=config.design,
        rankers=config.rankers,
        weights=config.weights if config.design is Design.AB else (),
        method=config.method if config.design is Design.INTERLEAVING else None,
        options=dict(config.options),
        started_at=started,
        seed_scheme=seed_scheme,
    )
