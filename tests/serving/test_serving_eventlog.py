"""The journal: group commit, torn-tail recovery, compaction equal to the journal, crash-safe
compaction."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import msgspec
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.schema import (
    SCHEMAS,
    Assignment,
    Click,
    Design,
    Impression,
    Kind,
    scan,
    to_frame,
    write_frame,
)
from serving.eventlog import (
    CompactionReport,
    Journal,
    JournalStats,
    Record,
    compact,
    decode_line,
    encode_record,
    journal_dir,
    read_segment,
)

T = TypeVar("T")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def impression(i: int) -> Impression:
    return Impression(
        impression_id=f"imp-{i}",
        experiment_id="e",
        experiment_version=1,
        unit_id=f"u-{i % 7}",
        query_id=f"q-{i}",
        design=Design.INTERLEAVING,
        treatment="interleaved",
        rankers=("a", "b"),
        lists=(("x", "y", "z"), ("y", "x")),
        doc_ids=("x", "y"),
        teams=(0, None),
        ts=T0 + timedelta(seconds=i),
        page_start=0,
        seed=2**64 - 1 - i,
        excluded=None if i % 5 else "ranker_failed:b",
    )


def records(n: int) -> list[Record]:
    out: list[Record] = []
    for i in range(n):
        out.append(Assignment("e", 1, f"u-{i}", "interleaved", T0 + timedelta(seconds=i)))
        out.append(impression(i))
        out.append(Click(f"c-{i}", f"imp-{i}", "e", 1, f"u-{i % 7}", 1, "y", T0))
    return out


def test_lines_round_trip_and_reject_corruption() -> None:
    for record in records(3):
        line = encode_record(record)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert decode_line(line[:-1]) == record
        flipped = bytearray(line[:-1])
        flipped[-3] ^= 0x01
        assert decode_line(bytes(flipped)) is None
    assert decode_line(b"") is None
    assert decode_line(b"zzzzzzzz impressions {}") is None


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=20),
    st.lists(st.text(max_size=8), max_size=5),
    st.integers(0, 2**64 - 1),
    st.one_of(st.none(), st.text(max_size=12)),
)
def test_any_impression_round_trips(
    unit: str, docs: list[str], seed: int, excluded: str | None
) -> None:
    record = Impression(
        "i", "e", 3, unit, "q", Design.AB, "t", ("a",), (tuple(docs),), tuple(docs),
        tuple(0 for _ in docs), T0, 0, seed, excluded,
    )  # fmt: skip
    assert decode_line(encode_record(record)[:-1]) == record


def journal_run(tmp_path: Path, body: Callable[[Journal], Awaitable[T]]) -> T:
    """Open a journal on a fresh event loop, run `body` with it, close it."""

    async def main() -> T:
        journal = Journal(tmp_path)
        journal.open()
        try:
            return await body(journal)
        finally:
            await journal.close()

    return asyncio.run(main())


def test_group_commit_batches_concurrent_appends(tmp_path: Path) -> None:
    async def body(journal: Journal) -> JournalStats:
        async def worker(w: int) -> None:
            for i in range(25):
                await journal.append([impression(w * 100 + i)])

        await asyncio.gather(*(worker(w) for w in range(16)))
        return journal.stats

    stats = journal_run(tmp_path, body)
    assert stats.records == 400
    # Appends made while an fsync ran share the next one.
    assert stats.commits < 400
    assert stats.fsync_seconds > 0
    (segment,) = sorted(journal_dir(tmp_path).glob("segment-*.jsonl"))
    read = read_segment(segment)
    assert len(read.records) == 400
    assert read.torn == 0


def test_appends_are_written_when_acknowledged_and_share_commits(tmp_path: Path) -> None:
    async def body(journal: Journal) -> tuple[list[int], JournalStats]:
        (segment,) = journal.segments()

        async def one(i: int) -> int:
            await journal.append([impression(i)])
            # Acknowledged: the record is in the segment file already.
            found = {r.impression_id for r in read_segment(segment).records}  # type: ignore[union-attr]
            return int(impression(i).impression_id in found)

        return await asyncio.gather(*(one(i) for i in range(200))), journal.stats

    durable, stats = journal_run(tmp_path, body)
    assert sum(durable) == 200
    assert stats.records == 200
    assert stats.commits < 200


def test_a_failed_fsync_fails_the_appends_and_every_later_one(tmp_path: Path) -> None:
    from serving.errors import JournalError

    async def body(journal: Journal) -> None:
        # Writes to /dev/null succeed, and fdatasync on it fails (EINVAL) in the syncer.
        null = os.open(os.devnull, os.O_WRONLY)
        os.close(journal._fd)
        journal._fd = null
        journal._unsent = [null]  # what the first request hands the syncer
        with pytest.raises(JournalError, match="cannot be written: Invalid argument"):
            await asyncio.gather(*(journal.append(records(1)) for _ in range(3)))
        with pytest.raises(JournalError, match="failed earlier"):
            journal.append(records(1))

    journal_run(tmp_path, body)


def test_a_lost_fsync_process_is_started_again_and_loses_nothing(tmp_path: Path) -> None:
    """Killed while idle, the fsync process is started again and the next appends are
    acknowledged; killed with a sync in flight, that sync's appends fail (its fdatasync may
    have failed unseen) and the journal goes on; lost a fourth time within a minute, the
    journal breaks. Nothing is acknowledged that no answered fdatasync covered."""
    from serving.errors import JournalError

    async def lose(journal: Journal) -> None:
        """Kill the fsync process and wait until the journal has noticed."""
        lost = journal._syncer
        assert lost is not None
        lost.kill()
        await asyncio.to_thread(lost.wait)
        for _ in range(500):
            if journal._syncer is not lost or journal.failure is not None:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the journal did not notice its fsync process was lost")

    async def body(journal: Journal) -> list[JournalStats]:
        seen = []
        await journal.append(records(1))
        await lose(journal)
        await asyncio.wait_for(journal.append(records(2)), timeout=10)  # a new one syncs it
        assert journal._syncer is not None
        assert journal._syncer.poll() is None
        seen.append(journal.stats)
        journal._syncer.send_signal(signal.SIGSTOP)  # the next sync stays in flight
        doubtful = journal.append(records(3))
        await asyncio.sleep(0.05)
        assert not doubtful.done()  # written and asked for, not acknowledged
        await lose(journal)
        with pytest.raises(JournalError, match="not known to be durable"):
            await doubtful
        assert journal.failure is None  # the journal goes on
        await asyncio.wait_for(journal.append(records(4)), timeout=10)
        seen.append(journal.stats)
        await lose(journal)  # a third loss within the minute: started again
        assert journal.failure is None
        await lose(journal)  # the fourth: the journal breaks
        assert journal.failure is not None
        with pytest.raises(JournalError, match="fsync process is gone"):
            journal.append(records(1))
        seen.append(journal.stats)
        return seen

    after_idle, after_in_flight, broken = journal_run(tmp_path, body)
    assert (after_idle.fsync_restarts, after_in_flight.fsync_restarts) == (1, 2)
    assert broken.fsync_restarts == 3
    assert broken.records == 3 * (1 + 2 + 4)  # the acknowledged appends only
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    # The failed append was written, never acknowledged: a reader finds it, as after a crash.
    assert read_segment(segment).records == (*records(1), *records(2), *records(3), *records(4))


def test_a_new_fsync_process_syncs_the_segments_the_lost_one_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment sealed while a sync was in flight was handed to the process that was then
    lost: the next one is handed it again (with the active segment, last), and the append
    queued behind the lost sync is written and acknowledged."""
    import socket

    from serving import eventlog
    from serving.errors import JournalError

    handed: list[list[str]] = []
    real_send_fds = socket.send_fds

    def send_fds(sock: socket.socket, buffers: list[bytes], fds: list[int]) -> int:
        handed.append([Path(os.readlink(f"/proc/self/fd/{fd}")).name for fd in fds])
        return real_send_fds(sock, buffers, fds)

    monkeypatch.setattr(eventlog.socket, "send_fds", send_fds)

    async def body(journal: Journal) -> list[object]:
        await journal.append([impression(0)])
        assert journal._syncer is not None
        journal._syncer.send_signal(signal.SIGSTOP)
        first = journal.append([impression(1)])  # asked for; stays in flight
        await asyncio.sleep(0.05)
        rotated = asyncio.ensure_future(journal.rotate())
        await asyncio.sleep(0)
        second = journal.append([impression(2)])  # segment 2, queued behind the sync
        journal._syncer.kill()
        return await asyncio.wait_for(
            asyncio.gather(first, rotated, second, return_exceptions=True), timeout=10
        )

    first, rotated, second = journal_run(tmp_path, body)
    assert isinstance(first, JournalError)  # in flight when lost: not known to be durable
    assert isinstance(rotated, JournalError)  # segment 1's last append among them
    assert second is None
    assert handed[0] == ["segment-00000001.jsonl"]
    assert handed[-1] == ["segment-00000001.jsonl", "segment-00000002.jsonl"]
    shown = [read_segment(p).records for p in sorted(journal_dir(tmp_path).glob("segment-*"))]
    assert shown == [(impression(0), impression(1)), (impression(2),)]


