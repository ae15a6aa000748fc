"""The event log: a group-committed append-only journal, compacted to Parquet without loss.

Served events (assignments, impressions, clicks: the records of `analysis.schema`) are first
appended to a journal in ``LOGDIR/journal/``, one checksummed line per record::

    <crc32 of the rest, 8 hex digits> <kind> <the record as JSON>\\n

`Journal.append` hands records to one writer thread and returns a future that completes only
after the records are written, flushed and fsynced: a request is acknowledged after that.
The writer drains every append queued while it was busy into one write and one fsync (group
commit), so many concurrent requests share each fsync and throughput holds. `append_async`
is the same for a caller on an event loop: its waiters are woken by one call into the loop
per group commit, not one per append.

The journal is split into numbered segments. `compact` moves sealed segments into Parquet
parts of the `analysis.schema` layout (``LOGDIR/{assignments,impressions,clicks}/``) with
`analysis.schema.write_frame` (atomic), then deletes the segments. An intent file naming the
segments is written (fsynced) first; if a crash interrupts compaction, the next compaction
sees the intent and drops every record whose key (assignment: experiment, version, unit;
impression id; click id) is already in Parquet, so no event is lost or written twice.

Recovery (`Journal.open`) treats every segment left by an earlier process as sealed. A line
without its newline or with a bad checksum at the end of a segment is a write torn by a crash
(never acknowledged, since acknowledgement waits for the fsync): it is dropped and counted,
never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from analysis.schema import Assignment, Click, Impression, Kind, scan, to_frame, write_frame
from serving.errors import JournalError

__all__ = [
    "CompactionReport",
    "Journal",
    "JournalStats",
    "Record",
    "SegmentRead",
    "compact",
    "decode_line",
    "encode_record",
    "iter_records",
    "journal_dir",
    "read_segment",
    "record_key",
]

logger = logging.getLogger(__name__)

Record = Assignment | Impression | Click

_KIND_OF: Final[dict[type, Kind]] = {
    Assignment: Kind.ASSIGNMENTS,
    Impression: Kind.IMPRESSIONS,
    Click: Kind.CLICKS,
}
_DECODERS: Final[dict[bytes, Callable[[bytes], Record]]] = {
    Kind.ASSIGNMENTS.value.encode(): msgspec.json.Decoder(Assignment).decode,
    Kind.IMPRESSIONS.value.encode(): msgspec.json.Decoder(Impression).decode,
    Kind.CLICKS.value.encode(): msgspec.json.Decoder(Click).decode,
}
_ENCODER: Final = msgspec.json.Encoder()
_SEGMENT_GLOB: Final = "segment-*.jsonl"
_INTENT: Final = "compaction.intent"
_KEYS: Final[dict[Kind, tuple[str, ...]]] = {
    Kind.ASSIGNMENTS: ("experiment_id", "experiment_version", "unit_id"),
    Kind.IMPRESSIONS: ("impression_id",),
    Kind.CLICKS: ("click_id",),
}


def journal_dir(logdir: str | os.PathLike[str]) -> Path:
    """The journal folder of a log directory."""
    return Path(logdir) / "journal"


def encode_record(record: Record) -> bytes:
    """One journal line for `record`, newline included."""
    body = _KIND_OF[type(record)].value.encode() + b" " + _ENCODER.encode(record)
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_line(line: bytes) -> Record | None:
    """The record of one journal line (without its newline), or None if it is corrupt."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
    except ValueError:
        return None
    kind, _, payload = body.partition(b" ")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return None
    try:
        record = decoder(payload)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    return record


def record_key(record: Record) -> tuple[Kind, tuple[str | int, ...]]:
    """The record's kind and its identity within that kind (what compaction deduplicates on)."""
    if isinstance(record, Assignment):
        key: tuple[str | int, ...] = (
            record.experiment_id,
            record.experiment_version,
            record.unit_id,
        )
        return Kind.ASSIGNMENTS, key
    if isinstance(record, Impression):
        return Kind.IMPRESSIONS, (record.impression_id,)
    return Kind.CLICKS, (record.click_id,)


