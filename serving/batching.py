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
upload that would wait past its deadline, rather than queue it to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_WEIGHT = 0.2
"""The weight of the latest call in `item_seconds` (about the last five calls count)."""


class MicroBatcher(Generic[T, R]):
    """Gathers items submitted concurrently on one event loop into batched calls."""

    __slots__ = (
        "_batches",
        "_executor",
        "_fn",
        "_full",
        "_item_seconds",
        "_items",
        "_max_batch",
        "_max_wait",
        "_observe",
        "_queue",
        "_task",
    )

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Sequence[R]],
        *,
        executor: Executor,
        max_batch: int = 16,
        max_wait: float = 0.002,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        """Configure the batcher.

        Args:
            fn: Runs a batch on a worker thread; returns one result per item, in order.
            executor: Where `fn` runs.
            max_batch: Most items per call.
            max_wait: Seconds the first item of a batch waits for others (0: never waits).
            observe: Called with each batch's size (metrics).
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
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
        self._item_seconds = 0.0

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
        """Recent wall seconds of a call per item in it (0.0 before the first call ends)."""
        return self._item_seconds

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
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._fn, items)
                self._timed(started, len(items))
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
                        (result,) = await loop.run_in_executor(self._executor, self._fn, [item])
                    except Exception as single_error:
                        _fail(future, single_error)
                    else:
                        if not future.done():
                            future.set_result(result)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _timed(self, started: float, items: int) -> None:
        per_item = (time.perf_counter() - started) / items
        if self._item_seconds == 0.0:
            self._item_seconds = per_item
        else:
            self._item_seconds += _WEIGHT * (per_item - self._item_seconds)


def _fail(future: asyncio.Future[R], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