async def stopped_syncer(journal: Journal) -> subprocess.Popen[bytes]:
    """Append `records(1)` (durable), then stop the journal's fsync process with SIGSTOP."""
    await journal.append(records(1))
    syncer = journal._syncer
    assert syncer is not None
    syncer.send_signal(signal.SIGSTOP)
    return syncer


def test_an_fsync_process_that_does_not_answer_in_time_is_replaced(tmp_path: Path) -> None:
    """A stopped fsync process (or one stuck on a disk) is taken for lost after
    `sync_timeout`: the append its sync covered fails, unacknowledged, instead of waiting for
    ever; the append queued behind it is synced by the next process and acknowledged."""
    from serving.errors import JournalError

    async def main() -> tuple[object, object, float, int, int | None]:
        journal = Journal(tmp_path, sync_timeout=2.0)
        journal.open()
        try:
            stopped = await stopped_syncer(journal)
            started = time.monotonic()
            doubtful = journal.append(records(2))  # asked for; never answered
            await asyncio.sleep(0.05)
            behind = journal.append(records(3))  # queued behind the sync in flight
            outcomes = await asyncio.wait_for(
                asyncio.gather(doubtful, behind, return_exceptions=True), timeout=10
            )
            waited = time.monotonic() - started
            await asyncio.wait_for(journal.append(records(4)), timeout=10)
            await asyncio.to_thread(stopped.wait, 10)
            return *outcomes, waited, journal.stats.fsync_restarts, stopped.returncode
        finally:
            await journal.close()

    doubtful, behind, waited, restarts, returncode = asyncio.run(main())
    assert isinstance(doubtful, JournalError)
    assert "did not answer a sync within 2 s" in str(doubtful)
    assert behind is None
    assert 2.0 <= waited < 10
    assert restarts == 1
    assert returncode == -signal.SIGKILL  # killed, though stopped
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    assert read_segment(segment).records == (*records(1), *records(2), *records(3), *records(4))


