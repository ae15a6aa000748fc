"""The event log: a group-committed append-only journal, compacted to Parquet without loss.

Served events (assignments, impressions, clicks: the records of `analysis.schema`) are first
appended to a journal in ``LOGDIR/journal/``, one checksummed line per record::

    <crc32 of the rest, 8 hex digits> <kind> <the record as JSON>\\n

`Journal.append` (on the server's event loop) returns a future that completes only after the
records are written and fdatasynced: a request is acknowledged after that. A helper process
(`serving._syncer`) fdatasyncs on request, one fsync at a time. The appends made while one
runs are written by one ``write`` when it ends and share the next (group commit): many
concurrent requests share each write and each fsync, so throughput holds. If the helper is
lost (killed, say), another is started and handed every segment not yet compacted; appends
that waited on a sync the lost one never answered fail (unacknowledged: its fdatasync may
have failed unseen), the others are acknowledged once the new one has synced them. A helper
that does not answer a sync within `sync_timeout` seconds (stopped, or stuck on a disk that
does not answer) counts as lost: it is killed and replaced the same way, so a request never
waits on it for longer; the limit doubles with each such loss in a row, so a long stall does
not add up to four losses a minute. Lost a fourth time within a minute, the journal breaks:
it refuses every append from then on.

Segments are written ahead with zeros, `_ZEROED` bytes at a time, and records overwrite the
zeros: an fdatasync then flushes data only, where an append must also commit the file's new
size to the file system's journal (1.2 to 4 times as long at the median on the disks measured
here; `benchmarks/journal_fsync.py` times both). PostgreSQL pre-zeroes its WAL segments for
the same reason. A run of NUL bytes is unwritten space: readers skip it (a line never holds a
NUL: JSON escapes it).

The journal is split into numbered segments. `compact` moves sealed segments into Parquet
parts of the `analysis.schema` layout (``LOGDIR/{assignments,impressions,clicks}/``) with
`analysis.schema.write_frame` (atomic), then deletes the segments. An intent file naming the
segments is written (fsynced) first; if a crash interrupts compaction, the next compaction
sees the intent and drops every record whose key (assignment: experiment, version, unit;
impression id; click id) is already in Parquet, so no event is lost or written twice.

Recovery (`Journal.open`) treats every segment left by an earlier process as sealed. A line
without its newline or with a bad checksum at the end of a segment, or with zeros inside, is
a write torn by a crash (never acknowledged, since acknowledgement waits for the fsync): it is
dropped and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from analysis.schema import (
    JOURNAL_SEGMENTS,
    SCHEMAS,
    Assignment,
    Click,
    Impression,
    Kind,
    frame_from_json_lines,
    journal_dir,
    scan,
    to_frame,
    write_frame,
)
from serving import _syncer
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
_KINDS: Final[dict[bytes, Kind]] = {kind.value.encode(): kind for kind in Kind}
_PREFIX: Final[dict[type, bytes]] = {kind: f"{name} ".encode() for kind, name in _KIND_OF.items()}
_DECODERS: Final[dict[Kind, Callable[[bytes], Record]]] = {
    Kind.ASSIGNMENTS: msgspec.json.Decoder(Assignment).decode,
    Kind.IMPRESSIONS: msgspec.json.Decoder(Impression).decode,
    Kind.CLICKS: msgspec.json.Decoder(Click).decode,
}
_ENCODER: Final = msgspec.json.Encoder()
_ZEROED: Final = 1024 * 1024
"""Bytes of zeros written ahead of the records at a time (about 600 impressions): the fsync
that flushes them takes about 1 ms here (4 for 4 MiB), once per chunk."""
_RESTARTS: Final = 3
_RESTART_WINDOW: Final = 60.0
"""The journal breaks when its fsync process is lost a `_RESTARTS`th time within this many
seconds: a process that keeps dying is a broken machine, not bad luck."""
_INTENT: Final = "compaction.intent"
_COMPACTION_LOCK: Final = ".compaction.lock"
_NULLABLE: Final = frozenset({"excluded"})  # the only field a record may leave null
_KEYS: Final[dict[Kind, tuple[str, ...]]] = {
    Kind.ASSIGNMENTS: ("experiment_id", "experiment_version", "unit_id"),
    Kind.IMPRESSIONS: ("impression_id",),
    Kind.CLICKS: ("click_id",),
}


def encode_record(record: Record) -> bytes:
    """One journal line for `record`, newline included."""
    body = _PREFIX[type(record)] + _ENCODER.encode(record)
    return b"%08x %b\n" % (zlib.crc32(body), body)


def decode_line(line: bytes) -> Record | None:
    """The record of one journal line (without its newline), or None if it is corrupt."""
    checked = _checked(line)
    if checked is None:
        return None
    try:
        record = _DECODERS[checked[0]](checked[1])
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    return record


def _checked(line: bytes) -> tuple[Kind, bytes] | None:
    """The kind and JSON of one journal line whose checksum holds, or None."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
    except ValueError:
        return None
    name, _, payload = body.partition(b" ")
    kind = _KINDS.get(name)
    return None if kind is None else (kind, payload)


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
        torn: Lines torn by a crash (dropped): the last one, or one with unwritten space
            (zeros) inside; never an acknowledged record.
        corrupt: Lines dropped (and logged) other than torn ones: their checksum fails,
            or it holds but the line is no record.
    """

    records: tuple[Record, ...]
    torn: int
    corrupt: int


def read_segment(path: str | os.PathLike[str]) -> SegmentRead:
    """Read a journal segment, dropping a torn last line and any corrupt line."""
    lines, torn, corrupt = _segment_lines(path)
    records: list[Record] = []
    for kind, payload in lines:
        try:
            records.append(_DECODERS[kind](payload))
        except (msgspec.DecodeError, ValueError, TypeError):
            corrupt += 1  # its checksum holds but not its content: not written by a journal
            logger.warning("%s: a %s line does not decode; dropped", path, kind)
    return SegmentRead(tuple(records), torn, corrupt)


def _segment_lines(path: str | os.PathLike[str]) -> tuple[list[tuple[Kind, bytes]], int, int]:
    """The kind and JSON of each intact line of a segment, the torn lines, the corrupt ones.

    Torn: the last line (cut by a crash), and any line with unwritten space inside (a write
    a crash cut, never acknowledged). Corrupt (logged): other lines failing their checksum.
    """
    # The zeros written ahead of the records are no line; a record written into them and cut
    # by a crash is the torn tail.
    lines = Path(path).read_bytes().rstrip(b"\0").split(b"\n")
    tail = lines.pop().lstrip(b"\0")  # b"" after a final newline; else a line torn mid-write
    torn = 1 if tail else 0
    out: list[tuple[Kind, bytes]] = []
    corrupt = 0
    for number, line in enumerate(lines):
        holed = b"\0" in line
        if line[:1] == b"\0":
            # Unwritten space before a line: a crash kept a later write but not an earlier
            # one, never acknowledged (acknowledgement waits for the fsync covering both).
            line = line.lstrip(b"\0")
            if not line:
                continue
        checked = _checked(line)
        if checked is not None:
            out.append(checked)
        elif number == len(lines) - 1 and not torn:
            torn = 1  # the last whole line can be torn too, if a crash cut a multi-line write
        elif holed:
            torn += 1  # unwritten space in it: a write a crash cut (no line holds a NUL)
        else:
            corrupt += 1
            logger.warning("%s: line %d fails its checksum; dropped", path, number + 1)
    return out, torn, corrupt


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Counters of a journal since it was opened.

    Attributes:
        commits: Group commits (one fdatasync each, covering every write since the last).
        records: Records committed.
        bytes: Bytes committed.
        fsync_seconds: Total time spent in fsync.
        fsync_restarts: Times the fsync process was lost and started again.
    """

    commits: int
    records: int
    bytes: int
    fsync_seconds: float
    fsync_restarts: int = 0


