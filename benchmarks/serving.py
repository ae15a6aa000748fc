"""Serving speed: requests per second and p50/p99 latency of `POST /search`, beside references.

Measured in one run, each server alone on the machine (one uvicorn worker each):

* search by corpus id (no embedding: each ranker's list, the team draft, an fsynced log
  write) on the embedded defaults (emoji corpus, effnet-lite0 vs effnet-lite2), three ways:
  cold, every request the first query of its corpus id since the server started (the
  server's ranking cache cannot help; each concurrency gets its own slice of the corpus, and
  a run ends early when its slice is used up): each list is read from the neighbour table
  built with its index, each page drafted, each unit new; then warm, cycling over every id
  after one unmeasured pass has filled the ranking cache (each id is searched by the same
  unit every time, so its page and their encoded results are kept from the pass before:
  only the seed, the record and its fsync are new); then warm again with every search by a
  unit never seen before (its assignment logged; the page kept only where an earlier unit's
  coins fell the same way, at most 64 outcomes of a 12-result team-draft page); and last,
  cold again on a fresh server over copies of the same two indexes without their tables,
  where each list is a graph search (two usearch walks and their rescoring), as for an index
  built with ``--neighbours 0``. The server's own ranking-cache counters, read
  before and after each run, give its hit rate;
* the same over two in-memory static rankers (what serving costs without the rankers' work);
* a bare Litestar endpoint under the same uvicorn settings returning the same JSON (the
  ceiling of the HTTP stack). Each warm point runs in five rounds, each beside a round of
  the bare endpoint (before it, then after, in turn): the share of the bare rate is the
  median of the five rounds' ratios, and their range is printed beside it (the machine's
  speed moves by tens of percent from one second to the next; a single pair of runs can be
  far off). The cold points are set against
  the bare rounds beside the warm ones;
* search by upload (decode, both models embed the image, micro-batched across requests);
* the raw onnxruntime throughput of the two models on 64 x 64 images in this process, each at
  its best batch size from 1 to 32 (chosen once by a sweep, then measured afresh right before
  each upload point, the server idle): an upload needs one embedding from each model, so the
  reference rate is 1 / (1 / rate(lite0) + 1 / rate(lite2)).

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio (a few microseconds a
request), with 1, 8 and 64 connections each sending its next request when the last answer
arrives. Targets on 2 cores: search by id >= 50% of the bare endpoint's throughput with
p99 <= 20 ms at concurrency 8; search by upload >= 80% of the raw model throughput.

Run: python -m benchmarks.serving [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

import numpy as np
from litestar import Litestar, Response, post

_P = ParamSpec("_P")
CONCURRENCY = (1, 8, 64)
_SERVER_WARMUP = 200
"""Corpus ids used to warm the server before the cold runs (and by no cold run)."""
_COLD_SHARES = (0.2, 0.35, 0.45)
"""The share of the other corpus ids each cold run (concurrency 1, 8, 64) may use, once each."""
_ROUNDS = 5
"""Rounds of each warm point, each paired with a bare one right next to it (`_paired`)."""
_ROUND_WARMUP = 0.2
"""Seconds at the start of each round not counted (its connections opening)."""
_NEWCOMER_RATE = 15_000
"""Requests per second the new-unit points are given searches for (above any rate seen here):
each point runs `_ROUNDS` rounds of the server of seconds / `_ROUNDS` plus a warm-up each."""

_STATIC_CONFIG = """
[server]
log_dir = {logs}

[corpus]
name = "emoji"

[rankers.lite0]
kind = "static"
seed = 1

[rankers.lite2]
kind = "static"
seed = 2