def test_the_fsync_time_limit_doubles_while_syncs_time_out_in_a_row(tmp_path: Path) -> None:
    """Each sync that times out in a row doubles the next one's limit, so a long stall is
    waited on longer instead of losing the process four times a minute (which breaks the
    journal); the next answer brings the limit back."""
    from serving.errors import JournalError

    async def main() -> tuple[list[str], float, int]:
        journal = Journal(tmp_path, sync_timeout=1.0)
        journal.open()
        reasons = []
        try:
            await stopped_syncer(journal)
            for _ in range(2):
                with pytest.raises(JournalError) as failed:
                    await asyncio.wait_for(journal.append(records(2)), timeout=20)
                reasons.append(str(failed.value))
                replaced = journal._syncer
                assert replaced is not None
                replaced.send_signal(signal.SIGSTOP)  # the next one hangs too
            replaced.send_signal(signal.SIGCONT)  # it answers now
            await asyncio.wait_for(journal.append(records(3)), timeout=20)
            return reasons, journal._sync_wait, journal.stats.fsync_restarts
        finally:
            await journal.close()

    reasons, limit, restarts = asyncio.run(main())
    assert "did not answer a sync within 1 s" in reasons[0]
    assert "did not answer a sync within 2 s" in reasons[1]
    assert limit == 1.0
    assert restarts == 2


