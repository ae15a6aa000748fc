"""Serving cost per request in-process: the app's own work, without sockets or HTTP parsing.

The real app (embedded defaults: emoji corpus, effnet-lite0 against effnet-lite2, fsynced
journal on the working directory's disk) and, as the reference, a bare Litestar app whose
POST /search returns the same JSON are driven through ASGI directly, on uvloop: each of
`--concurrency` tasks sends its next search (a corpus id, for one of 5,000 units) when the
last is answered. One unmeasured pass over every corpus id fills the ranking cache first, so
this is the searched-before case; each point is then repeated with every search a new
unit's (its assignment logged, its page drafted anew), and on an app whose journal is never
fsynced (``log.fsync = false``, a setting for benchmarks): what waiting for each fsync costs
the loop's CPU besides the wait. CPU seconds per request are the
process's, all threads. Last, memory: the bytes a server keeps per new unit for good (its
assignment and its live figures), measured with tracemalloc on a second app whose bounded
caches are kept small, beside the size of the unit's id itself.
`benchmarks.serving` measures the same over real sockets.

Run: python -m benchmarks.serving_inprocess [--requests 20000] [--concurrency 8 64]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any


async def _drive(app: Any, bodies: Sequence[bytes], requests: int, concurrency: int) -> float:
    """CPU microseconds per request for `requests` searches, `concurrency` at a time."""
    turns = iter(range(requests))
    failed = 0

    async def one(body: bytes) -> None:
        nonlocal failed
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/search", "raw_path": b"/search",
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000), "state": {},
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(body))],
        }  # fmt: skip
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # no disconnect while the answer is pending
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal failed
            if message["type"] == "http.response.start" and message["status"] != 200:
                failed += 1

        await app(scope, receive, send)

    async def worker() -> None:
        for turn in turns:
            await one(bodies[turn % len(bodies)])

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failed:
        raise RuntimeError(f"{failed} searches failed")
    return (time.process_time() - started) / requests * 1e6


async def _lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, str]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, inbox.get, outbox.put))
    if (await outbox.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    return inbox, task


async def _main(requests: int, concurrencies: Sequence[int], work: Path) -> None:
    from litestar import Litestar, Response, post

    from rankers import corpus as corpora
    from serving.app import create_app
    from serving.config import default_config
    from serving.engine import _ROUTES as engine_routes

    corpus = corpora.load("emoji")
    bodies = [
        json.dumps({"corpus_id": doc, "unit_id": f"bench-{i % 5000}"}).encode()
        for i, doc in enumerate(corpus.ids)
    ]
    app = create_app(default_config().with_overrides(log_dir=work / "logs"))
    inbox, life = await _lifespan(app)
    gc.collect()
    gc.freeze()  # as the server does after start-up
    await _drive(app, bodies, len(bodies), 64)  # every id once: the ranking cache is full
    payload = b""

    async def capture(message: dict[str, Any]) -> None:
        nonlocal payload
        payload += message.get("body", b"")

    await app(
        {"type": "http", "method": "POST", "path": "/search", "raw_path": b"/search",
         "root_path": "", "query_string": b"", "scheme": "http", "http_version": "1.1",
         "headers": [(b"content-type", b"application/json")], "state": {}},
        _once(bodies[0]), capture,
    )  # fmt: skip

    @post("/search", status_code=200, signature_namespace={"Response": Response})
    async def bare_search() -> Response[bytes]:
        return Response(payload, media_type="application/json")

    bare = Litestar(route_handlers=[bare_search], logging_config=None)
    print(f"{requests:,} searches by corpus id per point, searched before; CPU per request")
    for n, concurrency in enumerate(concurrencies):
        ours = await _drive(app, bodies, requests, concurrency)
        reference = await _drive(bare, bodies, requests, concurrency)
        new = await _drive(app, _new_units(corpus.ids, requests, f"new{n}"), requests, concurrency)
        print(
            f"concurrency {concurrency:>3}: the app {ours:6.1f} us ({new:6.1f} us for new units), "
            f"the bare Litestar handler {reference:5.1f} us ({ours / reference:.1f}x, "
            f"{new / reference:.1f}x)"
        )
    await inbox.put({"type": "lifespan.shutdown"})
    await life

    # The same with the journal's records written but never fsynced (`log.fsync = false`):
    # what the wait for each fsync costs the loop, besides the time it waits.
    config = default_config().with_overrides(log_dir=work / "logs-unsynced")
    app = create_app(replace(config, log=replace(config.log, fsync=False)))
    inbox, life = await _lifespan(app)
    gc.collect()
    gc.freeze()  # its start-up heap too, as the first app's
    await _drive(app, bodies, len(bodies), 64)
    for concurrency in concurrencies:
        unsynced = await _drive(app, bodies, requests, concurrency)
        print(
            f"concurrency {concurrency:>3}, records never fsynced: the app {unsynced:6.1f} us "
            "(searched before)"
        )
    await inbox.put({"type": "lifespan.shutdown"})
    await life

    # Memory kept per unit: caches bounded by the limits kept small, so what grows is the rest.
    config = default_config().with_overrides(log_dir=work / "logs-memory")
    small = replace(config.limits, live_impressions=1_000, drafted_pages=1_000)
    app = create_app(replace(config, limits=small))
    inbox, life = await _lifespan(app)
    await _drive(app, _new_units(corpus.ids, 5_000, "warm"), 5_000, 8)  # bounded caches full
    units = _new_units(corpus.ids, min(requests, 20_000), "kept")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await _drive(app, units, len(units), 8)
    gc.collect()
    kept = (tracemalloc.get_traced_memory()[0] - before) / len(units)
    tracemalloc.stop()
    unit_id = json.loads(units[-1])["unit_id"]

    print(
        f"memory kept per new unit after {len(units):,} of them: {kept:,.0f} bytes "
        f"(its id alone, {unit_id!r}: {sys.getsizeof(unit_id)} bytes; an upper bound: it "
        f"includes the routes memo, cleared at {engine_routes:,} units)"
    )
    await inbox.put({"type": "lifespan.shutdown"})
    await life


def _new_units(ids: Sequence[str], count: int, prefix: str) -> list[bytes]:
    """`count` searches over the corpus ids, each by a unit not seen before."""
    return [
        json.dumps({"corpus_id": ids[i % len(ids)], "unit_id": f"{prefix}-{i:09d}"}).encode()
        for i in range(count)
    ]


def _once(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving_inprocess", description=__doc__
    )
    parser.add_argument("--requests", type=int, default=20_000, help="searches per point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    args = parser.parse_args(argv)
    import uvloop

    Path(".cache").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-inprocess-", dir=".cache"))
    try:
        uvloop.run(_main(args.requests, args.concurrency, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
