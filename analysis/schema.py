"""The log schema: one definition shared by serving, simulations and analysis.

Serving and the simulator write the same records, so every report works on either's logs.
A log directory holds::

    LOGDIR/experiments.jsonl        one ExperimentSpec per line: what was designed
    LOGDIR/assignments/*.parquet    one Assignment per (experiment, version, unit)
    LOGDIR/impressions/*.parquet    one Impression per page shown
    LOGDIR/clicks/*.parquet         one Click per click on a shown position
    LOGDIR/qrels.parquet            optional relevance judgments (query_id, doc_id, grade):
                                    the simulator writes its known truth here
    LOGDIR/journal/segment-*.jsonl  a server's events not yet compacted into the folders
                                    above (not read here: `uncompacted_segments` counts them)

Each record is a frozen `msgspec.Struct` (built in a tenth of the time of a frozen dataclass,
and untracked by the garbage collector: a server holds many) with its polars schema beside
it. Large producers (the simulator) build polars frames directly and check them with
`validate`; small producers (the server) build records and convert them with `to_frame`.
Readers use `scan`, a lazy scan that streams: nothing here loads a whole log.

Conventions:
    * Timestamps are timezone-aware UTC.
    * `Impression.teams[i]` is the index into `Impression.rankers` of the ranker credited for
      position i, or None for a neutral position (a common prefix, or an A/B page, whose
      teams are all the arm's ranker index 0).
    * `Click.position` indexes `Impression.doc_ids` (0-based); the rank a user saw is
      `Impression.page_start + Click.position + 1`.
    * `Impression.lists` holds each ranker's ranked list as the page drew from it (to that depth,
      without repeats), so credit rules that need the inputs can be applied, and pages audited.
    * `Impression.seed` regenerates an interleaved page: `interleave.rng_from_seed(seed,
      spec.seed_scheme)`, with the spec of the impression's experiment version, its method and
      the impression's input lists, gives the same page again.
    * `Impression.excluded` is None for impressions that count, or a short reason
      (e.g. "ranker_failed:lite2") for impressions left out of analysis.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

import interleave

__all__ = [
    "ASSIGNMENT_SCHEMA",
    "CLICK_SCHEMA",
    "IMPRESSION_SCHEMA",
    "JOURNAL_SEGMENTS",
    "QRELS_SCHEMA",
    "SCHEMAS",
    "Assignment",
    "Click",
    "Design",
    "ExperimentSpec",
    "Impression",
    "Kind",
    "append_experiment",
    "frame_from_json_lines",
    "journal_dir",
    "read_experiments",
    "scan",
    "to_frame",
    "uncompacted_segments",
    "validate",
    "write_frame",
]

TIMESTAMP: Final = pl.Datetime("us", "UTC")
JOURNAL_SEGMENTS: Final = "segment-*.jsonl"
"""The names of a journal's segments, in `journal_dir` (the server writes them)."""


class Design(StrEnum):
    """How an experiment compares rankers."""

    AB = "ab"
    INTERLEAVING = "interleaving"


class Kind(StrEnum):
    """The three kinds of log record, named as their folders."""

    ASSIGNMENTS = "assignments"
    IMPRESSIONS = "impressions"
    CLICKS = "clicks"


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("ts must be timezone-aware")
    return ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """What an experiment version was designed to do.

    For an A/B test, `rankers` are the arms and `weights` their designed traffic shares (used by
    the sample-ratio-mismatch check). For interleaving, `rankers` are the merged rankers in team
    order, `method` the interleaving method and `weights` is empty.
    """

    experiment_id: str
    version: int
    salt: str
    design: Design
    rankers: tuple[str, ...]
    weights: tuple[float, ...] = ()
    method: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seed_scheme: str = interleave.SEED_SCHEME

    def __post_init__(self) -> None:
        if self.design is Design.AB and len(self.weights) != len(self.rankers):
            raise ValueError("weights must give one share per A/B arm")
        if self.seed_scheme not in interleave.SEED_SCHEMES:
            raise ValueError(
                f"unknown seed scheme {self.seed_scheme!r}; known: "
                f"{', '.join(interleave.SEED_SCHEMES)}"
            )
        if self.design is Design.INTERLEAVING and not self.method:
            raise ValueError("method is required for an interleaving experiment")

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["design"] = str(self.design)
        data["started_at"] = _utc(self.started_at).isoformat()
        data["options"] = dict(self.options)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ExperimentSpec:
        data = json.loads(line)
        return cls(
            experiment_id=data["experiment_id"],
            version=int(data["version"]),
            salt=data["salt"],
            design=Design(data["design"]),
            rankers=tuple(data["rankers"]),
            weights=tuple(float(w) for w in data.get("weights", ())),
            method=data.get("method"),
            options=dict(data.get("options", {})),
            started_at=datetime.fromisoformat(data["started_at"]),
            # Specs logged before the scheme was recorded used numpy's SeedSequence.
            seed_scheme=data.get("seed_scheme", interleave.LEGACY_SEED_SCHEME),
        )