def test_a_slow_fsync_within_the_timeout_is_waited_for(tmp_path: Path) -> None:
    """Stopped for less than `sync_timeout`, the fsync process is not replaced: the sync in
    flight is answered once it runs again, and acknowledged."""

    async def main() -> tuple[int, int]:
        journal = Journal(tmp_path, sync_timeout=5.0)
        journal.open()
        try:
            syncer = await stopped_syncer(journal)
            waiting = journal.append(records(2))
            await asyncio.sleep(0.4)
            syncer.send_signal(signal.SIGCONT)
            await asyncio.wait_for(waiting, timeout=10)
            return journal.stats.fsync_restarts, journal.stats.records
        finally:
            await journal.close()

    assert asyncio.run(main()) == (0, 3 * 3)


def test_a_sync_time_limit_never_outlives_its_sync(tmp_path: Path) -> None:
    """Syncs answered in time, one after another for three time limits, replace nothing: the
    limit set for one sync must not fire on a later one still in flight."""

    async def main() -> tuple[int, int, float]:
        journal = Journal(tmp_path, sync_timeout=1.0)
        journal.open()
        slowest = 0.0
        try:
            ends = time.monotonic() + 3.0
            while time.monotonic() < ends:
                started = time.monotonic()
                await asyncio.wait_for(journal.append(records(1)), timeout=10)
                slowest = max(slowest, time.monotonic() - started)
            return journal.stats.fsync_restarts, journal.stats.commits, slowest
        finally:
            await journal.close()

    restarts, commits, slowest = asyncio.run(main())
    if slowest > 0.9:
        pytest.skip(f"an fsync took {slowest:.2f} s here, near the limit the test relies on")
    assert commits > 30
    assert restarts == 0


def test_close_kills_an_fsync_process_that_does_not_exit(tmp_path: Path) -> None:
    async def main() -> int | None:
        journal = Journal(tmp_path, sync_timeout=2.0)
        journal.open()
        syncer = await stopped_syncer(journal)  # idle: no sync is in flight to time out
        await asyncio.wait_for(journal.close(), timeout=10)
        return syncer.returncode

    assert asyncio.run(main()) == -signal.SIGKILL


