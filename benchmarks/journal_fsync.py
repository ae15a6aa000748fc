"""Journal fsyncs: an fdatasync after an append, against one after overwriting zeros.

The event log's segments are written ahead with zeros that the records overwrite
(`serving.eventlog`), so an fdatasync flushes data only; an append must also commit the file's
new size. Measured in one run on the disk of the working directory (a tmpfs /tmp would make
fsync free), with records of an impression's size:

* the reference: append a record, fdatasync;
* the journal's way: overwrite zeros written ahead, fdatasync; the fsync that follows each
  chunk of zeros is timed apart, for chunks of 256 KiB, 1 MiB (the journal's) and 4 MiB.

Run: python -m benchmarks.journal_fsync [--syncs 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

RECORD = 1600
"""Bytes of one impression's journal line, about."""


def _append(path: Path, syncs: int) -> list[float]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        seconds = []
        for _ in range(syncs):
            os.write(fd, b"x" * RECORD)
            started = time.perf_counter()
            os.fdatasync(fd)
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        os.close(fd)


def _overwrite(path: Path, syncs: int, chunk: int) -> tuple[list[float], list[float]]:
    """Fsync times of records written into zeros, and of the syncs that flushed new zeros."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        plain, extending = [], []
        offset = zeroed = 0
        for _ in range(syncs):
            extends = offset + RECORD > zeroed
            if extends:
                os.pwrite(fd, bytes(chunk), zeroed)
                zeroed += chunk
            os.pwrite(fd, b"x" * RECORD, offset)
            offset += RECORD
            started = time.perf_counter()
            os.fdatasync(fd)
            (extending if extends else plain).append(time.perf_counter() - started)
        return plain, extending
    finally:
        os.close(fd)


def _ms(seconds: list[float]) -> str:
    values = np.asarray(seconds) * 1e3
    return (
        f"p50 {np.percentile(values, 50):.3f} ms, p99 {np.percentile(values, 99):.3f} ms, "
        f"mean {values.mean():.3f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal_fsync", description=__doc__)
    parser.add_argument("--syncs", type=int, default=2000, help="fsyncs per way")
    args = parser.parse_args(argv)
    Path(".cache").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-fsync-", dir=".cache"))
    try:
        appended = _append(work / "append", args.syncs)
        print(f"append, then fdatasync ({args.syncs:,} syncs): {_ms(appended)}")
        for chunk in (256 << 10, 1 << 20, 4 << 20):
            plain, extending = _overwrite(work / f"zeroed-{chunk}", args.syncs, chunk)
            print(
                f"overwrite zeros written {chunk >> 10:,} KiB ahead, then fdatasync: "
                f"{_ms(plain)}; the {len(extending)} syncs flushing new zeros: {_ms(extending)}"
            )
        ratio = np.median(appended) / np.median(_overwrite(work / "again", args.syncs, 1 << 20)[0])
        print(f"median fsync, append against overwrite (1 MiB of zeros ahead): {ratio:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