class Assignment(msgspec.Struct, frozen=True, gc=False):
    """A unit entered an experiment version's treatment (logged once per unit and version)."""

    experiment_id: str
    experiment_version: int
    unit_id: str
    treatment: str
    ts: datetime


class Impression(msgspec.Struct, frozen=True, gc=False):
    """One page of results shown to a unit."""

    impression_id: str
    experiment_id: str
    experiment_version: int
    unit_id: str
    query_id: str
    design: Design
    treatment: str
    rankers: tuple[str, ...]
    lists: tuple[tuple[str, ...], ...]
    doc_ids: tuple[str, ...]
    teams: tuple[int | None, ...]
    ts: datetime
    page_start: int = 0
    seed: int = 0
    excluded: str | None = None

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.teams):
            raise ValueError("teams must give one entry per doc_ids position")
        if len(self.lists) != len(self.rankers):
            raise ValueError("lists must give one ranked list per ranker")


class Click(msgspec.Struct, frozen=True, gc=False):
    """A click on a shown position; `click_id` is the client's event id (idempotency key)."""

    click_id: str
    impression_id: str
    experiment_id: str
    experiment_version: int
    unit_id: str
    position: int
    doc_id: str
    ts: datetime


ASSIGNMENT_SCHEMA: Final = pl.Schema(
    {
        "experiment_id": pl.String(),
        "experiment_version": pl.Int32(),
        "unit_id": pl.String(),
        "treatment": pl.String(),
        "ts": TIMESTAMP,
    }
)

IMPRESSION_SCHEMA: Final = pl.Schema(
    {
        "impression_id": pl.String(),
        "experiment_id": pl.String(),
        "experiment_version": pl.Int32(),
        "unit_id": pl.String(),
        "query_id": pl.String(),
        "design": pl.String(),
        "treatment": pl.String(),
        "rankers": pl.List(pl.String()),
        "lists": pl.List(pl.List(pl.String())),
        "doc_ids": pl.List(pl.String()),
        "teams": pl.List(pl.Int8()),
        "ts": TIMESTAMP,
        "page_start": pl.Int32(),
        "seed": pl.UInt64(),
        "excluded": pl.String(),
    }
)

CLICK_SCHEMA: Final = pl.Schema(
    {
        "click_id": pl.String(),
        "impression_id": pl.String(),
        "experiment_id": pl.String(),
        "experiment_version": pl.Int32(),
        "unit_id": pl.String(),
        "position": pl.Int16(),
        "doc_id": pl.String(),
        "ts": TIMESTAMP,
    }
)

QRELS_SCHEMA: Final = pl.Schema(
    {"query_id": pl.String(), "doc_id": pl.String(), "grade": pl.Int8()}
)

SCHEMAS: Final[Mapping[Kind, pl.Schema]] = {
    Kind.ASSIGNMENTS: ASSIGNMENT_SCHEMA,
    Kind.IMPRESSIONS: IMPRESSION_SCHEMA,
    Kind.CLICKS: CLICK_SCHEMA,
}

_RECORD_KIND: Final[Mapping[type, Kind]] = {
    Assignment: Kind.ASSIGNMENTS,
    Impression: Kind.IMPRESSIONS,
    Click: Kind.CLICKS,
}