def test_close_gives_up_on_an_fsync_process_that_outlives_sigkill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A process stuck in an fdatasync (state D) outlives SIGKILL until the disk answers:
    close waits for it a time limit after the kill, then leaves it to a reaper thread of its
    own instead of hanging (here its wait blocks until the test lets the disk answer)."""
    disk = threading.Event()

    async def main() -> tuple[float, subprocess.Popen[bytes]]:
        journal = Journal(tmp_path, sync_timeout=0.5)
        journal.open()
        syncer = await stopped_syncer(journal)
        real_wait = syncer.wait

        def wait_in_state_d(timeout: float | None = None) -> int:
            if not disk.wait(timeout):
                raise subprocess.TimeoutExpired(syncer.args, timeout or 0.0)
            return real_wait()

        syncer.wait = wait_in_state_d  # type: ignore[method-assign]
        started = time.monotonic()
        await asyncio.wait_for(journal.close(), timeout=10)
        return time.monotonic() - started, syncer

    safety = threading.Timer(15, disk.set)  # a close that hangs fails instead of hanging
    safety.start()
    try:
        with caplog.at_level("WARNING", logger="serving.eventlog"):
            took, syncer = asyncio.run(main())
    finally:
        safety.cancel()
    assert took < 5
    assert "does not exit; left to reap" in caplog.text
    assert syncer.returncode is None  # not reaped yet: its reaper still waits for the disk
    disk.set()
    deadline = time.monotonic() + 10
    while syncer.returncode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert syncer.returncode == -signal.SIGKILL  # reaped by the thread, once the disk answered


def test_close_commits_what_is_queued_and_stops_the_fsync_process(tmp_path: Path) -> None:
    async def main() -> tuple[asyncio.Future[None], int]:
        journal = Journal(tmp_path)
        journal.open()
        assert journal._syncer is not None
        syncer = journal._syncer
        waiter = journal.append(records(5))  # not awaited before close
        await journal.close()
        return waiter, syncer.returncode

    waiter, returncode = asyncio.run(main())
    assert waiter.done()
    assert waiter.exception() is None
    assert returncode == 0
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    assert read_segment(segment).records == tuple(records(5))


def test_a_torn_tail_is_dropped_not_fatal(tmp_path: Path) -> None:
    journal_run(tmp_path, lambda journal: journal.append(records(4)))
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    padded = segment.read_bytes()
    whole = padded.rstrip(b"\0")  # the records, without the zeros written ahead of them
    assert len(padded) % (1024 * 1024) == 0
    assert set(padded[len(whole) :]) == {0}
    assert read_segment(segment).records == tuple(records(4))
    segment.write_bytes(whole + encode_record(impression(99))[:40])  # a crash mid-write
    read = read_segment(segment)
    assert read.torn == 1
    assert read.records == tuple(records(4))
    cut = whole + encode_record(impression(99))[:40]  # the same, written into the zeros
    segment.write_bytes(cut + padded[len(cut) :])
    assert (read_segment(segment).torn, read_segment(segment).records) == (1, tuple(records(4)))
    segment.write_bytes(whole[:-1])  # the last line lost only its newline
    assert read_segment(segment).torn == 1
    # A crash kept a later write but not the one before it (neither was acknowledged).
    lines = whole.split(b"\n")
    hole = b"\n".join([*lines[:1], b"\0" * len(lines[1]), *lines[2:]])
    segment.write_bytes(hole + padded[len(hole) :])
    read = read_segment(segment)
    assert (read.torn, read.corrupt, len(read.records)) == (0, 0, 11)
    # ... or kept a part of a line only: torn, not corrupt.
    for part in (
        lines[1][:20] + b"\0" * (len(lines[1]) - 20),
        b"\0" * 20 + lines[1][20:],
    ):
        hole = b"\n".join([*lines[:1], part, *lines[2:]])
        segment.write_bytes(hole + padded[len(hole) :])
        read = read_segment(segment)
        assert (read.torn, read.corrupt, len(read.records)) == (1, 0, 11)
    middle = whole.replace(b"imp-1", b"imp-X", 1)  # a corrupt line inside
    segment.write_bytes(middle)
    read = read_segment(segment)
    assert read.corrupt == 1
    assert len(read.records) == 11
    # Reopening seals the old segment and starts a new one: nothing crashes.
    segment.write_bytes(whole + b"garbage without newline")
    journal_run(tmp_path, lambda journal: journal.append([impression(100)]))
    report = compact(tmp_path)
    assert report.torn == 1
    assert report.segments == 2
    assert scan(tmp_path, Kind.IMPRESSIONS).collect().height == 5


def test_compaction_equals_the_journal(tmp_path: Path) -> None:
    written = records(30)

    async def body(journal: Journal) -> tuple[Path | None, CompactionReport, int]:
        for start in range(0, len(written), 9):
            await journal.append(written[start : start + 9])
        sealed = await journal.rotate()
        await journal.append([impression(1000)])  # goes to the new segment
        assert await journal.rotate() is not None
        assert await journal.rotate() is None  # nothing written since: nothing to seal
        report = compact(tmp_path, journal.sealed())
        return sealed, report, len(journal.segments())

    sealed, report, left = journal_run(tmp_path, body)
    assert sealed is not None
    assert report.segments == 2
    assert report.written == {"assignments": 30, "impressions": 31, "clicks": 30}
    assert not sealed.exists()
    assert left == 1
    for kind, cls in (
        (Kind.ASSIGNMENTS, Assignment),
        (Kind.IMPRESSIONS, Impression),
        (Kind.CLICKS, Click),
    ):
        frame = scan(tmp_path, kind).collect()
        assert frame.schema == SCHEMAS[kind]
        expected = to_frame(
            [r for r in [*written, impression(1000)] if isinstance(r, cls)]  # type: ignore[misc]
        )
        assert frame.sort(frame.columns[0]).equals(expected.sort(frame.columns[0]))


def test_an_interrupted_compaction_neither_loses_nor_duplicates(tmp_path: Path) -> None:
    journal_run(tmp_path, lambda journal: journal.append(records(10)))
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    # Simulate a crash after the intent and the impressions part were written.
    (journal_dir(tmp_path) / "compaction.intent").write_text(segment.name + "\n")
    part = [r for r in read_segment(segment).records if isinstance(r, Impression)][:6]
    write_frame(tmp_path, Kind.IMPRESSIONS, to_frame(part))
    report = compact(tmp_path)
    assert report.resumed
    assert report.skipped["impressions"] == 6
    assert report.written["impressions"] == 4
    impressions = scan(tmp_path, Kind.IMPRESSIONS).collect()
    assert impressions.height == 10
    assert impressions["impression_id"].n_unique() == 10
    assert scan(tmp_path, Kind.CLICKS).collect().height == 10
    assert not (journal_dir(tmp_path) / "compaction.intent").exists()
    assert compact(tmp_path).segments == 0  # nothing left, and idempotent


def test_appending_to_a_closed_journal_fails_clearly(tmp_path: Path) -> None:
    from serving.errors import JournalError

    journal = Journal(tmp_path)
    with pytest.raises(JournalError, match="not open"):
        journal.append(records(1))


def test_compacted_frames_have_the_exact_schema(tmp_path: Path) -> None:
    journal_run(tmp_path, lambda journal: journal.append(records(3)))
    compact(tmp_path)
    for kind in Kind:
        lazy = scan(tmp_path, kind)
        assert lazy.collect_schema() == SCHEMAS[kind]
        assert isinstance(lazy.collect(), pl.DataFrame)


def test_compactions_of_one_log_directory_take_turns(tmp_path: Path) -> None:
    import fcntl
    import threading

    journal_run(tmp_path, lambda journal: journal.append(records(4)))
    lock = os.open(journal_dir(tmp_path) / ".compaction.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another compaction is running
    reports: list[CompactionReport] = []
    waiting = threading.Thread(target=lambda: reports.append(compact(tmp_path)))
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive()  # it waits its turn
    assert len(list(journal_dir(tmp_path).glob("segment-*.jsonl"))) == 1
    os.close(lock)
    waiting.join(timeout=30)
    assert reports[0].written == {"assignments": 4, "impressions": 4, "clicks": 4}


def test_the_compaction_process_reports_and_fails_clearly(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    journal_run(tmp_path, lambda journal: journal.append(records(3)))
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    command = [sys.executable, "-m", "serving._compactor", str(tmp_path)]
    done = subprocess.run([*command, str(segment)], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["written"] == {"assignments": 3, "impressions": 3, "clicks": 3}
    assert scan(tmp_path, Kind.CLICKS).collect().height == 3
    assert not segment.exists()
    again = subprocess.run([*command, str(segment)], capture_output=True, text=True, check=True)
    assert json.loads(again.stdout)["segments"] == 0  # already compacted: nothing to do
    unreadable = journal_dir(tmp_path) / "segment-00000009.jsonl"
    unreadable.mkdir()
    failed = subprocess.run([*command, str(unreadable)], capture_output=True, text=True)
    assert failed.returncode != 0
    assert "IsADirectoryError" in failed.stderr.strip().splitlines()[-1]


def test_every_segment_is_synced_when_rotations_outpace_the_fsync_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rotations while one fsync runs: the middle segment, which the syncer had not been
    handed yet, is still synced before its appends are acknowledged."""
    from serving import eventlog
    from serving.errors import JournalError

    # Segment 2 is /dev/null: writes to it succeed and its fdatasync fails (EINVAL), so an
    # append to it is acknowledged only if the syncer never syncs it.
    real_open = os.open

    def fake_open(path: object, flags: int, *args: int) -> int:
        if str(path).endswith("segment-00000002.jsonl"):
            os.close(real_open(path, flags, *args))  # the file exists, as for a real segment
            return real_open(os.devnull, os.O_WRONLY)
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(eventlog.os, "open", fake_open)

    async def body(journal: Journal) -> list[object]:
        await journal.append([impression(0)])
        assert journal._syncer is not None
        journal._syncer.send_signal(signal.SIGSTOP)  # the next fsync stays in flight
        try:
            first = journal.append([impression(1)])
            await asyncio.sleep(0.05)  # written and asked for; no answer while stopped
            to_second = asyncio.ensure_future(journal.rotate())
            await asyncio.sleep(0)
            second = journal.append([impression(2)])  # segment 2
            to_third = asyncio.ensure_future(journal.rotate())
            await asyncio.sleep(0)
            third = journal.append([impression(3)])  # segment 3
        finally:
            journal._syncer.send_signal(signal.SIGCONT)
        return await asyncio.gather(
            first, second, third, to_second, to_third, return_exceptions=True
        )

    first, second, third, to_second, to_third = journal_run(tmp_path, body)
    assert first is None
    assert isinstance(to_second, Path)
    assert to_second.name == "segment-00000001.jsonl"
    assert isinstance(second, JournalError)
    assert "Invalid argument" in str(second)
    assert isinstance(to_third, JournalError)  # segment 2 never became durable
    assert isinstance(third, JournalError)  # nor anything after it


