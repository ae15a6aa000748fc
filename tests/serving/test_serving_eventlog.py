"""The journal: group commit, torn-tail recovery, compaction equal to the journal, crash-safe
compaction."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    Journal,
    Record,
    compact,
    decode_line,
    encode_record,
    journal_dir,
    read_segment,
)

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


def test_group_commit_batches_concurrent_appends(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    futures = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(w: int) -> None:
        barrier.wait()
        for i in range(25):
            future = journal.append([impression(w * 100 + i)])
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for future in futures:
        future.result(timeout=10)
    stats = journal.stats
    journal.close()
    assert stats.records == 400
    # Appends queued while the writer fsynced share the next commit.
    assert stats.commits < 400
    (segment,) = sorted(journal_dir(tmp_path).glob("segment-*.jsonl"))
    read = read_segment(segment)
    assert len(read.records) == 400
    assert read.torn == 0


def test_async_appends_are_durable_when_awaited_and_share_commits(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    (segment,) = journal.segments()

    async def one(i: int) -> int:
        await journal.append_async([impression(i)])
        # Acknowledged: the record is in the segment file already.
        found = {r.impression_id for r in read_segment(segment).records}  # type: ignore[union-attr]
        return int(impression(i).impression_id in found)

    async def many() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(200)))

    durable = asyncio.run(many())
    stats = journal.stats
    journal.close()
    assert sum(durable) == 200
    assert stats.records == 200
    assert stats.commits < 200


def test_a_failed_fsync_fails_async_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import eventlog
    from serving.errors import JournalError

    def fail(fd: int) -> None:
        raise OSError("disk gone")

    journal = Journal(tmp_path)
    journal.open()
    monkeypatch.setattr(eventlog.os, "fdatasync", fail)

    async def append() -> None:
        await asyncio.gather(*(journal.append_async(records(1)) for _ in range(3)))

    with pytest.raises(JournalError, match="disk gone"):
        asyncio.run(append())
    with pytest.raises(JournalError, match="failed earlier"):
        asyncio.run(append())
    journal.close()


def test_a_torn_tail_is_dropped_not_fatal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(records(4)).result()
    journal.close()
    (segment,) = journal.segments()
    whole = segment.read_bytes()
    segment.write_bytes(whole + encode_record(impression(99))[:40])  # a crash mid-write
    read = read_segment(segment)
    assert read.torn == 1
    assert read.records == tuple(records(4))
    segment.write_bytes(whole[:-1])  # the last line lost only its newline
    assert read_segment(segment).torn == 1
    middle = whole.replace(b"imp-1", b"imp-X", 1)  # a corrupt line inside
    segment.write_bytes(middle)
    read = read_segment(segment)
    assert read.corrupt == 1
    assert len(read.records) == 11
    # Reopening seals the old segment and starts a new one: nothing crashes.
    segment.write_bytes(whole + b"garbage without newline")
    again = Journal(tmp_path)
    again.open()
    again.append([impression(100)]).result()
    again.close()
    report = compact(tmp_path)
    assert report.torn == 1
    assert report.segments == 2
    assert scan(tmp_path, Kind.IMPRESSIONS).collect().height == 5


def test_compaction_equals_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    written = records(30)
    for start in range(0, len(written), 9):
        journal.append(written[start : start + 9]).result()
    sealed = journal.rotate().result()
    assert sealed is not None
    journal.append(records(1)).result()  # goes to the new segment
    report = compact(tmp_path, journal.sealed())
    journal.close()
    assert report.written == {"assignments": 30, "impressions": 30, "clicks": 30}
    assert not sealed.exists()
    assert len(journal.segments()) == 1
    for kind, cls in (
        (Kind.ASSIGNMENTS, Assignment),
        (Kind.IMPRESSIONS, Impression),
        (Kind.CLICKS, Click),
    ):
        frame = scan(tmp_path, kind).collect()
        assert frame.schema == SCHEMAS[kind]
        expected = to_frame([r for r in written if isinstance(r, cls)])  # type: ignore[misc]
        assert frame.sort(frame.columns[0]).equals(expected.sort(frame.columns[0]))


def test_an_interrupted_compaction_neither_loses_nor_duplicates(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(records(10)).result()
    journal.close()
    (segment,) = journal.segments()
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
    journal = Journal(tmp_path)
    journal.open()
    journal.append(records(3)).result()
    journal.close()
    compact(tmp_path)
    for kind in Kind:
        lazy = scan(tmp_path, kind)
        assert lazy.collect_schema() == SCHEMAS[kind]
        assert isinstance(lazy.collect(), pl.DataFrame)