class _Group:
    """Records written by one flush, waiting to be made durable."""

    __slots__ = ("count", "number", "size", "waiters")

    def __init__(self, number: int, waiters: list[asyncio.Future[None]], count: int) -> None:
        self.number = number
        self.waiters = waiters
        self.count = count
        self.size = 0


def _settle(waiters: Iterable[asyncio.Future[None]], error: str | None) -> None:
    """Complete the waiters (`error`: fail each with a JournalError of that message); a
    waiter whose request was cancelled is skipped."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(JournalError(error))


class Journal:
    """The append-only journal of one log directory, written from one event loop.

    `open` it on the loop (it recovers nothing itself: `compact` what an earlier process
    left), `append` records, `rotate` before compacting, and `close` when done. Not for
    several processes at once: the service locks the log directory.

    Appends are written by one ``write`` on the loop's thread (a few microseconds: it only
    reaches the page cache; a second one writes the next zeros when the records reach them)
    at the end of the loop's turn, or, while an fsync runs, when it ends: a sync in flight
    could not cover them anyway, and waiting for it gathers them into one write. Durability
    comes from a helper process (`serving._syncer`) that fdatasyncs the segment on request,
    one request in flight at a time: what is written while one fsync runs shares the next
    (group commit). The process keeps the fsync off this
    interpreter's GIL (see its module).
    """

    def __init__(
        self, logdir: str | os.PathLike[str], *, fsync: bool = True, sync_timeout: float = 10.0
    ) -> None:
        """Prepare a journal under `logdir`/journal (nothing is opened yet).

        Args:
            logdir: The log directory.
            fsync: Make each group durable before acknowledging it.
            sync_timeout: Seconds the fsync process may take to answer a sync before it is
                taken for lost (killed and replaced; the appends the sync covered fail).
        """
        if not sync_timeout > 0:
            raise ValueError(f"sync_timeout must be positive, got {sync_timeout}")
        self._dir = journal_dir(logdir)
        self._fsync = fsync
        self._sync_timeout = sync_timeout
        self._sync_wait = sync_timeout  # the limit for the sync in flight (see _sync_overdue)
        self._overdue: asyncio.TimerHandle | None = None  # fires if the sync in flight hangs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._file: Path | None = None
        self._fd = -1
        self._offset = 0  # where the next write goes in the active segment
        self._zeroed = 0  # the active segment's zeros (written ahead) end here
        self._number = 0
        self._syncer: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        self._unsent: list[int] = []  # segments' descriptors the syncer has not received
        self._closing = False
        self._buffer: list[bytes] = []
        self._buffered: list[asyncio.Future[None]] = []
        self._buffered_records = 0
        self._scheduled = False
        self._written: list[_Group] = []  # written, no sync asked for them yet
        self._syncing: list[_Group] = []  # the sync in flight covers these
        self._groups = 0
        self._pending_records = 0
        self._broken: str | None = None
        self._commits = 0
        self._records = 0
        self._bytes = 0
        self._fsync_seconds = 0.0
        self._restarts: list[float] = []  # when the fsync process was started again

    @property
    def directory(self) -> Path:
        """The journal folder."""
        return self._dir

    @property
    def stats(self) -> JournalStats:
        """Counters since `open`."""
        return JournalStats(
            self._commits, self._records, self._bytes, self._fsync_seconds, len(self._restarts)
        )

    @property
    def failure(self) -> str | None:
        """Why the journal refuses appends (a failed write or fsync, its fsync process lost
        too often), or None while it works. It does not recover: the server must be
        restarted."""
        return self._broken

    @property
    def uncompacted_records(self) -> int:
        """Records written to the active segment since it was opened."""
        return self._pending_records

    def segments(self) -> tuple[Path, ...]:
        """Every segment on disk, oldest first (the active one last, while open)."""
        return tuple(sorted(self._dir.glob(JOURNAL_SEGMENTS), key=_segment_number))

    def sealed(self) -> tuple[Path, ...]:
        """The segments no longer written to, oldest first."""
        return tuple(p for p in self.segments() if p != self._file)

    def open(self) -> None:
        """Seal what an earlier process left, start a fresh segment (and the fsync process).

        Call it on the event loop that will append.

        Raises:
            JournalError: The folder cannot be created or written, or the fsync process
                cannot start.
        """
        if self._loop is not None:
            raise RuntimeError("the journal is already open")
        loop = asyncio.get_running_loop()
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            existing = self.segments()
            self._number = (_segment_number(existing[-1]) + 1) if existing else 1
            self._file, self._fd = self._new_segment(self._number)
            self._offset = self._zeroed = 0
        except OSError as error:
            raise JournalError(f"cannot open the journal in {self._dir}: {error}") from error
        if self._fsync:
            try:
                self._start_syncer(loop)
            except OSError as error:
                os.close(self._fd)
                raise JournalError(f"cannot start the journal's fsync process: {error}") from error
            self._unsent = [self._fd]
        self._loop = loop
        self._closing = False

    def _start_syncer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the fsync process and listen for its answers.

        Raises:
            OSError: It cannot be started.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._syncer = subprocess.Popen(
                [sys.executable, "-I", "-S", _syncer.__file__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is the server's to handle
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._channel = ours
        loop.add_reader(ours.fileno(), self._answered)

    def _syncer_lost(self, reason: str) -> None:
        """The fsync process is gone: start another and ask it again for what the lost one
        had been asked (or break, if it was lost `_RESTARTS` times within `_RESTART_WINDOW`
        seconds, or cannot be started).

        If a sync was in flight, the appends written since the last answer fail (they were
        never acknowledged; a reader may still find them, as after a crash): the lost
        process's fdatasync may have failed, and Linux reports a writeback error once, so a
        new fdatasync of the same file could succeed without their pages on disk. Appends
        written while it was idle are asked again. The new process is handed every segment not
        yet compacted, oldest first, then the active one (syncing clean pages costs next to
        nothing).
        """
        loop = self._loop
        assert loop is not None
        self._cancel_overdue()
        if self._channel is not None:
            loop.remove_reader(self._channel.fileno())
            self._channel.close()
            self._channel = None
        lost, self._syncer = self._syncer, None
        if lost is not None:
            with contextlib.suppress(OSError):
                lost.kill()  # gone already, or hung: either way, it is not asked again
            _reap(lost)
        now = time.monotonic()
        recent = [t for t in self._restarts if now - t < _RESTART_WINDOW]
        if len(recent) >= _RESTARTS:
            self._break(f"the journal's fsync process is gone ({reason})")
            return
        if self._syncing:  # its fsync's outcome is unknown: see above
            doubtful, self._syncing, self._written = [*self._syncing, *self._written], [], []
            _settle(
                (w for g in doubtful for w in g.waiters),
                f"the journal's fsync process was lost during a sync ({reason}): these events "
                "are not known to be durable; try again",
            )
        for fd in self._unsent:
            if fd != self._fd:
                os.close(fd)  # retired: reopened below with the other segments
        held: list[int] = []
        try:
            for path in self.sealed():
                try:
                    held.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                except FileNotFoundError:
                    continue  # compacted meanwhile: it is durable in Parquet
            while len(held) >= _syncer.MAX_FDS:  # more than a request carries: the oldest here
                oldest = held.pop(0)
                try:
                    os.fdatasync(oldest)
                finally:
                    os.close(oldest)
            self._start_syncer(loop)
        except OSError as error:
            for fd in held:
                os.close(fd)
            self._unsent = [self._fd]
            self._break(f"the journal's fsync process is gone ({reason}), and a new one: {error}")
            return
        self._restarts.append(now)
        logger.warning("the journal's fsync process was lost (%s); started another", reason)
        self._unsent = [*held, self._fd]
        if self._written:
            self._ask()
        self._flush()  # appends queued behind the lost sync: nothing else would write them

    def append(self, records: Sequence[Record]) -> asyncio.Future[None]:
        """Queue records; the future completes once they are durable (or fails with
        JournalError). Call it on the journal's event loop.

        Raises:
            JournalError: The journal is closed or an earlier write failed.
        """
        if self._loop is None:
            raise JournalError("the journal is not open")
        if self._closing:
            raise JournalError("the journal is closing")
        if self._broken is not None:
            raise JournalError(f"the journal failed earlier: {self._broken}")
        waiter = self._loop.create_future()
        self._buffer.append(b"".join([encode_record(r) for r in records]))
        self._buffered.append(waiter)
        self._buffered_records += len(records)
        if not self._scheduled and not self._syncing:  # else: written when the sync ends
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return waiter

    async def rotate(self) -> Path | None:
        """Seal the active segment (after every append made before) and start a new one.

        Returns:
            The sealed segment once all of it is durable, or None if it was empty (then
            nothing changes).

        Raises:
            JournalError: The journal is closed or broken, or the new segment cannot be made.
        """
        if self._loop is None:
            raise JournalError("the journal is not open")
        self._flush()
        if self._broken is not None:
            raise JournalError(f"the journal failed earlier: {self._broken}")
        if self._pending_records == 0:
            return None
        if len(self._unsent) >= _syncer.MAX_FDS:
            raise JournalError("too many rotations are waiting for the fsync process")
        durable = self._durable()
        try:
            following, fd = self._new_segment(self._number + 1)
        except OSError as error:
            raise JournalError(f"cannot start a journal segment: {error}") from error
        sealed = self._file
        assert sealed is not None
        if self._fd not in self._unsent:
            os.close(self._fd)  # the syncer holds its own descriptor of it
        if self._channel is not None:
            # Every segment goes to the syncer, in order, even one a later rotation replaced
            # before the next request: each is synced before the next is adopted.
            self._unsent.append(fd)
        self._fd, self._file = fd, following
        self._offset = self._zeroed = 0
        self._number += 1
        self._pending_records = 0
        await durable
        return sealed

    async def close(self) -> None:
        """Make what is queued durable, then stop the fsync process."""
        if self._loop is None:
            return
        self._flush()
        self._closing = True  # appends from here on are refused, not written
        with contextlib.suppress(JournalError):
            await self._durable()
        self._cancel_overdue()
        if self._channel is not None:
            self._loop.remove_reader(self._channel.fileno())
            self._channel.close()  # the syncer reads the end of its input and exits
            self._channel = None
        if self._syncer is not None:
            try:
                await asyncio.to_thread(self._syncer.wait, self._sync_timeout)
            except subprocess.TimeoutExpired:  # stopped, say: it will not read the end
                self._syncer.kill()
                try:
                    await asyncio.to_thread(self._syncer.wait, self._sync_timeout)
                except subprocess.TimeoutExpired:  # stuck in an fdatasync: SIGKILL waits
                    logger.warning("the journal's fsync process does not exit; left to reap")
                    _reap(self._syncer)
            self._syncer = None
        for fd in {self._fd, *self._unsent}:
            os.close(fd)
        self._fd, self._unsent = -1, []
        self._loop = None
        self._fail_all("the journal is closed")

    def _durable(self) -> asyncio.Future[None]:
        """A future that completes once everything written so far is durable."""
        assert self._loop is not None
        waiter = self._loop.create_future()
        last = self._written[-1] if self._written else self._syncing[-1] if self._syncing else None
        if last is None:
            waiter.set_result(None)
        else:
            last.waiters.append(waiter)
        return waiter

    def _new_segment(self, number: int) -> tuple[Path, int]:
        """Create segment `number` (durably: its folder is fsynced) and open it to write."""
        path = self._dir / f"segment-{number:08d}.jsonl"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        try:
            _fsync_dir(self._dir)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)  # so that the next attempt can take the number
            raise
        return path, fd

    def _flush(self) -> None:
        """Write the appends of this turn of the loop as one group; ask for its fsync."""
        self._scheduled = False
        if not self._buffered:
            return
        waiters, self._buffered = self._buffered, []
        data = b"".join(self._buffer)
        self._buffer = []
        self._groups += 1
        group = _Group(self._groups, waiters, self._buffered_records)
        group.size = len(data)
        self._buffered_records = 0
        if self._broken is not None:
            _settle(waiters, f"the journal failed earlier: {self._broken}")
            return
        try:
            end = self._offset + len(data)
            if end > self._zeroed:  # zeros ahead first, so that the fsyncs flush data only
                zeroed = -(-end // _ZEROED) * _ZEROED
                _write_at(self._fd, bytes(zeroed - self._zeroed), self._zeroed)
                self._zeroed = zeroed
            _write_at(self._fd, data, self._offset)
            self._offset = end
        except OSError as error:
            # What reached the file is unknown now: refuse everything from here on.
            self._break(f"the event log cannot be written: {error}")
            _settle(waiters, self._broken)
            return
        self._pending_records += group.count
        if not self._fsync:
            self._committed([group], 0.0)
            return
        self._written.append(group)
        if not self._syncing:
            self._ask()

    def _ask(self) -> None:
        """Ask the syncer to make every written group durable."""
        groups, self._written = self._written, []
        request = _syncer.REQUEST.pack(groups[-1].number)
        try:
            if self._channel is None:
                raise OSError("it was stopped")
            if self._unsent:
                socket.send_fds(self._channel, [request], self._unsent)
            else:
                self._channel.send(request)
        except OSError as error:
            if self._channel is None:  # stopped (closing): nothing to start again
                self._break(f"the journal's fsync process is gone: {error}")
                _settle((w for g in groups for w in g.waiters), self._broken)
                return
            self._written = [*groups, *self._written]  # never asked: safe to ask again
            self._syncer_lost(str(error))
            return
        self._syncing = groups
        assert self._loop is not None
        self._overdue = self._loop.call_later(self._sync_wait, self._sync_overdue)
        retired, self._unsent = [fd for fd in self._unsent if fd != self._fd], []
        for fd in retired:  # the syncer syncs and closes its own copies
            with contextlib.suppress(OSError):
                os.close(fd)

    def _answered(self) -> None:
        """The syncer answered (or closed): settle the groups its fsync covered."""
        assert self._channel is not None
        while True:
            try:
                data = self._channel.recv(_syncer.ANSWER.size)
            except BlockingIOError:
                return
            except OSError as error:
                data, reason = b"", str(error)
            else:
                reason = "it exited"
            if len(data) != _syncer.ANSWER.size:
                self._syncer_lost(reason)
                return
            number, errno, seconds = _syncer.ANSWER.unpack(data)
            if not self._syncing or self._syncing[-1].number != number:
                continue  # an answer for groups already failed
            self._cancel_overdue()
            self._sync_wait = self._sync_timeout
            groups, self._syncing = self._syncing, []
            if errno:
                self._break(f"the event log cannot be written: {os.strerror(errno)}")
                _settle((w for g in groups for w in g.waiters), self._broken)
                return
            self._committed(groups, seconds)
            if self._broken is None:
                self._flush()  # what was appended while the sync ran, as one write
                if self._written and not self._syncing:
                    self._ask()
            return  # one sync is in flight at a time: no other answer can be waiting

    def _sync_overdue(self) -> None:
        """The sync in flight took its time limit: take its process for lost. The limit
        doubles with each such loss in a row (back to `sync_timeout` at the next answer), so
        a disk that stalls for long is waited on longer, not lost four times in a minute."""
        self._overdue = None
        if not self._syncing or self._channel is None:
            return
        pending = self._syncing[-1].number
        self._answered()  # an answer may be waiting unread: the loop can run timers first
        if self._syncing and self._syncing[-1].number == pending and self._channel is not None:
            waited, self._sync_wait = self._sync_wait, 2 * self._sync_wait
            self._syncer_lost(f"it did not answer a sync within {waited:g} s")

    def _cancel_overdue(self) -> None:
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None

    def _committed(self, groups: Sequence[_Group], seconds: float) -> None:
        self._commits += 1
        self._fsync_seconds += seconds
        for group in groups:
            self._records += group.count
            self._bytes += group.size
            _settle(group.waiters, None)

    def _break(self, reason: str) -> None:
        """Refuse every append from now on; fail the ones not yet durable."""
        if self._broken is None:
            self._broken = reason
            logger.error("journal failed, refusing further events: %s", reason)
        self._fail_all(f"the journal failed earlier: {reason}")

    def _fail_all(self, reason: str) -> None:
        self._cancel_overdue()  # no sync is waited on any more
        groups, self._written, self._syncing = [*self._syncing, *self._written], [], []
        _settle((w for g in groups for w in g.waiters), reason)
        waiters, self._buffered, self._buffer = self._buffered, [], []
        _settle(waiters, reason)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for a killed `process` off the loop, on a thread of its own: one stuck in an
    fdatasync (state D) outlives SIGKILL until the disk answers, and must not hold a worker
    thread that others share."""
    threading.Thread(target=process.wait, name="journal-reaper", daemon=True).start()


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset` of `fd`."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


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
        torn: Torn lines dropped (see `SegmentRead.torn`).
        corrupt: Corrupt lines dropped (as `SegmentRead.corrupt` counts them).
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

    Compactions of one log directory take turns (an flock on ``journal/.compaction.lock``):
    a compaction still running in the helper process of a server that died, and the start-up
    compaction of the server that replaces it, never interleave.

    Args:
        logdir: The log directory.
        segments: The sealed segments to compact, oldest first; None: every segment on disk
            (only when no journal is writing, e.g. at start-up or in tests).

    Returns:
        What was moved.
    """
    folder = journal_dir(logdir)
    if not folder.is_dir():
        return CompactionReport(0, {}, {}, 0, 0, False)
    lock = os.open(folder / _COMPACTION_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _compact(Path(logdir), folder, segments)
    finally:
        os.close(lock)  # releases the lock


def _compact(logdir: Path, folder: Path, segments: Sequence[Path] | None) -> CompactionReport:
    intent = folder / _INTENT
    resumed = intent.exists()
    listed: list[Path] = []
    if resumed:
        names = [n for n in intent.read_text(encoding="utf-8").splitlines() if n.strip()]
        listed = [folder / n for n in names if (folder / n).exists()]
    chosen = (
        [p for p in segments if p.exists()]  # gone: compacted by an earlier turn
        if segments is not None
        else sorted(folder.glob(JOURNAL_SEGMENTS), key=_segment_number)
    )
    todo = list(dict.fromkeys([*listed, *chosen]))
    if not todo:
        intent.unlink(missing_ok=True)
        return CompactionReport(0, {}, {}, 0, 0, resumed)
    if not resumed:
        _write_synced(intent, "".join(f"{p.name}\n" for p in todo))
    # The lines' JSON goes to polars as it is: no record is decoded in Python.
    by_kind: dict[Kind, list[bytes]] = {kind: [] for kind in Kind}
    torn = corrupt = 0
    for path in todo:
        lines, torn_here, corrupt_here = _segment_lines(path)
        for kind, payload in lines:
            by_kind[kind].append(payload)
        torn += torn_here
        corrupt += corrupt_here
    written: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for kind, payloads in by_kind.items():
        frame, dropped = _unique_frame(kind, payloads)
        corrupt += dropped
        if resumed and frame.height:
            kept = _not_in_parquet(logdir, kind, frame)
            skipped[str(kind)] = frame.height - kept.height
            frame = kept
        if frame.height:
            write_frame(logdir, kind, frame)
        written[str(kind)] = frame.height
    for path in todo:
        path.unlink(missing_ok=True)
    _fsync_dir(folder)
    intent.unlink(missing_ok=True)
    _fsync_dir(folder)
    return CompactionReport(
        segments=len(todo),
        written=written,
        skipped=skipped,
        torn=torn,
        corrupt=corrupt,
        resumed=resumed,
    )


def _unique_frame(kind: Kind, payloads: Sequence[bytes]) -> tuple[pl.DataFrame, int]:
    """The records of `kind` in journal order, each key's first only, and how many lines were
    dropped because their JSON is not a record of `kind` (as `read_segment` drops them)."""
    empty = pl.DataFrame(schema=SCHEMAS[kind])
    if not payloads:
        return empty, 0
    dropped = 0
    try:
        frame = frame_from_json_lines(kind, b"\n".join(payloads))
        required = [name for name in frame.columns if name not in _NULLABLE]
        if frame.select(pl.col(required).null_count()).sum_horizontal().item():
            raise ValueError("a record lacks a field")
    except (pl.exceptions.PolarsError, ValueError):
        # No journal writes such a line, but one that does not decode must cost only itself:
        # decode line by line, as read_segment does, and drop the ones that fail.
        records: list[Record] = []
        for payload in payloads:
            try:
                records.append(_DECODERS[kind](payload))
            except (msgspec.DecodeError, ValueError, TypeError):
                dropped += 1
        logger.warning("%d %s line(s) do not decode; dropped", dropped, kind)
        if not records:
            return empty, dropped
        frame = to_frame(records)  # type: ignore[arg-type]
    return frame.unique(subset=list(_KEYS[kind]), keep="first", maintain_order=True), dropped


def _not_in_parquet(logdir: Path, kind: Kind, frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of `frame` whose key no Parquet part of `kind` holds yet."""
    keys = list(_KEYS[kind])
    probe = keys[-1]  # the unit id of an assignment, the id of the others
    wanted = frame.get_column(probe).unique()
    present = scan(logdir, kind).select(keys).filter(pl.col(probe).is_in(wanted)).collect()
    return frame.join(present, on=keys, how="anti", maintain_order="left")


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
