"""Compact sealed journal segments in a process of its own (what the server runs).

``python -m serving._compactor LOGDIR SEGMENT...`` runs `serving.eventlog.compact` at low
priority and prints its report as JSON. The server runs it this way rather than on a thread:
compaction's Python loops would otherwise take the GIL from the event loop for the second
or so each compaction lasts, and its work would compete with the loop at the same priority.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from serving.eventlog import compact


def main(argv: list[str]) -> None:
    """Compact the segments `argv[1:]` of the log directory `argv[0]`; print the report."""
    os.nice(10)
    report = compact(argv[0], [Path(p) for p in argv[1:]])
    print(json.dumps(dataclasses.asdict(report)))


if __name__ == "__main__":
    main(sys.argv[1:])
