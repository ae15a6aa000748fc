"""The service's configuration: a TOML file read into frozen dataclasses, validated up front.

With no file, `load_config` returns the embedded defaults (``serving/defaults.toml``): the
bundled emoji corpus, two real rankers (effnet-lite0 and effnet-lite2) and one running
team-draft interleaving experiment between them. A file looks like::

    [server]
    host = "127.0.0.1"
    port = 8000
    log_dir = "logs/served"      # relative paths are relative to the working directory
    admin_token = "..."          # or the environment variable BRAID_ADMIN_TOKEN (which wins)

    [corpus]
    name = "emoji"               # a registered corpus, or: path = "some/corpus-folder"

    [limits]
    max_upload_bytes = 10485760  # larger uploads get 413
    max_pixels = 25000000        # larger images are refused as decompression bombs
    ranker_timeout = 2.0         # seconds; a slower ranker counts as failed
    max_upload_wait = 1.0        # seconds (default: half the timeout); longer waits get 503
    max_page = 5                 # deepest result page served
    ranking_cache = 50000        # rankers' lists of corpus-id queries kept (LRU; 0: none)
    drafted_pages = 20000        # pages kept by lists and coins, and encoded (0: none)

    [log]
    compact_seconds = 60.0       # compact the journal to Parquet this often,
    compact_records = 50000      # or sooner, once it holds this many records
    sync_timeout = 10.0          # seconds; an fsync process slower to answer is replaced

    [rankers.lite0]
    model = "effnet-lite0"       # an embedding ranker over the corpus index
    [rankers.order]
    kind = "static"              # fixed rankings (tests, drills): corpus order,
    seed = 3                     # shuffled by `seed` if given

    [[experiments]]
    id = "lite0-vs-lite2"
    design = "interleaving"      # or "ab" (then `weights` give each arm's share)
    method = "team_draft"        # any name from interleave.names(), with [experiments.options]
    rankers = ["lite0", "lite2"]
    layer = "main"               # a unit is in at most one experiment per layer
    traffic = 1.0                # the experiment's share of its layer's units
    page_size = 12

Every unknown key is an error (a typo never passes silently).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import interleave
from analysis.schema import Design
from serving.errors import ConfigError

__all__ = [
    "ADMIN_TOKEN_ENV",
    "Config",
    "CorpusConfig",
    "ExperimentConfig",
    "Limits",
    "LogConfig",
    "RankerConfig",
    "check_experiment",
    "default_config",
    "load_config",
    "parse_config",
]

ADMIN_TOKEN_ENV: Final = "BRAID_ADMIN_TOKEN"
"""The environment variable holding the bearer token of the admin endpoints."""

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: "$" passes a final "\n"
RankerKind = Literal["embedding", "static"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on requests and on the work one request may cause.

    Attributes:
        max_upload_bytes: Largest accepted upload; a larger one is refused with 413 while it
            is being read.
        max_pixels: Largest decoded image (width x height): guards against decompression bombs.
        ranker_timeout: Seconds a ranker may take before it counts as failed.
        max_upload_wait: Seconds an upload may be expected to wait for its embeddings (the
            uploads in flight times the models' recent seconds per image); a longer wait is
            refused with 503 and Retry-After before any work, not queued to time out. At most
            `ranker_timeout`; left out (None), half of it. Both are checked on construction,
            in Python as from a file: positive and finite, and in that order.
        max_page: Deepest result page served (pages are 1-based).
        batch_size: Most uploads one ranker call embeds at once (micro-batching).
        batch_wait_ms: How long the first upload of a batch waits for others to join it.
        live_impressions: Recent impressions held in memory to validate clicks.
        cached_queries: Recent queries (and their rankers' lists) held for later pages.
        ranking_cache: Most rankers' lists of corpus-id queries kept, least recently used
            evicted first (0: none); see `serving.caching`.
        drafted_pages: Most interleaved pages of corpus-image queries each experiment version
            keeps by the lists and the coins that drafted them (`serving.pages.PageMemo`),
            and most pages' results kept encoded; the least recently used dropped first,
            about 2 KB a page (0: none).
    """

    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 25_000_000
    ranker_timeout: float = 2.0
    max_upload_wait: float | None = None
    max_page: int = 5
    batch_size: int = 4
    batch_wait_ms: float = 2.0
    live_impressions: int = 200_000
    cached_queries: int = 10_000
    ranking_cache: int = 50_000
    drafted_pages: int = 20_000

    def __post_init__(self) -> None:
        timeout = _positive(self.ranker_timeout, "limits.ranker_timeout")
        if self.max_upload_wait is None:
            return
        if _positive(self.max_upload_wait, "limits.max_upload_wait") > timeout:
            raise ConfigError(
                f"limits.max_upload_wait ({self.max_upload_wait:g} s) must not exceed "
                f"limits.ranker_timeout ({self.ranker_timeout:g} s): uploads admitted to wait "
                "longer would time out"
            )

    @property
    def upload_wait(self) -> float:
        """The longest expected wait an upload is admitted with: `max_upload_wait`, or half
        of `ranker_timeout` when it is left out."""
        return self.ranker_timeout / 2 if self.max_upload_wait is None else self.max_upload_wait


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Where and how events are logged.

    Attributes:
        directory: The log directory (the layout of `analysis.schema`).
        compact_seconds: How often the journal is compacted to Parquet.
        compact_records: Compact sooner once the journal holds this many records.
        fsync: Make each commit durable before acknowledging it (turn off only in benchmarks
            of everything else).
        sync_timeout: Seconds an fsync may take before the journal's fsync process is taken
            for lost (killed and replaced; the requests waiting on that fsync get 503).
    """

    directory: Path = Path("logs/served")
    compact_seconds: float = 60.0
    compact_records: int = 50_000
    fsync: bool = True
    sync_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class CorpusConfig:
    """The corpus served: a registered corpus by `name`, or a corpus folder at `path`."""

    name: str | None = "emoji"
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class RankerConfig:
    """One ranker.

    Attributes:
        name: The ranker's name in experiments and logs.
        kind: "embedding" (a model over the corpus index) or "static" (fixed rankings).
        model: The embedding model (`rankers.models.names()`).
        index: The index folder; defaults to the shared cache. Built if missing or stale.
        threads: CPU threads for the model (default: the CPUs available, at most 4), run as
            that many one-thread onnxruntime sessions, each embedding a share of a batch (each
            session holds its own copy of the model in memory).
        seed: For a static ranker, shuffle corpus order by this seed (None: corpus order).
        rankings: For a static ranker, ids to put first for some query ids.
        image_ranking: For a static ranker, ids to put first for every uploaded image.
    """

    name: str
    kind: RankerKind = "embedding"
    model: str | None = None
    index: Path | None = None
    threads: int | None = None
    seed: int | None = None
    rankings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    image_ranking: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """One experiment as designed.

    Attributes:
        id: The experiment id.
        design: A/B (each ranker an arm) or interleaving (the rankers' lists merged).
        rankers: The arms (A/B) or the interleaved rankers in team order.
        weights: Each A/B arm's traffic share (normalised); empty for interleaving.
        method: The interleaving method.
        options: The method's options.
        layer: The layer; a unit is in at most one experiment per layer.
        traffic: The share of the layer's units in the experiment, in (0, 1].
        page_size: Results per page.
        salt: The hash salt of version 1 (default: the id); later versions derive new salts.
        running: Whether it serves traffic.
    """

    id: str
    design: Design
    rankers: tuple[str, ...]
    weights: tuple[float, ...] = ()
    method: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    layer: str = "main"
    traffic: float = 1.0
    page_size: int = 10
    salt: str | None = None
    running: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    """The whole service configuration.

    Attributes:
        host: Address to bind.
        port: Port to bind.
        log: Event log settings.
        corpus: The corpus served.
        rankers: Rankers by name.
        experiments: Experiments in declaration order (earlier layers serve first).
        limits: Request and work bounds.
        admin_token: Bearer token of the admin endpoints; None disables them.
        default_ranker: Serves units that are in no experiment (default: the first ranker).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    log: LogConfig = field(default_factory=LogConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    rankers: Mapping[str, RankerConfig] = field(default_factory=dict)
    experiments: tuple[ExperimentConfig, ...] = ()
    limits: Limits = field(default_factory=Limits)
    admin_token: str | None = None
    default_ranker: str | None = None

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> Config:
        """A copy with command-line overrides applied (None keeps the configured value)."""
        config = self
        if host is not None:  # as strict as the file: "" would listen on every interface
            config = replace(config, host=_str(host, "--host"))
        if port is not None:
            config = replace(config, port=_port(port, "port"))
        if log_dir is not None:
            directory = _str(os.fspath(log_dir), "--log-dir")  # "" is the working directory
            config = replace(config, log=replace(config.log, directory=Path(directory)))
        return config


def default_config() -> Config:
    """The embedded defaults: emoji corpus, effnet-lite0 vs effnet-lite2, one interleaving."""
    text = resources.files("serving").joinpath("defaults.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text), source="embedded defaults")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a TOML configuration file, or the embedded defaults if `path` is None.

    Raises:
        ConfigError: The file cannot be read, is not TOML, or is invalid; the message names
            the file and the key.
    """
    if path is None:
        return default_config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    return parse_config(data, source=str(path))


def parse_config(data: Mapping[str, Any], *, source: str = "config") -> Config:
    """Validate parsed TOML into a `Config`.

    Raises:
        ConfigError: A key is unknown, missing or has a bad value; the message names it.
    """
    try:
        return _parse(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _parse(data: Mapping[str, Any]) -> Config:
    _keys(data, "", {"server", "corpus", "limits", "log", "rankers", "experiments"})
    server = _table(data, "server")
    _keys(server, "server", {"host", "port", "log_dir", "admin_token", "default_ranker"})
    log = _log(_table(data, "log"), server.get("log_dir"))
    corpus = _corpus(_table(data, "corpus"))
    limits = _limits(_table(data, "limits"))
    ranker_tables = _table(data, "rankers")
    if not ranker_tables:
        raise ConfigError("rankers: at least one ranker is required")
    rankers = {name: _ranker(name, _table(ranker_tables, name)) for name in ranker_tables}
    raw_experiments = data.get("experiments", [])
    if not isinstance(raw_experiments, list):
        raise ConfigError("experiments must be an array of tables ([[experiments]])")
    experiments = tuple(
        _experiment(f"experiments[{i}]", item) for i, item in enumerate(raw_experiments)
    )
    seen: set[str] = set()
    for experiment in experiments:
        if experiment.id in seen:
            raise ConfigError(f"experiments: id {experiment.id!r} is used twice")
        seen.add(experiment.id)
        check_experiment(experiment, rankers)
    _check_layers(experiments)
    token = os.environ.get(ADMIN_TOKEN_ENV) or _optional_str(server, "admin_token", "server")
    default_ranker = _optional_str(server, "default_ranker", "server") or next(iter(rankers))
    if default_ranker not in rankers:
        raise ConfigError(f"server.default_ranker: no ranker named {default_ranker!r}")
    return Config(
        host=_str(server.get("host", "127.0.0.1"), "server.host"),
        port=_port(server.get("port", 8000), "server.port"),
        log=log,
        corpus=corpus,
        rankers=MappingProxyType(rankers),
        experiments=experiments,
        limits=limits,
        admin_token=token or None,
        default_ranker=default_ranker,
    )


def check_experiment(experiment: ExperimentConfig, rankers: Collection[str]) -> None:
    """Check an experiment against the rankers that exist (also used when one is created live).

    Raises:
        ConfigError: It names an unknown ranker or method, or its shape is wrong.
    """
    where = f"experiment {experiment.id!r}"
    if not _ID.fullmatch(experiment.id):
        raise ConfigError(
            f"{where}: id must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    unknown = [name for name in experiment.rankers if name not in rankers]
    if unknown:
        raise ConfigError(f"{where}: unknown rankers {unknown} (known: {sorted(rankers)})")
    if len(set(experiment.rankers)) != len(experiment.rankers):
        raise ConfigError(f"{where}: rankers repeat a name")
    if len(experiment.rankers) < 2:
        raise ConfigError(f"{where}: rankers must name at least two rankers")
    if not 0 < experiment.traffic <= 1:
        raise ConfigError(f"{where}: traffic must lie in (0, 1], got {experiment.traffic}")
    if not 1 <= experiment.page_size <= 100:
        raise ConfigError(f"{where}: page_size must lie in 1..100, got {experiment.page_size}")
    if not experiment.layer:
        raise ConfigError(f"{where}: layer must be a non-empty string")
    if experiment.design is Design.AB:
        if experiment.method is not None or experiment.options:
            raise ConfigError(f"{where}: an A/B experiment takes no method or options")
        if len(experiment.weights) != len(experiment.rankers):
            raise ConfigError(f"{where}: weights must give one share per arm")
        if any(not (w > 0 and math.isfinite(w)) for w in experiment.weights):
            raise ConfigError(f"{where}: weights must be positive and finite")
        return
    if experiment.weights:
        raise ConfigError(f"{where}: an interleaving experiment takes no weights")
    if experiment.method is None:
        raise ConfigError(f"{where}: method is required for an interleaving experiment")
    try:
        method = interleave.get(experiment.method, **dict(experiment.options))
    except (interleave.InterleaveError, TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None
    if method.n_rankers is not None and method.n_rankers != len(experiment.rankers):
        raise ConfigError(
            f"{where}: method {experiment.method!r} interleaves exactly {method.n_rankers} "
            f"rankers, got {len(experiment.rankers)}"
        )
    # Options a method accepts may still fail on its first page: draft and credit a small one
    # now (over lists that overlap), rather than fail every search. Small, as this runs on the
    # server's event loop when an experiment is created live.
    lists = [[f"trial-{(r + i) % 9}" for i in range(6)] for r in range(len(experiment.rankers))]
    try:
        page = method.interleave_seeded(lists, k=4, seed=1)
        method.credit(page, range(0, len(page.docs), 2))
    except (ArithmeticError, TypeError, ValueError, interleave.InterleaveError) as error:
        raise ConfigError(f"{where}: its method fails on a trial page: {error}") from None


def _check_layers(experiments: Sequence[ExperimentConfig]) -> None:
    shares: dict[str, float] = {}
    for experiment in experiments:
        if experiment.running:
            shares[experiment.layer] = shares.get(experiment.layer, 0.0) + experiment.traffic
    for layer, share in shares.items():
        if share > 1 + 1e-9:
            raise ConfigError(
                f"layer {layer!r}: running experiments take {share:g} of its traffic, more than 1"
            )


def _log(table: Mapping[str, Any], log_dir: object) -> LogConfig:
    _keys(table, "log", {"compact_seconds", "compact_records", "fsync", "sync_timeout"})
    defaults = LogConfig()
    directory = defaults.directory if log_dir is None else Path(_str(log_dir, "server.log_dir"))
    return LogConfig(
        directory=directory,
        compact_seconds=_positive(
            table.get("compact_seconds", defaults.compact_seconds), "log.compact_seconds"
        ),
        compact_records=_positive_int(
            table.get("compact_records", defaults.compact_records), "log.compact_records"
        ),
        fsync=_bool(table.get("fsync", defaults.fsync), "log.fsync"),
        sync_timeout=_positive(
            table.get("sync_timeout", defaults.sync_timeout), "log.sync_timeout"
        ),
    )


def _corpus(table: Mapping[str, Any]) -> CorpusConfig:
    _keys(table, "corpus", {"name", "path"})
    if "name" in table and "path" in table:
        raise ConfigError("corpus: give name or path, not both")
    if "path" in table:
        return CorpusConfig(name=None, path=Path(_str(table["path"], "corpus.path")))
    return CorpusConfig(name=_str(table.get("name", "emoji"), "corpus.name"))


def _limits(table: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    _keys(table, "limits", set(Limits.__dataclass_fields__))
    return Limits(
        max_upload_bytes=_positive_int(
            table.get("max_upload_bytes", defaults.max_upload_bytes), "limits.max_upload_bytes"
        ),
        max_pixels=_positive_int(table.get("max_pixels", defaults.max_pixels), "limits.max_pixels"),
        ranker_timeout=_positive(
            table.get("ranker_timeout", defaults.ranker_timeout), "limits.ranker_timeout"
        ),
        max_upload_wait=_optional_positive(table.get("max_upload_wait"), "limits.max_upload_wait"),
        max_page=_positive_int(table.get("max_page", defaults.max_page), "limits.max_page"),
        batch_size=_positive_int(table.get("batch_size", defaults.batch_size), "limits.batch_size"),
        batch_wait_ms=_non_negative(
            table.get("batch_wait_ms", defaults.batch_wait_ms), "limits.batch_wait_ms"
        ),
        live_impressions=_positive_int(
            table.get("live_impressions", defaults.live_impressions), "limits.live_impressions"
        ),
        cached_queries=_positive_int(
            table.get("cached_queries", defaults.cached_queries), "limits.cached_queries"
        ),
        ranking_cache=_non_negative_int(
            table.get("ranking_cache", defaults.ranking_cache), "limits.ranking_cache"
        ),
        drafted_pages=_non_negative_int(
            table.get("drafted_pages", defaults.drafted_pages), "limits.drafted_pages"
        ),
    )


def _ranker(name: str, table: Mapping[str, Any]) -> RankerConfig:
    where = f"rankers.{name}"
    if not _ID.fullmatch(name):
        raise ConfigError(f"{where}: a ranker name must be letters, digits, '.', '_' or '-'")
    kind = table.get("kind", "embedding")
    if kind == "embedding":
        _keys(table, where, {"kind", "model", "index", "threads"})
        if "model" not in table:
            raise ConfigError(f"{where}.model is required for an embedding ranker")
        threads = table.get("threads")
        return RankerConfig(
            name=name,
            kind="embedding",
            model=_str(table["model"], f"{where}.model"),
            index=None if "index" not in table else Path(_str(table["index"], f"{where}.index")),
            threads=None if threads is None else _positive_int(threads, f"{where}.threads"),
        )
    if kind == "static":
        _keys(table, where, {"kind", "seed", "rankings", "image_ranking"})
        seed = table.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"{where}.seed must be a non-negative integer")
        rankings = table.get("rankings", {})
        if not isinstance(rankings, Mapping):
            raise ConfigError(f"{where}.rankings must be a table of query id = [ids]")
        return RankerConfig(
            name=name,
            kind="static",
            seed=seed,
            rankings=MappingProxyType(
                {
                    str(query): _str_tuple(ids, f"{where}.rankings.{query}")
                    for query, ids in rankings.items()
                }
            ),
            image_ranking=_str_tuple(table.get("image_ranking", []), f"{where}.image_ranking"),
        )
    raise ConfigError(f"{where}.kind must be 'embedding' or 'static', got {kind!r}")


def _experiment(where: str, table: object) -> ExperimentConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    _keys(
        table,
        where,
        {
            "id",
            "design",
            "rankers",
            "weights",
            "method",
            "options",
            "layer",
            "traffic",
            "page_size",
            "salt",
            "running",
        },
    )
    if "id" not in table:
        raise ConfigError(f"{where}.id is required")
    experiment_id = _str(table["id"], f"{where}.id")
    where = f"experiment {experiment_id!r}"
    try:
        design = Design(table.get("design", "interleaving"))
    except ValueError:
        raise ConfigError(
            f"{where}: design must be 'ab' or 'interleaving', got {table.get('design')!r}"
        ) from None
    rankers = _str_tuple(table.get("rankers", []), f"{where}.rankers")
    weights: tuple[float, ...] = ()
    if "weights" in table:
        weights = _float_tuple(table["weights"], f"{where}.weights")
    elif design is Design.AB:
        weights = (1.0,) * len(rankers)
    method = table.get("method")
    if design is Design.INTERLEAVING and method is None:
        method = "team_draft"
    options = table.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}.options must be a table")
    return ExperimentConfig(
        id=experiment_id,
        design=design,
        rankers=rankers,
        weights=weights,
        method=None if method is None else _str(method, f"{where}.method"),
        options=MappingProxyType(dict(options)),
        layer=_str(table.get("layer", "main"), f"{where}.layer"),
        traffic=_positive(table.get("traffic", 1.0), f"{where}.traffic"),
        page_size=_positive_int(table.get("page_size", 10), f"{where}.page_size"),
        salt=None if "salt" not in table else _str(table["salt"], f"{where}.salt"),
        running=_bool(table.get("running", True), f"{where}.running"),
    )


def _keys(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown keys {unknown} (allowed: {sorted(allowed)})")


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a table")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _optional_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if key not in table else _str(table[key], f"{where}.{key}")


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _positive(value: object, where: str) -> float:
    number = _number(value, where)
    if number <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return number


def _optional_positive(value: object, where: str) -> float | None:
    return None if value is None else _positive(value, where)


def _non_negative(value: object, where: str) -> float:
    number = _number(value, where)
    if number < 0:
        raise ConfigError(f"{where} must be >= 0, got {value!r}")
    return number


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


def _non_negative_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where} must be a non-negative integer, got {value!r}")
    return value


def _port(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{where} must be an integer in 0..65535, got {value!r}")
    return value


def _str_tuple(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be an array of non-empty strings")
    return tuple(value)


def _float_tuple(value: object, where: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be an array of numbers")
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(value))