def _plain(value: Any) -> Any:
    """numpy scalars (a seed as np.uint64, a team as np.int8) as the Python values they hold."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise NotImplementedError(f"cannot log a {type(value).__name__}")


_LINES: Final = msgspec.json.Encoder(enc_hook=_plain)
_TS_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.f%#z"  # RFC 3339 as msgspec writes it
_READABLE: Final[Mapping[pl.DataType, pl.DataType]] = {
    # What polars's JSON reader can parse into (not small integers), cast to the schema after.
    pl.Int8(): pl.Int64(),
    pl.Int16(): pl.Int64(),
    pl.List(pl.Int8()): pl.List(pl.Int64()),
    TIMESTAMP: pl.String(),
}


def to_frame(
    records: Sequence[Assignment] | Sequence[Impression] | Sequence[Click],
) -> pl.DataFrame:
    """Turn records of one kind into a frame in that kind's schema.

    The records go through newline-delimited JSON (msgspec writes it, polars reads it into the
    schema): eight times faster than building the frame from Python rows, where polars makes
    a Series for every nested list.
    """
    if not records:
        raise ValueError("records must not be empty (the kind is taken from the first record)")
    kind = _RECORD_KIND[type(records[0])]
    if any(_RECORD_KIND.get(type(r)) is not kind for r in records):
        raise TypeError("records must all be of one kind")
    offsets = [record.ts.utcoffset() for record in records]
    if any(offset is None for offset in offsets):
        raise ValueError("ts must be timezone-aware")
    if any(offset.seconds % 60 or offset.microseconds for offset in offsets if offset):
        # RFC 3339 offsets are whole minutes: move such timestamps to UTC first.
        records = [msgspec.structs.replace(r, ts=r.ts.astimezone(UTC)) for r in records]  # type: ignore[assignment]
    return frame_from_json_lines(kind, _LINES.encode_lines(records))


def frame_from_json_lines(kind: Kind, lines: bytes) -> pl.DataFrame:
    """A frame in `kind`'s schema from newline-delimited JSON records, as msgspec encodes the
    records of that kind (timestamps in RFC 3339: offsets in whole minutes).

    What `to_frame` does after encoding, and how the server's journal is compacted: its lines
    are already this JSON.
    """
    schema = SCHEMAS[kind]
    raw = pl.read_ndjson(
        io.BytesIO(lines),
        schema={name: _READABLE.get(dtype, dtype) for name, dtype in schema.items()},
    )
    ts = pl.col("ts").str.to_datetime(_TS_FORMAT, time_unit="us", time_zone="UTC")
    return raw.with_columns(ts).cast(schema)


def validate(frame: pl.DataFrame | pl.LazyFrame, kind: Kind) -> None:
    """Raise ValueError unless `frame` has exactly the columns and dtypes of `kind`."""
    got = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    want = SCHEMAS[kind]
    if got != want:
        missing = [c for c in want if c not in got]
        extra = [c for c in got if c not in want]
        wrong = [c for c in want if c in got and got[c] != want[c]]
        raise ValueError(
            f"frame does not match the {kind} schema: missing={missing} extra={extra} "
            f"wrong_dtype={wrong}"
        )


def write_frame(logdir: str | os.PathLike[str], kind: Kind, frame: pl.DataFrame) -> Path:
    """Write `frame` as a new Parquet part of `kind` under `logdir`, atomically and durably.

    The part is written to a temporary name, fsynced, then renamed, so a reader never sees a
    half-written file and a crash leaves either the whole part or none of it.
    """
    validate(frame, kind)
    folder = Path(logdir) / str(kind)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{name}.tmp"
    frame.write_parquet(tmp, statistics=True)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    final = folder / name
    os.replace(tmp, final)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def scan(logdir: str | os.PathLike[str], kind: Kind) -> pl.LazyFrame:
    """Lazily scan every Parquet part of `kind` under `logdir` (an empty frame if there is none).

    Raises:
        PermissionError: The folder of parts cannot be read.
        polars.exceptions.ComputeError: A part is empty (0 bytes).
    """
    folder = Path(logdir) / str(kind)
    if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):  # a glob sees nothing
        raise PermissionError(f"{folder} cannot be read")
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        return pl.LazyFrame(schema=SCHEMAS[kind])
    for part in parts:  # a glob scan skips an empty file without a word: its rows are lost
        if part.stat().st_size == 0:
            raise pl.exceptions.ComputeError(f"{part} is empty (0 bytes): not a Parquet part")
    return pl.scan_parquet(folder / "part-*.parquet", schema=SCHEMAS[kind])


def journal_dir(logdir: str | os.PathLike[str]) -> Path:
    """The folder of a log directory where a server journals events before compacting them."""
    return Path(logdir) / "journal"


def uncompacted_segments(logdir: str | os.PathLike[str]) -> int:
    """How many journal segments of `logdir` hold events not yet compacted to Parquet (the
    events a report cannot see yet). A segment is written ahead with zeros, so one holds
    events when its first byte is not zero: every journal line starts with its checksum."""
    held = 0
    for path in journal_dir(logdir).glob(JOURNAL_SEGMENTS):
        try:
            with open(path, "rb") as fh:
                first = fh.read(1)
        except OSError:  # compacted and removed meanwhile
            continue
        held += first not in (b"", b"\0")
    return held


def append_experiment(logdir: str | os.PathLike[str], spec: ExperimentSpec) -> None:
    """Append `spec` to `logdir/experiments.jsonl`, durably."""
    path = Path(logdir) / "experiments.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(spec.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_experiments(logdir: str | os.PathLike[str]) -> tuple[ExperimentSpec, ...]:
    """Every experiment version designed in `logdir`, in the order they were written."""
    path = Path(logdir) / "experiments.jsonl"
    if not path.exists():
        return ()
    lines: Iterable[str] = path.read_text(encoding="utf-8").splitlines()
    return tuple(ExperimentSpec.from_json(line) for line in lines if line.strip())