@dataclass(frozen=True, slots=True)
class SegmentRead:
    """The records of one segment and what had to be skipped.

    Attributes:
        records: The intact records, in write order.
        torn: 1 if the last line was torn by a crash (dropped), else 0.
        corrupt: Lines before the last that failed their checksum (dropped, logged).
    """

    records: tuple[Record, ...]
    torn: int
    corrupt: int


def read_segment(path: str | os.PathLike[str]) -> SegmentRead:
    """Read a journal segment, dropping a torn last line and any corrupt line."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" after a final newline; otherwise a line torn mid-write
    torn = 1 if tail else 0
    records: list[Record] = []
    corrupt = 0
    for number, line in enumerate(lines):
        record = decode_line(line)
        if record is not None:
            records.append(record)
        elif number == len(lines) - 1 and not torn:
            torn = 1  # the last whole line can be torn too, if a crash cut a multi-line write
        else:
            corrupt += 1
            logger.warning("%s: line %d fails its checksum; dropped", path, number + 1)
    return SegmentRead(tuple(records), torn, corrupt)


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Counters of a journal since it was opened.

    Attributes:
        commits: Group commits (one write and one fsync each).
        records: Records committed.
        bytes: Bytes committed.
        fsync_seconds: Total time spent in fsync.
    """

    commits: int
    records: int
    bytes: int
    fsync_seconds: float


