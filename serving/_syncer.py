"""The journal's fsync process: makes the journal's writes durable without holding the GIL.

`serving.eventlog.Journal` writes on the server's event loop and asks this process, over a
Unix socket pair, to fdatasync the active segment. A thread could do the fdatasync, but it
needs the GIL to start and to report, and a busy event loop keeps it waiting: commits then
happen only when the loop has nothing else to do, and requests wait in lockstep behind them.
A separate process has its own interpreter, so each fsync starts the moment it is asked for.

Protocol (SOCK_SEQPACKET, one message each):

* request: the group number to make durable (``<Q``), with the descriptors of the segments
  the journal opened since the last request attached, oldest first (the first request
  carries the first segment's). The current segment and every attached one but the last are
  synced and closed, in order, and the last becomes the current one: every segment written
  to is synced, whatever number of rotations happened between two requests.
* answer: ``<QId``: the group number, 0 or the errno of a failed fdatasync, and the seconds it
  took.

The process exits when the journal closes its end (or its server dies). It imports only the
standard library and runs with ``python -I -S``, so it starts in milliseconds.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

REQUEST = struct.Struct("<Q")
ANSWER = struct.Struct("<QId")
MAX_FDS = 64
"""The most descriptors one request carries (rotations between two requests, plus one)."""


def serve(channel: socket.socket) -> None:
    """Answer sync requests until the other end closes."""
    current = -1
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(channel, REQUEST.size, MAX_FDS)
        except OSError:
            return
        if not data:
            return
        (group,) = REQUEST.unpack(data)
        started = time.perf_counter()
        error = 0
        if fds:
            retired = ([current] if current >= 0 else []) + fds[:-1]
            current = fds[-1]
            for fd in retired:  # older segments' last groups, before the newer ones'
                try:
                    if not error:
                        os.fdatasync(fd)
                except OSError as failure:
                    error = failure.errno or -1
                finally:
                    os.close(fd)
        if not error:
            try:
                os.fdatasync(current)
            except OSError as failure:
                error = failure.errno or -1
        try:
            channel.send(ANSWER.pack(group, error, time.perf_counter() - started))
        except OSError:
            return


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
