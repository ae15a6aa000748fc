"""What compacting the journal costs a server under load, and what starting the compactor costs.

Two measurements, each beside its reference in the same run:

* the event loop's longest stall while the server starts a process (``python -c pass``), with
  the embedded defaults' corpus and models loaded in this process: through the event loop's
  own subprocess support (uvloop forks the whole process before it execs) against
  `subprocess.Popen` waited for on a thread (what the server does: it execs without copying
  the process);
* searches by corpus id (searched before) at concurrency 8 for `--seconds`, on a server that
  compacts as configured by default (every 50,000 records) and on one whose compactions are
  put off past the run (the reference): the mean rate, the median and lowest rate of 0.5 s
  windows, and the share of windows below three quarters of the reference's median.

Run: python -m benchmarks.serving_compaction [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serving import _connection, free_port, json_request, load, process

_WINDOW = 0.5
_NO_COMPACTION = """
[log]
compact_records = 1000000000
compact_seconds = 1000000
"""


async def _longest_stall(start: Callable[[], Awaitable[None]]) -> float:
    """The longest gap between two turns of the loop while `start()` runs to its end."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    await start()
    stop.set()
    await task
    return max(gaps)


async def _spawn_stalls(rounds: int) -> dict[str, list[float]]:
    command = [sys.executable, "-c", "pass"]

    async def through_loop() -> None:
        child = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await child.communicate()

    async def through_popen() -> None:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        await asyncio.to_thread(child.communicate)

    stalls: dict[str, list[float]] = {"loop": [], "popen": []}
    await _longest_stall(through_popen)  # the thread pool's first thread, unmeasured
    for _ in range(rounds):
        stalls["loop"].append(await _longest_stall(through_loop))
        stalls["popen"].append(await _longest_stall(through_popen))
    return stalls


def _windows(port: int, requests: list[bytes], seconds: float) -> dict[str, Any]:
    answers: list[tuple[float, float, int]] = []

    async def run() -> None:
        until = time.perf_counter() + seconds
        counter = itertools.count()
        await asyncio.gather(
            *(_connection(port, requests, counter, until, answers, None) for _ in range(8))
        )

    began = time.perf_counter()
    asyncio.run(run())
    done = np.array([answered - began for _, answered, _ in answers])
    latency = np.array([answered - sent for sent, answered, _ in answers]) * 1000
    edges = np.arange(0.0, seconds + _WINDOW / 2, _WINDOW)
    rates = np.histogram(done, edges)[0] / _WINDOW
    return {
        "mean": len(done) / seconds,
        "median": float(np.median(rates)),
        "lowest": float(rates.min()),
        "rates": rates.tolist(),
        "p99": float(np.percentile(latency, 99)),
        "errors": float(sum(status != 200 for _, _, status in answers)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving_compaction", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per server")
    parser.add_argument("--rounds", type=int, default=5, help="process starts each way")
    args = parser.parse_args(argv)
    import uvloop

    from rankers import corpus as corpora
    from serving.app import create_app

    create_app()  # the corpus and both models, as a server holds them
    stalls = uvloop.run(_spawn_stalls(args.rounds))
    print(f"the event loop's longest stall while starting a process ({args.rounds} starts each):")
    for key, label in (("loop", "the loop's subprocess support"), ("popen", "subprocess.Popen")):
        ms = [s * 1000 for s in stalls[key]]
        print(f"  {label:<30} median {statistics.median(ms):6.2f} ms, most {max(ms):6.2f} ms")

    corpus = corpora.load("emoji")
    ids = [corpus.ids[i] for i in np.random.default_rng(0).permutation(len(corpus))]
    by_id = [
        json_request("/search", {"corpus_id": doc, "unit_id": f"bench-{i % 5000}"})
        for i, doc in enumerate(ids)
    ]
    # The logs go to the working directory's disk (a tmpfs /tmp would make fsync free).
    Path(".cache").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-compaction-", dir=".cache"))
    results = {}
    try:
        deferred = work / "deferred.toml"
        defaults = Path(__file__).parent.parent / "serving" / "defaults.toml"
        deferred.write_text(defaults.read_text(encoding="utf-8") + _NO_COMPACTION)
        for label, extra in (("compacting", []), ("deferred", ["--config", str(deferred)])):
            port = free_port()
            server = [
                sys.executable, "-m", "serving", "--port", str(port),
                "--log-dir", str(work / f"logs-{label}"), *extra,
            ]  # fmt: skip
            parts = work / f"logs-{label}" / "impressions"
            with process(server, port, work / f"{label}.log"):
                load(port, by_id, 64, 60.0, warmup=0.0, limit=len(by_id))  # fill the cache
                before = len(list(parts.glob("part-*.parquet")))
                results[label] = _windows(port, by_id, args.seconds)
                # Each compaction writes one impressions part (counted before shutdown's).
                results[label]["compactions"] = len(list(parts.glob("part-*.parquet"))) - before
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = results["deferred"]["median"]
    print(f"searches by id (searched before), concurrency 8, {args.seconds:g} s each:")
    for label, name in (
        ("compacting", "compacting every 50,000 records"),
        ("deferred", "compactions put off (reference)"),
    ):
        r = results[label]
        low = sum(rate < 0.75 * reference for rate in r["rates"]) / len(r["rates"])
        print(
            f"  {name:<34} mean {r['mean']:6.0f} req/s, median window {r['median']:6.0f}, "
            f"lowest {r['lowest']:6.0f}, windows under 75% of the reference's median {low:4.0%}, "
            f"p99 {r['p99']:5.2f} ms, errors {r['errors']:.0f}, compactions {r['compactions']:.0f}"
        )
    share = results["compacting"]["mean"] / results["deferred"]["mean"]
    print(f"  compacting keeps {share:.0%} of the reference's mean rate")


if __name__ == "__main__":
    main()
