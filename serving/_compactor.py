"""Compact sealed journal segments in a process of its own (what the server runs).

``python -m serving._compactor LOGDIR SEGMENT...`` runs `serving.eventlog.compact` at the
lowest priority and prints its report as JSON. The server runs it this way rather than on a thread:
compaction's Python loops would otherwise take the GIL from the event loop for the second
or so each compaction lasts, and its work would compete with the loop at the same priority.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

# The lowest priority from the start (the imports included), yet one that always progresses
# (SCHED_IDLE could starve a compaction for as long as the server is busy, and the journal
# would grow all that time). And one polars thread: a thread per core would take the
# server's cores from it (set before polars is imported).
os.nice(19)
os.environ["POLARS_MAX_THREADS"] = "1"


def _idle_io() -> None:
    """Put this process's disk I/O in the idle class (Linux `ioprio_set`), where the disk
    serves it only when nothing else waits: the server's fsyncs go first. Elsewhere, or
    where the kernel refuses, it stays best-effort."""
    import ctypes

    who_process, idle_class, class_shift = 1, 3, 13  # IOPRIO_WHO_PROCESS, IOPRIO_CLASS_IDLE
    numbers = {"x86_64": 251, "aarch64": 30}  # __NR_ioprio_set
    number = numbers.get(os.uname().machine)
    if number is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(number, who_process, 0, idle_class << class_shift)
    except (OSError, AttributeError):
        pass


_idle_io()

from serving.eventlog import compact  # noqa: E402 (after the settings above)


def main(argv: list[str]) -> None:
    """Compact the segments `argv[1:]` of the log directory `argv[0]`; print the report."""
    report = compact(argv[0], [Path(p) for p in argv[1:]])
    print(json.dumps(dataclasses.asdict(report)))


if __name__ == "__main__":
    main(sys.argv[1:])
