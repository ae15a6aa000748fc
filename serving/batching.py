"""Micro-batching: concurrent requests' items run as one call on a worker thread.

Embedding one image at a time wastes most of a model's throughput; concurrent uploads are
therefore gathered into one call. `MicroBatcher.submit` queues an item and awaits its result.
A drain task takes up to `max_batch` queued items, waiting at most `max_wait` seconds for a
batch to fill (zero: take what is queued), runs the batch function on the batcher's own
executor, and hands each caller its result. Items that arrive while a batch runs form the
next batch without waiting, so under load batches grow by themselves and at low load the
added latency is at most `max_wait`.

If the batch function raises, each item of the batch is retried alone, so one bad item fails
only its own caller.

`item_seconds` is the recent wall time of a call per item it held (a moving average over
calls, the latest weighted most): the server multiplies it by the work in flight to refuse an
upload that would wait past its deadline, rather than queue it to time out. Failing calls are
timed too; each call counts for at most `max_item_seconds` an item (a stall past the callers'
deadline says no more than that they timed out); and while the batcher is idle, what the
estimate holds over the fastest call seen (per item, of calls that succeeded within that cap)
halves every `IDLE_HALF_LIFE` seconds: one slow spell does not keep uploads out for good, and
a long rest does not let in more than the model at its best could serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

__all__ = ["IDLE_HALF_LIFE", "MicroBatcher"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_WEIGHT = 0.2
"""The weight of the latest call in `item_seconds` (about the last five calls count)."""

IDLE_HALF_LIFE = 5.0
"""Seconds without a call running over which `item_seconds`' excess over the fastest call
halves."""


class MicroBatcher(Generic[T, R]):
    """Gathers items submitted concurrently on one event loop into batched calls."""

    __slots__ = (
        "_batches",
        "_busy",
        "_clock",
        "_executor",
        "_fastest",
        "_fn",
        "_full",
        "_idle_since",
        "_item_seconds",
        "_items",
        "_max_batch",
        "_max_item_seconds",
        "_max_wait",
        "_observe",
        "_queue",
        "_task",
        "_timed",
    )

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Sequence[R]],
        *,
        executor: Executor,
        max_batch: int = 16,
        max_wait: float = 0.002,
        observe: Callable[[int], None] | None = None,
        max_item_seconds: float = float("inf"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Configure the batcher.

        Args:
            fn: Runs a batch on a worker thread; returns one result per item, in order.
            executor: Where `fn` runs.
            max_batch: Most items per call.
            max_wait: Seconds the first item of a batch waits for others (0: never waits).
            observe: Called with each batch's size (metrics).
            max_item_seconds: Most seconds an item of one call counts for in `item_seconds`.
            clock: Monotonic seconds, for the timing and the idle decay (tests pass a fake).
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        if not max_item_seconds > 0:
            raise ValueError(f"max_item_seconds must be > 0, got {max_item_seconds}")
        self._fn = fn
        self._executor = executor
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._observe = observe
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._batches = 0
        self._items = 0
        self._max_item_seconds = max_item_seconds
        self._clock = clock
        self._item_seconds = 0.0
        self._timed = False  # a call has ended: `_item_seconds` holds a figure
        self._fastest = 0.0  # per item, of a call that succeeded within the cap (0.0: none)
        self._busy = 0
        self._idle_since = clock()

    @property
    def batches(self) -> int:
        """Calls made so far."""
        return self._batches

    @property
    def items(self) -> int:
        """Items processed so far."""
        return self._items

    @property
    def item_seconds(self) -> float:
        """Recent wall seconds of a call per item in it (0.0 before the first call ends).

        While no call runs, its excess over the fastest call that succeeded (0.0 before one
        has) halves for every `IDLE_HALF_LIFE` seconds since the last call ended.
        """
        estimate, floor = self._item_seconds, self._fastest
        if self._busy or estimate <= floor:
            return estimate
        idle = max(self._clock() - self._idle_since, 0.0)
        return floor + (estimate - floor) * math.exp2(-idle / IDLE_HALF_LIFE)

    async def submit(self, item: T) -> R:
        """Queue `item` and wait for its result (the batch function's exception, if it failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._full is None:
            self._full = asyncio.Event()
        if len(self._queue) >= self._max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        assert self._full is not None
        loop = asyncio.get_running_loop()
        waited = False
        while self._queue:
            if not waited and self._max_wait > 0 and len(self._queue) < self._max_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_wait)
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            if len(self._queue) < self._max_batch:
                self._full.clear()
            # Items queued while this batch runs have waited already: run them straight after.
            waited = True
            live = [(item, future) for item, future in batch if not future.done()]
            if not live:
                continue
            items = [item for item, _ in live]
            self._batches += 1
            self._items += len(items)
            if self._observe is not None:
                self._observe(len(items))
            try:
                results = await self._call(loop, items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"batch function returned {len(results)} results for {len(items)} items"
                    )
            except Exception as error:
                if len(live) == 1:
                    _fail(live[0][1], error)
                    continue
                logger.debug("a batch of %d failed; retrying its items alone", len(live))
                for item, future in live:
                    try:
                        (result,) = await self._call(loop, [item])
                    except Exception as single_error:
                        _fail(future, single_error)
                    else:
                        if not future.done():
                            future.set_result(result)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _call(self, loop: asyncio.AbstractEventLoop, items: list[T]) -> Sequence[R]:
        """Run the batch function on the executor, timing the call whether or not it fails."""
        self._item_seconds = self.item_seconds  # the decay of the idle spell now ending
        self._busy += 1
        started = self._clock()
        succeeded = False
        try:
            results = await loop.run_in_executor(self._executor, self._fn, items)
            succeeded = True
            return results
        finally:
            ended = self._clock()
            self._busy -= 1
            self._idle_since = ended
            taken = (ended - started) / len(items)
            per_item = min(taken, self._max_item_seconds)
            if succeeded and taken <= self._max_item_seconds:
                self._fastest = min(self._fastest or taken, taken)
            if not self._timed:
                self._item_seconds, self._timed = per_item, True
            else:
                self._item_seconds += _WEIGHT * (per_item - self._item_seconds)


def _fail(future: asyncio.Future[R], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