[[experiments]]
id = "lite0-vs-lite2"
rankers = ["lite0", "lite2"]
page_size = 12
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(args: Sequence[str], port: int, log: Path) -> Iterator[None]:
    """Run a server process until the block ends; wait for it to accept connections."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # a first start may build indexes
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- load generator -------------------------------------------------------------------------


async def _connection(
    port: int,
    bodies: Sequence[bytes],
    counter: Iterator[int],
    until: float,
    answers: list[tuple[float, float, int]],
    limit: int | None,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            now = time.perf_counter()
            if now >= until:
                return
            number = next(counter)
            if limit is not None and number >= limit:
                return
            writer.write(bodies[number % len(bodies)])
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, retry_after = 0, 0.0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                elif line[:12].lower() == b"retry-after:":
                    retry_after = float(line[12:])
            await reader.readexactly(length)
            done = time.perf_counter()
            answers.append((now, done, status))
            if status == 503 and retry_after:  # as a well-behaved client does
                await asyncio.sleep(min(retry_after, until - done))
    finally:
        writer.close()


@dataclass(frozen=True, slots=True)
class Run:
    """The answers one closed-loop run counted: `served` with status 200 (their latencies
    `ms`), `errors` others, over `seconds` measured."""

    served: int
    errors: int
    seconds: float
    ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.served / self.seconds if self.seconds > 0 else 0.0


def summary(runs: Sequence[Run]) -> dict[str, float]:
    """The figures of `runs` taken together: requests per second over their summed time, the
    latency percentiles of all their answers."""
    seconds = sum(run.seconds for run in runs)
    ms = np.concatenate([run.ms for run in runs]) if runs else np.array([])
    ms = ms if ms.size else np.array([np.nan])
    served = sum(run.served for run in runs)
    errors = sum(run.errors for run in runs)
    return {
        "rps": served / seconds if seconds > 0 else 0.0,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "n": float(served + errors),
        "errors": float(errors),
    }


def run_load(
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    seconds: float,
    counter: Iterator[int] | None = None,
    *,
    warmup: float = 0.5,
    limit: int | None = None,
) -> Run:
    """Closed-loop load: `concurrency` connections for `seconds` (after a `warmup`).

    The connections take requests in turn from `counter` (shared across runs when given), so
    no request is sent twice while the pool lasts. With `limit`, no request numbered `limit`
    or more is sent: the run ends when they are used up.

    The rate counts the answers that arrive between the end of the warm-up and the end of the
    run (the last answer, when `limit` ends it first), whenever their requests were sent: a
    closed loop whose answers take 0.6 s (64 uploads in flight) would otherwise credit the
    server's first 0.6 s of work to the warm-up and undercount a 5 s run by a tenth. Latencies
    are those of the same answers. Only answers with status 200 count towards the rate and
    the latencies (a refusal, 503 for an upload the models are too busy for, is quick and
    served nothing); `errors` counts the others. A connection refused with 503 waits the
    Retry-After it was given before it sends again, as a well-behaved client does.
    """
    answers: list[tuple[float, float, int]] = []  # (sent, answered, status)
    counter = counter if counter is not None else itertools.count()

    async def run() -> tuple[float, float]:
        begin = time.perf_counter()
        until = begin + warmup + seconds
        await asyncio.gather(
            *(
                _connection(port, requests, counter, until, answers, limit)
                for _ in range(concurrency)
            )
        )
        return begin + warmup, until

    start, until = asyncio.run(run())
    last = max((done for _, done, _ in answers), default=until)
    end = until if last >= until else last  # a limited run may end before `until`
    counted = [(sent, done, status) for sent, done, status in answers if start <= done <= end]
    served = [done - sent for sent, done, status in counted if status == 200]
    return Run(
        served=len(served),
        errors=len(counted) - len(served),
        seconds=max(end - start, 0.0),
        ms=np.array(served) * 1000,
    )


def _summarised(run: Callable[_P, Run]) -> Callable[_P, dict[str, float]]:
    def summarised(*args: _P.args, **options: _P.kwargs) -> dict[str, float]:
        return summary([run(*args, **options)])

    summarised.__doc__ = f"`{run.__name__}`, summarised (see `summary`)."
    return summarised


load = _summarised(run_load)
"""Closed-loop load (`run_load`), summarised: rps, p50 and p99 (ms), n and errors."""


def json_request(path: str, payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def upload_request(image: bytes, unit: str) -> bytes:
    boundary = "braidbenchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="unit_id"\r\n\r\n{unit}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return (
        f"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- the bare reference server --------------------------------------------------------------


def bare_server(port: int, payload_file: str) -> None:
    """A Litestar app whose POST /search returns a fixed search response (same uvicorn setup)."""
    import uvicorn

    payload = Path(payload_file).read_bytes()

    @post("/search", status_code=200)
    async def search() -> Response[bytes]:
        return Response(payload, media_type="application/json")

    app = Litestar(route_handlers=[search], logging_config=None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the raw model reference ----------------------------------------------------------------


class ModelReference:
    """The raw onnxruntime throughput of the default models, measured in this process.

    Each model's batch size (1 to 32) is chosen once by a sweep: small batches are often
    faster per image here (Lite2's activations at batch 32 outgrow the caches), so the
    reference is the best of them, not one fixed size. `measure` then times both models at
    those sizes afresh: the best of six noisy sweep figures overstates its batch size's rate
    (the winner of a noisy race is the one that was lucky), and a measurement made right
    before each upload point is paired with it, as the bare endpoint is with each search.
    """

    def __init__(self, images: np.ndarray, seconds: float) -> None:
        from rankers import models

        self.images = images
        self.chosen: dict[str, tuple[Any, int, float]] = {}
        for name in ("effnet-lite0", "effnet-lite2"):
            embedder = models.load_embedder(name)
            swept, batch = max(
                (self._rate(embedder, b, seconds / 3), b) for b in (1, 2, 4, 8, 16, 32)
            )
            self.chosen[name] = (embedder, batch, swept)

    def _rate(self, embedder: Any, batch: int, duration: float) -> float:
        images = self.images
        embedder.embed(images[:batch], batch_size=batch)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration:
            embedder.embed(images[done % (len(images) - batch) :][:batch], batch_size=batch)
            done += batch
        return done / (time.perf_counter() - started)

    def measure(self, seconds: float) -> dict[str, float]:
        """Each model's images/s at its chosen batch size, and ``"query"``: queries/s when
        each query needs one embedding from each model."""
        rates = {
            name: self._rate(embedder, batch, seconds)
            for name, (embedder, batch, _) in self.chosen.items()
        }
        rates["query"] = 1 / sum(1 / rate for rate in rates.values())
        return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per point")
    parser.add_argument(
        "--bare-server", nargs=2, metavar=("PORT", "PAYLOAD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.bare_server:
        bare_server(int(args.bare_server[0]), args.bare_server[1])
        return
    from PIL import Image

    from rankers import corpus as corpora

    corpus = corpora.load("emoji")
    rng = np.random.default_rng(0)
    ids = [corpus.ids[i] for i in rng.permutation(len(corpus))]
    by_id = [
        json_request("/search", {"corpus_id": doc, "unit_id": f"bench-{i % 5000}"})
        for i, doc in enumerate(ids)
    ]
    # Every upload is a different image (a unique corner stamp), so no request is served from
    # the lists cached for an earlier upload's later pages: each one is embedded.
    pngs = []
    for i in range(6000):
        pixels = np.array(corpus.image(ids[i % len(ids)]))
        pixels[0, :3] = (i % 256, i // 256 % 256, 7)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    uploads = [upload_request(png, f"bench-{i}") for i, png in enumerate(pngs)]
    del pngs

    # The logs go to the working directory's disk (a tmpfs /tmp would make fsync free).
    Path(".cache").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-", dir=".cache"))
    try:
        _measure(work, by_id, uploads, corpus, ids, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(
    work: Path,
    by_id: Sequence[bytes],
    uploads: Sequence[bytes],
    corpus: Any,
    ids: Sequence[str],
    seconds: float,
) -> None:
    results: dict[str, dict[int, dict[str, float]]] = {
        "cold": {},
        "warm": {},
        "newcomers": {},
        "graph": {},
        "static": {},
        "bare": {},
        "bare, new units": {},
        "upload": {},
    }
    references: dict[int, dict[str, float]] = {}
    port = free_port()
    server = [sys.executable, "-m", "serving", "--port", str(port), "--log-dir", str(work / "logs")]
    bare_port = free_port()
    bare = [
        sys.executable, "-m", "benchmarks.serving", "--bare-server", str(bare_port),
        str(work / "payload.json"),
    ]  # fmt: skip
    with process(server, port, work / "server.log"):
        # Warm the server itself (first-request paths) on ids no cold run uses.
        load(port, by_id[:_SERVER_WARMUP], 8, seconds, warmup=0.0, limit=_SERVER_WARMUP)
        # One real answer, for the bare server to return.
        (work / "payload.json").write_bytes(asyncio.run(_one(port, by_id[0])))
        results["cold"] = _cold_runs(port, by_id, seconds)
        # Fill the ranking cache with every id (unmeasured), then cycle over them all.
        load(port, by_id, 64, 60.0, warmup=0.0, limit=len(by_id))
        # The bare endpoint is measured right before each warm point (the other server idle),
        # so both see the same load from anything else running on the machine.
        # The same ids searched by units never seen before, each request its own.
        newcomers = [
            json_request("/search", {"corpus_id": ids[i % len(ids)], "unit_id": f"new-{i}"})
            for i in range(
                int(_NEWCOMER_RATE * len(CONCURRENCY) * (seconds + _ROUNDS * _ROUND_WARMUP))
            )
        ]
        arrivals = itertools.count()
        with process(bare, bare_port, work / "bare.log"):
            for c in CONCURRENCY:
                results["bare"][c], results["warm"][c] = _paired(bare_port, port, by_id, c, seconds)
            # After the warm points, so that their records (two a search: the new unit's
            # assignment) bring no compaction into those. Pages kept by one point's units
            # serve the next point's.
            for c in CONCURRENCY:
                results["bare, new units"][c], results["newcomers"][c] = _paired(
                    bare_port, port, newcomers, c, seconds, arrivals
                )
        health = json.loads(asyncio.run(_one(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")))
        fresh = itertools.count()  # every upload a new image: nothing served from a cache
        frames = np.stack([np.asarray(corpus.image(doc)) for doc in ids[:512]])
        # The searches above filled the journal: let the server compact it (a process of its
        # own) before the reference is timed beside it, or the reference pays for it.
        _settle(port)
        reference = ModelReference(frames, seconds)
        for c in CONCURRENCY:
            _settle(port)  # a compaction every minute: never beside a reference
            references[c] = reference.measure(seconds)
            before = _failures(port)
            results["upload"][c] = load(port, uploads, c, seconds + 2, fresh)
            results["upload"][c]["degraded"] = _failures(port) - before
    # The same experiment over two in-memory static rankers: what serving itself costs.
    static = work / "static.toml"
    static.write_text(_STATIC_CONFIG.format(logs=json.dumps(str(work / "static-logs"))))
    port = free_port()
    server = [sys.executable, "-m", "serving", "--config", str(static), "--port", str(port)]
    with process(server, port, work / "static.log"):
        for c in CONCURRENCY:
            results["static"][c] = load(port, by_id, c, seconds)
    # Cold searches over the same indexes without their neighbour tables: graph searches.
    graph = work / "graph.toml"
    graph.write_text(_graph_config(work, corpus.name))
    port = free_port()
    server = [sys.executable, "-m", "serving", "--config", str(graph), "--port", str(port)]
    with process(server, port, work / "graph.log"):
        load(port, by_id[:_SERVER_WARMUP], 8, seconds, warmup=0.0, limit=_SERVER_WARMUP)
        results["graph"] = _cold_runs(port, by_id, seconds)

    print(f"cores: {os.cpu_count()}, {seconds:g} s per point, logs fsynced per group commit")
    print(f"every server: {_http_stack()}")
    print(
        f"{'endpoint':<22}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'ranker timeouts':>17}{'cache hits':>11}{'requests':>9}"
    )
    for label, key in (
        ("bare Litestar", "bare"),
        ("search by id, cold", "cold"),
        ("search by id, warm", "warm"),
        ("  (bare, beside them)", "bare, new units"),
        ("  (warm, new units)", "newcomers"),
        ("  (cold, no table)", "graph"),
        ("  (static rankers)", "static"),
        ("search by upload", "upload"),
    ):
        for c in CONCURRENCY:
            r = results[key][c]
            hits = f"{r['hit_rate']:>11.0%}" if "hit_rate" in r else f"{'':>11}"
            print(
                f"{label:<22}{c:>5}{r['rps']:>10.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
                f"{r['errors']:>8.0f}{r.get('degraded', 0.0):>17.0f}{hits}{r['n']:>9.0f}"
            )
    print(
        f"group commit: {health['journal_records']:,} records in {health['journal_commits']:,} "
        "fsynced commits during the search-by-id runs"
    )
    print(
        "raw onnxruntime, batch sizes chosen by a sweep: "
        + ", ".join(
            f"{name} batch {batch} ({swept:.0f} images/s in the sweep)"
            for name, (_, batch, swept) in reference.chosen.items()
        )
    )
    for c in CONCURRENCY:
        rates, upload = references[c], results["upload"][c]
        print(
            f"  measured before the uploads at concurrency {c}: "
            + ", ".join(f"{name} {rates[name]:.0f} images/s" for name in reference.chosen)
            + f"; both per query {rates['query']:.1f} queries/s; the server "
            f"{upload['rps']:.1f} uploads/s = {upload['rps'] / rates['query']:.0%}"
        )
    for key, label in (
        ("warm", "warm"),
        ("newcomers", "warm, each search a new unit's"),
    ):
        r = results[key][8]
        print(
            f"search by id, {label}: {r['share']:.0%} of the bare endpoint's throughput at "
            f"concurrency 8 (target >= 50%; the median of {_ROUNDS} rounds each paired with a "
            f"bare one, {r['share_low']:.0%}-{r['share_high']:.0%}), "
            + ", ".join(f"{results[key][c]['share']:.0%} at {c}" for c in CONCURRENCY if c != 8)
            + f"; p99 at concurrency 8: {r['p99']:.1f} ms (target <= 20 ms)"
        )
    for key, label in (("cold", "cold"), ("graph", "cold over indexes without tables")):
        shares = {c: results[key][c]["rps"] / results["bare"][c]["rps"] for c in CONCURRENCY}
        print(
            f"search by id, {label}: {shares[8]:.0%} of the bare endpoint's throughput at "
            "concurrency 8 (its rounds beside the warm points; target >= 50%), "
            + ", ".join(f"{shares[c]:.0%} at {c}" for c in CONCURRENCY if c != 8)
            + f"; p99 at concurrency 8: {results[key][8]['p99']:.1f} ms (target <= 20 ms)"
        )
    if next(arrivals) > len(newcomers):
        print("warning: the new units ran out; some searches were repeats")
    if next(fresh) > len(uploads):
        print("warning: the upload pool ran out; some uploads were repeats")
    # A page served after a ranker timed out is cheaper than a full one: only runs in which
    # no ranker failed count towards the upload figure. The server's best rate is set against
    # the median of the references: the best of three ratios would favour a reference that
    # happened to run slow.
    best, c = max(
        (
            (results["upload"][c]["rps"], c)
            for c in CONCURRENCY
            if not results["upload"][c]["degraded"]
        ),
        default=(0.0, 0),
    )
    middle = float(np.median([references[c]["query"] for c in CONCURRENCY]))
    print(
        f"search by upload: {best:.1f} uploads/s (concurrency {c}, no ranker timeout) = "
        f"{best / middle:.0%} of the raw models' {middle:.1f} queries/s, the median of the "
        "references (target >= 80%)"
    )


def _settle(port: int, most: float = 60.0) -> None:
    """Wait (up to `most` seconds) until the server has sealed its journal's records and no
    compaction process (``serving._compactor``) runs on the machine."""
    deadline = time.monotonic() + most
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    while time.monotonic() < deadline:
        sealed = json.loads(asyncio.run(_one(port, request)))["uncompacted_records"] < 1000
        if sealed and not _compacting():
            return
        time.sleep(0.2)
    print("warning: the server was still compacting its journal; the reference may be low")


def _compacting() -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"serving._compactor" in cmdline.read_bytes():
                return True
        except OSError:  # gone meanwhile
            continue
    return False


def _http_stack() -> str:
    """What uvicorn serves HTTP with here (it picks httptools and uvloop when installed)."""
    import importlib.metadata
    import importlib.util

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio's loop"
    return f"uvicorn {importlib.metadata.version('uvicorn')}, {parser}, {loop}"


def _cold_runs(port: int, by_id: Sequence[bytes], seconds: float) -> dict[int, dict[str, float]]:
    """A run per concurrency, each on its own slice of the ids the warm-up did not use: every
    request is the first search of its corpus id since the server started."""
    runs = {}
    start = _SERVER_WARMUP
    for c, share in zip(CONCURRENCY, _COLD_SHARES, strict=True):
        size = int((len(by_id) - _SERVER_WARMUP) * share)
        cold = by_id[start : start + size]
        start += size
        runs[c] = _search_run(port, cold, c, seconds, warmup=0.0, limit=size)
    return runs


def _graph_config(work: Path, corpus: str) -> str:
    """The embedded defaults' experiment over copies of its two indexes without their
    neighbour tables (the same graphs, vectors and projections)."""
    from rankers import indexing
    from rankers.index import INDEX_FILE, MANIFEST_FILE, PROJECTION_FILE, VECTORS_FILE

    rankers = []
    for name, model in (("lite0", "effnet-lite0"), ("lite2", "effnet-lite2")):
        source, target = indexing.index_dir(model, corpus), work / f"{model}-no-table"
        target.mkdir()
        for file in (INDEX_FILE, VECTORS_FILE, PROJECTION_FILE):
            if (source / file).exists():
                shutil.copyfile(source / file, target / file)
        manifest = json.loads((source / MANIFEST_FILE).read_text(encoding="utf-8"))
        manifest["settings"]["neighbours"] = 0
        manifest["neighbours_bytes"], manifest["neighbours_sha256"] = 0, ""
        (target / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
        rankers.append(
            f"[rankers.{name}]\nmodel = {json.dumps(model)}\nthreads = 2\n"
            f"index = {json.dumps(str(target))}\n"
        )
    return (
        f"[server]\nlog_dir = {json.dumps(str(work / 'graph-logs'))}\n\n"
        f"[corpus]\nname = {json.dumps(corpus)}\n\n" + "\n".join(rankers) + "\n"
        '[[experiments]]\nid = "lite0-vs-lite2"\nrankers = ["lite0", "lite2"]\npage_size = 12\n'
    )


def _search_run(
    port: int, requests: Sequence[bytes], concurrency: int, seconds: float, **options: Any
) -> dict[str, float]:
    """`load`, with the ranker failures and the ranking cache's hit rate during the run."""
    before = _counters(port)
    result = load(port, requests, concurrency, seconds, **options)
    return result | _server_figures(before, _counters(port))


def _paired(
    bare_port: int,
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    seconds: float,
    counter: Iterator[int] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """The bare endpoint and the server in turn, `_ROUNDS` rounds of `seconds / _ROUNDS` each:
    the bare figures and the server's, with its share of the bare endpoint's rate.

    The machine's speed moves by tens of percent from one second to the next here, so one
    bare run and one of the server, each a few seconds long, can be far apart in their ratio.
    Taken in turn, each round of the server is paired with a bare round right next to it (the
    bare one first in even rounds, last in odd ones, so a steady drift does not favour either):
    the share is the median of the rounds' ratios (`share`), and their range (`share_low`,
    `share_high`) shows the noise. The bare endpoint ignores the request bodies; the server's
    come from `counter` when given (each sent once), as in `load`.
    """
    bare: list[Run] = []
    ours: list[Run] = []
    shares: list[float] = []
    before = _counters(port)
    for n in range(_ROUNDS):
        for side in ("bare", "ours") if n % 2 == 0 else ("ours", "bare"):
            if side == "bare":
                bare.append(
                    run_load(
                        bare_port, requests, concurrency, seconds / _ROUNDS, warmup=_ROUND_WARMUP
                    )
                )
            else:
                ours.append(
                    run_load(
                        port,
                        requests,
                        concurrency,
                        seconds / _ROUNDS,
                        counter,
                        warmup=_ROUND_WARMUP,
                    )
                )
        shares.append(ours[-1].rps / bare[-1].rps if bare[-1].rps else 0.0)
    result = summary(ours) | _server_figures(before, _counters(port))
    result |= {
        "share": float(np.median(shares)),
        "share_low": min(shares),
        "share_high": max(shares),
    }
    return summary(bare), result


def _server_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The ranker failures and the ranking cache's hit rate between two `_counters` readings."""
    hits = after["hits"] - before["hits"]
    lookups = hits + after["misses"] - before["misses"]
    return {
        "degraded": after["failures"] - before["failures"],
        "hit_rate": hits / lookups if lookups else 0.0,
    }


def _failures(port: int) -> float:
    """Ranker calls that failed or timed out so far (from the server's metrics)."""
    return _counters(port)["failures"]


def _counters(port: int) -> dict[str, float]:
    """Ranker failures and ranking-cache hits and misses so far (from the server's metrics)."""
    text = asyncio.run(_one(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")).decode()
    out = {"failures": 0.0, "hits": 0.0, "misses": 0.0}
    for line in text.splitlines():
        if line.startswith("braid_ranker_failures_total{"):
            out["failures"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("braid_ranking_cache_hits_total "):
            out["hits"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("braid_ranking_cache_misses_total "):
            out["misses"] = float(line.rsplit(" ", 1)[1])
    return out


async def _one(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"
    )
    body = await reader.readexactly(length)
    writer.close()
    return body


if __name__ == "__main__":
    main()