class _Append:
    __slots__ = ("count", "future", "lines", "loop", "waiter")

    def __init__(
        self, lines: bytes, count: int, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.lines = lines
        self.count = count
        self.loop = loop
        self.future: Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        if loop is None:
            self.future = Future()
        else:
            self.waiter = loop.create_future()


def _settle(ops: Sequence[_Append], error: str | None) -> None:
    """Complete the appends' futures (`error`: fail each with a JournalError of that message),
    waking each event loop once for all of its waiters."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for op in ops:
        if op.future is not None:
            if error is None:
                op.future.set_result(None)
            else:
                op.future.set_exception(JournalError(error))
        elif op.loop is not None and op.waiter is not None:
            by_loop.setdefault(op.loop, []).append(op.waiter)
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_wake, waiters, error)


def _wake(waiters: Sequence[asyncio.Future[None]], error: str | None) -> None:
    for waiter in waiters:
        if waiter.done():  # its request was cancelled
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(JournalError(error))


class _Rotate:
    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[Path | None] = Future()


_STOP: Final = object()


class Journal:
    """The append-only journal of one log directory, written by one thread.

    Use `open` (recover what an earlier process left), then `append` from any thread, `rotate`
    before compacting, and `close` when done. Not for several processes at once: the service
    locks the log directory.
    """

    def __init__(self, logdir: str | os.PathLike[str], *, fsync: bool = True) -> None:
        """Prepare a journal under `logdir`/journal (nothing is opened yet)."""
        self._dir = journal_dir(logdir)
        self._fsync = fsync
        self._queue: queue.SimpleQueue[_Append | _Rotate | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._file: Path | None = None
        self._number = 0
        self._pending_records = 0
        self._broken: BaseException | None = None
        self._commits = 0
        self._records = 0
        self._bytes = 0
        self._fsync_seconds = 0.0

    @property
    def directory(self) -> Path:
        """The journal folder."""
        return self._dir

    @property
    def stats(self) -> JournalStats:
        """Counters since `open`."""
        return JournalStats(self._commits, self._records, self._bytes, self._fsync_seconds)

    @property
    def uncompacted_records(self) -> int:
        """Records appended to the active segment since it was opened."""
        return self._pending_records

    def segments(self) -> tuple[Path, ...]:
        """Every segment on disk, oldest first (the active one last, while open)."""
        return tuple(sorted(self._dir.glob(_SEGMENT_GLOB), key=_segment_number))

    def sealed(self) -> tuple[Path, ...]:
        """The segments no longer written to, oldest first."""
        return tuple(p for p in self.segments() if p != self._file)

    def open(self) -> None:
        """Seal what an earlier process left, start a fresh segment and the writer thread.

        Raises:
            JournalError: The folder cannot be created or written.
        """
        if self._thread is not None:
            raise RuntimeError("the journal is already open")
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            existing = self.segments()
            self._number = (_segment_number(existing[-1]) + 1) if existing else 1
            self._file = self._new_segment(self._number)
        except OSError as error:
            raise JournalError(f"cannot open the journal in {self._dir}: {error}") from error
        self._thread = threading.Thread(target=self._run, name="braid-journal", daemon=True)
        self._thread.start()

    def append(self, records: Sequence[Record]) -> Future[None]:
        """Queue records; the future completes once they are durable (or fails with JournalError).

        Raises:
            JournalError: The journal is closed or an earlier write failed.
        """
        if self._thread is None:
            raise JournalError("the journal is not open")
        if self._broken is not None:
            raise JournalError(f"the journal failed earlier: {self._broken}")
        op = _Append(b"".join(encode_record(r) for r in records), len(records))
        self._queue.put(op)
        assert op.future is not None
        return op.future

    def append_async(self, records: Sequence[Record]) -> asyncio.Future[None]:
        """`append` for a caller on a running event loop: the returned future (of that loop)
        completes once the records are durable, or fails with JournalError.

        Raises:
            JournalError: The journal is closed or an earlier write failed.
        """
        if self._thread is None:
            raise JournalError("the journal is not open")
        if self._broken is not None:
            raise JournalError(f"the journal failed earlier: {self._broken}")
        loop = asyncio.get_running_loop()
        op = _Append(b"".join(encode_record(r) for r in records), len(records), loop)
        self._queue.put(op)
        assert op.waiter is not None
        return op.waiter

    def rotate(self) -> Future[Path | None]:
        """Seal the active segment (after every append queued before) and start a new one.

        The future gives the sealed segment, or None if it was empty (then nothing changes).
        """
        if self._thread is None:
            raise JournalError("the journal is not open")
        op = _Rotate()
        self._queue.put(op)
        return op.future

    def close(self) -> None:
        """Commit what is queued and stop the writer thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def _new_segment(self, number: int) -> Path:
        path = self._dir / f"segment-{number:08d}.jsonl"
        with open(path, "xb"):
            pass
        _fsync_dir(self._dir)
        return path

    def _run(self) -> None:
        assert self._file is not None
        handle = open(self._file, "ab", buffering=0)  # noqa: SIM115 (lives as long as the thread)
        try:
            while True:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                pending: list[_Append] = []
                for op in batch:
                    if op is _STOP:
                        stop = True
                    elif isinstance(op, _Append):
                        pending.append(op)
                    elif isinstance(op, _Rotate):
                        self._commit(handle, pending)
                        pending = []
                        handle = self._rotate(handle, op)
                self._commit(handle, pending)
                if stop:
                    return
        finally:
            handle.close()

    def _commit(self, handle: io.FileIO, ops: list[_Append]) -> None:
        if not ops:
            return
        if self._broken is not None:
            _settle(ops, f"the journal failed earlier: {self._broken}")
            return
        data = b"".join(op.lines for op in ops)
        try:
            view = memoryview(data)
            while view:
                written = handle.write(view)
                view = view[written:]
            if self._fsync:
                started = time.perf_counter()
                os.fdatasync(handle.fileno())
                self._fsync_seconds += time.perf_counter() - started
        except OSError as error:
            # After a failed fsync the file's state is unknown: refuse everything from now on.
            self._broken = error
            logger.error("journal write failed, refusing further events: %s", error)
            _settle(ops, f"the event log cannot be written: {error}")
            return
        count = sum(op.count for op in ops)
        self._commits += 1
        self._records += count
        self._bytes += len(data)
        self._pending_records += count
        _settle(ops, None)

    def _rotate(self, handle: io.FileIO, op: _Rotate) -> io.FileIO:
        assert self._file is not None
        if self._pending_records == 0 or self._broken is not None:
            op.future.set_result(None)
            return handle
        try:
            sealed = self._file
            following = self._new_segment(self._number + 1)
        except OSError as error:
            op.future.set_exception(JournalError(f"cannot start a journal segment: {error}"))
            return handle
        handle.close()
        self._number += 1
        self._file = following
        self._pending_records = 0
        op.future.set_result(sealed)
        return open(following, "ab", buffering=0)


def _segment_number(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What one `compact` did.

    Attributes:
        segments: Segments compacted (and deleted).
        written: Records written to Parquet, by kind.
        skipped: Records already in Parquet (a crashed compaction's leftovers), by kind.
        torn: Torn last lines dropped.
        corrupt: Corrupt lines dropped.
        resumed: Whether an interrupted compaction was finished.
    """

    segments: int
    written: dict[str, int]
    skipped: dict[str, int]
    torn: int
    corrupt: int
    resumed: bool


def compact(
    logdir: str | os.PathLike[str], segments: Sequence[Path] | None = None
) -> CompactionReport:
    """Move sealed journal segments into Parquet parts of `logdir`, then delete them.

    Args:
        logdir: The log directory.
        segments: The sealed segments to compact, oldest first; None: every segment on disk
            (only when no journal is writing, e.g. at start-up or in tests).

    Returns:
        What was moved.
    """
    logdir = Path(logdir)
    folder = journal_dir(logdir)
    intent = folder / _INTENT
    resumed = intent.exists()
    listed: list[Path] = []
    if resumed:
        names = [n for n in intent.read_text(encoding="utf-8").splitlines() if n.strip()]
        listed = [folder / n for n in names if (folder / n).exists()]
    chosen = (
        list(segments)
        if segments is not None
        else sorted(folder.glob(_SEGMENT_GLOB), key=_segment_number)
    )
    todo = list(dict.fromkeys([*listed, *chosen]))
    if not todo:
        intent.unlink(missing_ok=True)
        return CompactionReport(0, {}, {}, 0, 0, resumed)
    if not resumed:
        _write_synced(intent, "".join(f"{p.name}\n" for p in todo))
    reads = [read_segment(p) for p in todo]
    by_kind: dict[Kind, list[Record]] = {kind: [] for kind in Kind}
    for read in reads:
        for record in read.records:
            by_kind[record_key(record)[0]].append(record)
    written: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for kind, records in by_kind.items():
        unique = _unique(records)
        if resumed and unique:
            present = _present_keys(logdir, kind, unique)
            kept = [r for r in unique if record_key(r)[1] not in present]
            skipped[str(kind)] = len(unique) - len(kept)
            unique = kept
        if unique:
            write_frame(logdir, kind, to_frame(unique))  # type: ignore[arg-type]
        written[str(kind)] = len(unique)
    for path in todo:
        path.unlink(missing_ok=True)
    _fsync_dir(folder)
    intent.unlink(missing_ok=True)
    _fsync_dir(folder)
    return CompactionReport(
        segments=len(todo),
        written=written,
        skipped=skipped,
        torn=sum(r.torn for r in reads),
        corrupt=sum(r.corrupt for r in reads),
        resumed=resumed,
    )


def _unique(records: Iterable[Record]) -> list[Record]:
    seen: set[tuple[str | int, ...]] = set()
    out: list[Record] = []
    for record in records:
        key = record_key(record)[1]
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


def _present_keys(
    logdir: Path, kind: Kind, records: Sequence[Record]
) -> set[tuple[str | int, ...]]:
    columns = _KEYS[kind]
    probe = columns[-1]  # the unit id of an assignment, the id of the others
    wanted = list({str(record_key(r)[1][-1]) for r in records})
    frame = scan(logdir, kind).select(columns).filter(pl.col(probe).is_in(wanted)).collect()
    return {tuple(row) for row in frame.iter_rows()}


def _write_synced(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def iter_records(paths: Iterable[Path]) -> Iterator[Record]:
    """Every intact record of the given segments, in order."""
    for path in paths:
        yield from read_segment(path).records