def test_an_append_during_close_is_refused_and_not_written(tmp_path: Path) -> None:
    from serving.errors import JournalError

    async def main() -> None:
        journal = Journal(tmp_path)
        journal.open()
        written = journal.append(records(1))
        closing = asyncio.ensure_future(journal.close())
        await asyncio.sleep(0)  # close has begun
        with pytest.raises(JournalError, match="closing"):
            journal.append(records(2))
        await closing
        await written

    asyncio.run(main())
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    assert read_segment(segment).records == tuple(records(1))


def test_compaction_keeps_the_first_of_a_key_and_drops_lines_that_do_not_decode(
    tmp_path: Path,
) -> None:
    import zlib

    first, again = impression(1), impression(2)
    repeat = msgspec.structs.replace(first, query_id="later")  # the same impression id
    journal_run(tmp_path, lambda journal: journal.append([first, again, repeat]))
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    body = b'impressions {"impression_id": 7}'  # its checksum holds; it is no impression
    segment.write_bytes(segment.read_bytes() + b"%08x " % zlib.crc32(body) + body + b"\n")
    report = compact(tmp_path)
    assert report.written == {"assignments": 0, "impressions": 2, "clicks": 0}
    assert report.corrupt == 1
    frame = scan(tmp_path, Kind.IMPRESSIONS).collect()
    assert frame["impression_id"].to_list() == ["imp-1", "imp-2"]
    assert frame["query_id"].to_list() == ["q-1", "q-2"]  # the first of imp-1, not the repeat


def test_appends_made_during_an_fsync_are_written_together_when_it_ends(tmp_path: Path) -> None:
    async def body(journal: Journal) -> tuple[tuple[Record, ...], int, int]:
        await journal.append([impression(0)])
        segment, syncer = journal._file, journal._syncer
        assert segment is not None
        assert syncer is not None
        before = journal.stats.commits
        syncer.send_signal(signal.SIGSTOP)  # the next fsync stays in flight
        try:
            first = journal.append([impression(1)])
            await asyncio.sleep(0.05)  # written, its fsync asked for
            held = [journal.append([impression(i)]) for i in (2, 3)]
            await asyncio.sleep(0.05)
            on_disk = read_segment(segment).records
        finally:
            syncer.send_signal(signal.SIGCONT)
        await asyncio.gather(first, *held)
        return on_disk, journal.stats.commits - before, len(read_segment(segment).records)

    on_disk, commits, durable = journal_run(tmp_path, body)
    assert on_disk == (impression(0), impression(1))  # 2 and 3 waited for the fsync to end
    assert commits == 2  # 1's fsync, then one for 2 and 3 together
    assert durable == 4


def test_close_writes_and_syncs_appends_held_behind_an_fsync(tmp_path: Path) -> None:
    async def main() -> list[BaseException | None]:
        journal = Journal(tmp_path)
        journal.open()
        await journal.append([impression(0)])
        assert journal._syncer is not None
        journal._syncer.send_signal(signal.SIGSTOP)
        first = journal.append([impression(1)])
        await asyncio.sleep(0.05)
        held = journal.append([impression(2)])
        closing = asyncio.ensure_future(journal.close())
        await asyncio.sleep(0.05)
        journal._syncer.send_signal(signal.SIGCONT)
        await closing
        return [first.exception(), held.exception()]

    assert asyncio.run(main()) == [None, None]
    (segment,) = journal_dir(tmp_path).glob("segment-*.jsonl")
    assert read_segment(segment).records == (impression(0), impression(1), impression(2))


@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="ioprio_get number"
)
def test_the_compactor_runs_at_the_lowest_cpu_and_io_priority() -> None:
    code = (
        "import ctypes, os, serving._compactor\n"
        "print(os.nice(0), ctypes.CDLL(None).syscall(252, 1, 0))"  # __NR_ioprio_get
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    niceness, ioprio = map(int, out.stdout.split())
    assert niceness == 19
    assert ioprio >> 13 == 3  # IOPRIO_CLASS_IDLE: the server's fsyncs go first
