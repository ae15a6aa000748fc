"""The search service: routes a search through the experiment engine, runs the rankers,
builds the page, logs durably, then answers. The HTTP layer (`serving.app`) only translates.

One search:

1. The query is a corpus image (by id), an upload (decoded off the event loop, with pixel
   and byte limits) or the query id of an earlier upload (for later pages).
2. The engine routes the unit: an A/B arm's ranker, every ranker of an interleaving
   experiment, or the default ranker when the unit is in no experiment.
3. The rankers run concurrently, each through its own micro-batcher and worker thread, each
   bounded by the ranker timeout; a failed or late ranker's list is None. A corpus image's
   lists are kept in a bounded LRU cache (`serving.caching`; the corpus and indexes do not
   change while the server runs), so a repeated query costs no ranking and no thread hop.
   A ranker holding a corpus image's list ready (`rankers.Precomputed`: an index's neighbour
   table) is read on the event loop instead: a first search costs a lookup, not a search.
4. `serving.pages` builds the page; the assignment (first exposure only) and the impression
   go to the journal, and the answer is sent only once the journal has fsynced them.

Log directory layout (beside the `analysis.schema` folders): ``journal/`` (uncompacted events),
``control.jsonl`` (the engine's events) and ``.lock`` (one server per directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import inspect
import io
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO, cast
from urllib.parse import quote

import msgspec
import numpy as np
import numpy.typing as npt

import interleave
from analysis.schema import (
    Assignment,
    Click,
    Design,
    ExperimentSpec,
    Impression,
    Kind,
    append_experiment,
    read_experiments,
    scan,
)
from rankers.base import Precomputed, Query, Ranker
from rankers.corpus import Corpus
from rankers.images import decode
from serving.api import (
    ClickOut,
    ExperimentOut,
    ExperimentVersionOut,
    Health,
    SearchPage,
    SearchResult,
)
from serving.batching import MicroBatcher
from serving.caching import RankingCache
from serving.config import Config, ExperimentConfig
from serving.engine import Engine, ExperimentState, Route
from serving.errors import (
    ConflictError,
    ExperimentError,
    InvalidRequestError,
    JournalError,
    OverloadedError,
    RankersFailedError,
    UnknownExperimentError,
    UnknownImageError,
    UnknownImpressionError,
    UnknownQueryError,
    UploadTooLargeError,
)
from serving.eventlog import Journal, compact
from serving.figures import LiveFigures, Outcome, compute_figures
from serving.metrics import Metrics
from serving.pages import PageMemo, ShownPage, interleaved_page, single_page

__all__ = ["DEFAULT_PAGE_SIZE", "NO_EXPERIMENT", "SearchService", "UploadedImage"]

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE: Final = 12
"""Results per page for units in no experiment."""

NO_EXPERIMENT: Final = "no_experiment"
"""The `excluded` reason of impressions served outside any experiment."""

_CONTROL: Final = "control.jsonl"
_DEPTH_DEPENDENT: Final = frozenset({"optimized"})
_LOCK: Final = ".lock"
_THUMB: Final = 64
_RESULTS_ENCODER: Final = msgspec.json.Encoder()
_SEARCH_BATCH: Final = 64
"""Most corpus-id queries one ranker call searches at once."""


@dataclass(frozen=True, slots=True)
class UploadedImage:
    """An uploaded image's bytes, as received."""

    data: bytes
    content_type: str | None = None


class _Shown(msgspec.Struct, gc=False):
    """A held impression, its live outcome and its clicked positions.

    Untracked by the garbage collector, like everything it holds (the record, tuples of
    numbers): the server holds up to `live_impressions` of them, and tracked ones made every
    full collection walk them all (60-75 ms each, every half second under load).
    """

    record: Impression
    outcome: Outcome | None
    clicked: tuple[int, ...] = ()


_RankItem = tuple[Query, int]


def _batch_ranker(ranker: Ranker) -> Callable[[Sequence[_RankItem]], list[tuple[str, ...]]]:
    """A function ranking a batch of queries with `ranker`, one call per depth where the ranker
    supports batches; each list without repeats.

    Queries are grouped by depth rather than all run at the deepest one: an approximate
    index's top 12 need not be the first 12 of its top 24, and a page must not depend on
    which other requests shared its batch. A batched index search runs on the calling
    thread only: the rankers of a request already run in parallel. (How the ranker batches is
    looked up once here, not per batch: `inspect.signature` costs microseconds.)
    """
    rank_many = getattr(ranker, "rank_many", None)
    one_thread = callable(rank_many) and "threads" in inspect.signature(rank_many).parameters

    def rank(items: Sequence[_RankItem]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = [()] * len(items)
        for depth in sorted({d for _, d in items}):
            rows = [i for i, (_, d) in enumerate(items) if d == depth]
            queries = [items[i][0] for i in rows]
            if one_thread:
                rankings = rank_many(queries, depth, threads=1)  # type: ignore[misc]
            elif callable(rank_many):
                rankings = rank_many(queries, depth)
            else:
                rankings = [ranker.rank(query, depth) for query in queries]
            for i, ranking in zip(rows, rankings, strict=True):
                out[i] = tuple(dict.fromkeys(ranking.ids))  # once here, never per page
        return out

    return rank


def _decode_upload(data: bytes, max_pixels: int) -> tuple[npt.NDArray[np.uint8], str]:
    image = decode(data, max_pixels=max_pixels, max_bytes=max(len(data), 1))
    digest = hashlib.blake2b(image.data, digest_size=16)
    digest.update(repr(image.shape).encode())
    return image, f"upload:{digest.hexdigest()}"


class _Ids:
    """Unguessable 128-bit hex ids, drawn from the OS's CSPRNG in blocks (one `os.urandom`
    call per id costs tens of microseconds on some virtual machines)."""

    __slots__ = ("_block", "_next")

    def __init__(self) -> None:
        self._block = b""
        self._next = 0

    def new(self) -> str:
        if self._next >= len(self._block):
            self._block, self._next = os.urandom(16 * 256), 0
        start = self._next
        self._next += 16
        return self._block[start : self._next].hex()


class SearchService:
    """Everything one server holds: corpus, rankers, engine, journal, figures and metrics."""

    def __init__(self, config: Config, corpus: Corpus, rankers: Mapping[str, Ranker]) -> None:
        """Wire the parts; nothing is read or written until `open`.

        Args:
            config: The configuration.
            corpus: The corpus served.
            rankers: Every ranker the configuration names, by name.
        """
        missing = sorted(set(config.rankers) - set(rankers))
        if missing:
            raise ValueError(f"rankers lacks configured rankers {missing}")
        self.config = config
        self.corpus = corpus
        self.rankers = dict(rankers)
        self.metrics = Metrics()
        self.figures = LiveFigures()
        self.logdir = Path(config.log.directory)
        self.journal = Journal(
            self.logdir, fsync=config.log.fsync, sync_timeout=config.log.sync_timeout
        )
        self.engine: Engine | None = None
        self._impressions: OrderedDict[str, _Shown] = OrderedDict()
        self._clicks: dict[str, tuple[str, int, asyncio.Future[None] | None]] = {}
        # The units assigned, by (experiment, version): a set of ids each, not a tuple per unit.
        self._assigned: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
        self._lists: OrderedDict[tuple[str, str, int], tuple[str, ...]] = OrderedDict()
        self.rankings = RankingCache(config.limits.ranking_cache)
        self.metrics.watch(self.rankings)
        self._specs: set[tuple[str, int]] = set()
        self._png: OrderedDict[tuple[str, bool], bytes] = OrderedDict()
        self._executors: list[ThreadPoolExecutor] = []
        self._batchers: dict[tuple[str, bool], MicroBatcher[_RankItem, tuple[str, ...]]] = {}
        self._control: TextIO | None = None
        self._lock: int | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._compacting = asyncio.Lock()
        self._memos: dict[tuple[str, int], PageMemo] = {}
        self._retired_hits = self._retired_misses = 0  # of memos of versions replaced since
        self.metrics.watch_pages(self._kept_pages)
        self._urls: dict[str, tuple[str, str]] = {}  # corpus ids only: bounded by the corpus
        self._encoded: OrderedDict[tuple[tuple[str, ...], int], msgspec.Raw] = OrderedDict()
        # Rankers holding corpus-id rankings ready (`rankers.Precomputed`): read on the loop.
        self._lookups: dict[str, Callable[[str, int], tuple[str, ...] | None]] = {
            name: ranker.precomputed_ids
            for name, ranker in self.rankers.items()
            if isinstance(ranker, Precomputed)
        }
        self._ids = _Ids()
        self._uploads = 0  # admitted and not yet answered

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Recover the log directory, rebuild state from it, and start logging.

        Raises:
            ConflictError: Another server holds the log directory.
            JournalError: The log directory cannot be written.
        """
        await asyncio.to_thread(self._open_files)
        self._make_batchers()
        await asyncio.to_thread(self._replay)
        self.journal.open()
        self._compactor = asyncio.get_running_loop().create_task(self._compact_forever())

    def _open_files(self) -> None:
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.logdir / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalError(f"cannot use log directory {self.logdir}: {error}") from error
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            self._lock = None
            raise ConflictError(
                f"log directory {self.logdir} is in use by another server"
            ) from None
        report = compact(self.logdir)
        if report.segments:
            logger.info(
                "recovered %d journal segment(s): wrote %s, skipped %s, dropped %d torn line(s)",
                report.segments,
                report.written,
                report.skipped,
                report.torn,
            )
        try:
            specs = read_experiments(self.logdir)
        except (ValueError, KeyError, TypeError) as error:
            raise JournalError(
                f"{self.logdir / 'experiments.jsonl'}: corrupt experiment spec ({error})"
            ) from error
        for spec in specs:
            self._specs.add((spec.experiment_id, spec.version))
            self.figures.add_version(spec)
        control = self.logdir / _CONTROL
        events = []
        if control.exists():
            for number, line in enumerate(control.read_text(encoding="utf-8").splitlines()):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    logger.warning("%s: line %d is torn; ignored", control, number + 1)
        self._control = open(control, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self.engine = Engine(
            self.rankers,
            self.config.default_ranker or next(iter(self.rankers)),
            events=events,
            persist=self._persist_event,
            on_version=self._log_spec,
        )
        self.engine.reconcile(self.config.experiments)

    def _persist_event(self, event: Mapping[str, Any]) -> None:
        assert self._control is not None
        self._control.write(json.dumps(event, sort_keys=True) + "\n")
        self._control.flush()
        os.fsync(self._control.fileno())

    def _log_spec(self, spec: ExperimentSpec) -> None:
        key = (spec.experiment_id, spec.version)
        if key not in self._specs:
            append_experiment(self.logdir, spec)
            self._specs.add(key)
        self.figures.add_version(spec)

    def _make_batchers(self) -> None:
        limits = self.config.limits
        for name, ranker in self.rankers.items():
            rank = _batch_ranker(ranker)
            for uploads in (False, True):
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"rank-{name}")
                self._executors.append(executor)
                histogram = self.metrics.batch_size.labels(name)
                self._batchers[(name, uploads)] = MicroBatcher(
                    rank,
                    executor=executor,
                    # Corpus-id queries only search the index, where a batch costs little more
                    # than one query; uploads are embedded, where small batches are faster.
                    max_batch=limits.batch_size if uploads else _SEARCH_BATCH,
                    max_wait=limits.batch_wait_ms / 1000 if uploads else 0.0,
                    observe=histogram.observe,
                    # An item slower than this timed out; its call says no more about the wait.
                    max_item_seconds=limits.ranker_timeout,
                )

    def _replay(self) -> None:
        """Rebuild assignments, impressions, clicks and figures from the compacted log."""
        assignments = scan(self.logdir, Kind.ASSIGNMENTS).collect()
        for row in assignments.iter_rows(named=True):
            self._assigned[row["experiment_id"], row["experiment_version"]].add(row["unit_id"])
            self.figures.assignment(Assignment(**row))
        impressions = scan(self.logdir, Kind.IMPRESSIONS).sort("ts").collect()
        shown: dict[str, _Shown] = {}
        for row in impressions.iter_rows(named=True):
            record = Impression(
                impression_id=row["impression_id"],
                experiment_id=row["experiment_id"],
                experiment_version=row["experiment_version"],
                unit_id=row["unit_id"],
                query_id=row["query_id"],
                design=Design(row["design"]),
                treatment=row["treatment"],
                rankers=tuple(row["rankers"]),
                lists=tuple(tuple(x) for x in row["lists"]),
                doc_ids=tuple(row["doc_ids"]),
                teams=tuple(row["teams"]),
                ts=row["ts"],
                page_start=row["page_start"],
                seed=row["seed"],
                excluded=row["excluded"],
            )
            shown[record.impression_id] = _Shown(record, self.figures.impression(record))
        clicks = scan(self.logdir, Kind.CLICKS).sort("ts").collect()
        for row in clicks.iter_rows(named=True):
            self._clicks[row["click_id"]] = (row["impression_id"], row["position"], None)
            entry = shown.get(row["impression_id"])
            if entry is not None:
                self._count_click(entry, row["position"])
        keep = self.config.limits.live_impressions
        for impression_id in list(shown)[-keep:]:
            self._impressions[impression_id] = shown[impression_id]
        if impressions.height:
            logger.info(
                "replayed %d assignments, %d impressions and %d clicks from %s",
                assignments.height,
                impressions.height,
                clicks.height,
                self.logdir,
            )

    async def close(self) -> None:
        """Stop logging, compact everything to Parquet, release the log directory."""
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
            self._compactor = None
        async with self._compacting:
            await self.journal.close()
            if self._lock is not None:
                await asyncio.to_thread(compact, self.logdir)
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    async def compact_now(self) -> None:
        """Seal the active journal segment and move every sealed one into Parquet.

        The compaction runs in a process of its own (`serving._compactor`), off this
        interpreter's GIL and at the lowest priority. It is started by `subprocess.Popen`,
        which execs it without copying this process (vfork), and waited for on a thread:
        the event loop's own subprocess support forks the whole server first, which stalls
        the loop for 7-9 ms with the models loaded (`benchmarks.serving_compaction`).

        Raises:
            JournalError: The compaction failed (the journal keeps the events).
        """
        async with self._compacting:
            await self.journal.rotate()
            sealed = self.journal.sealed()
            if sealed:
                child = subprocess.Popen(
                    [sys.executable, "-m", "serving._compactor", str(self.logdir)]
                    + [str(path) for path in sealed],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                finished = asyncio.ensure_future(asyncio.to_thread(child.communicate))
                try:
                    out, err = await asyncio.shield(finished)
                except asyncio.CancelledError:
                    await finished  # it finishes its turn; close() compacts after it
                    raise
                if child.returncode:
                    last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
                    raise JournalError(f"compaction exited with {child.returncode}: {last}")
                report = json.loads(out)
                logger.debug("compacted %d segment(s): %s", report["segments"], report["written"])
            self.metrics.uncompacted.set(self.journal.uncompacted_records)

    async def _compact_forever(self) -> None:
        interval = self.config.log.compact_seconds
        check = min(interval, 1.0)
        last = time.monotonic()
        while True:
            await asyncio.sleep(check)
            due = time.monotonic() - last >= interval
            if due or self.journal.uncompacted_records >= self.config.log.compact_records:
                try:
                    await self.compact_now()
                except Exception:
                    logger.exception("compaction failed; the journal keeps the events")
                last = time.monotonic()

    # -- search -----------------------------------------------------------------------------

    def _engine(self) -> Engine:
        if self.engine is None:
            raise JournalError("the service is not open")
        return self.engine

    async def search(
        self,
        *,
        unit_id: str,
        page: int = 1,
        corpus_id: str | None = None,
        query_id: str | None = None,
        upload: UploadedImage | None = None,
    ) -> SearchPage:
        """Serve one page of results for one unit and log it.

        Raises:
            InvalidRequestError: Not exactly one query, or a page outside 1..max_page or past
                the last result.
            UploadTooLargeError: The upload is over the byte limit.
            rankers.ImageError: The upload is not a usable image.
            UnknownImageError: `corpus_id` is not in the corpus.
            UnknownQueryError: `query_id` is not held (search with the image again).
            RankersFailedError: Every ranker failed.
            JournalError: The events could not be logged (nothing is shown then).
            OverloadedError: The uploads in flight would keep this one waiting for its
                embeddings longer than `limits.upload_wait` (nothing is done or logged).
        """
        limits = self.config.limits
        given = (corpus_id is not None) + (query_id is not None) + (upload is not None)
        if given != 1:
            raise InvalidRequestError(
                "give exactly one query: an image upload (field 'image'), 'corpus_id', or "
                f"'query_id' of an earlier upload; got {given}"
            )
        if not 1 <= page <= limits.max_page:
            raise InvalidRequestError(f"page must lie in 1..{limits.max_page}, got {page}")
        if upload is None:
            return await self._serve(unit_id, page, corpus_id, query_id, None)
        if len(upload.data) > limits.max_upload_bytes:
            raise UploadTooLargeError(
                f"upload of {len(upload.data):,} bytes is over the limit of "
                f"{limits.max_upload_bytes:,}"
            )
        self._engine()  # a closed service says so before an upload is weighed
        wait = self.upload_wait()
        if wait > limits.upload_wait:
            raise OverloadedError(
                f"too busy: this upload would wait about {wait:.1f} s for its embeddings, over "
                f"the limit of {limits.upload_wait:g} s; try again shortly",
                # Within one ranker timeout every upload now in flight is answered or given up
                # on (a model call that outlives it still holds its worker: hence an estimate).
                retry_after=max(1, math.ceil(min(wait, limits.ranker_timeout))),
            )
        self._uploads += 1
        try:
            return await self._serve(unit_id, page, None, None, upload)
        finally:
            self._uploads -= 1

    def upload_wait(self) -> float:
        """Seconds a new upload may expect to wait for its embeddings: the uploads in flight
        times the slowest model's recent seconds per image (0.0 until a model has run)."""
        per_image = max(
            (batcher.item_seconds for (_, uploads), batcher in self._batchers.items() if uploads),
            default=0.0,
        )
        return self._uploads * per_image

    async def _serve(
        self,
        unit_id: str,
        page: int,
        corpus_id: str | None,
        query_id: str | None,
        upload: UploadedImage | None,
    ) -> SearchPage:
        engine = self._engine()
        limits = self.config.limits
        query: Query | None
        key: str
        if upload is not None:
            image, key = await asyncio.to_thread(_decode_upload, upload.data, limits.max_pixels)
            query = Query(image=image)
        elif corpus_id is not None:
            if corpus_id not in self.corpus:
                raise UnknownImageError(f"no image {corpus_id!r} in the corpus")
            query, key = Query(corpus_id=corpus_id), corpus_id
        else:
            assert query_id is not None
            key = query_id
            # A corpus id ranks afresh; an earlier upload is served from its cached lists only.
            query = Query(corpus_id=query_id) if query_id in self.corpus else None
        route = engine.route(unit_id)
        state = route.experiment
        page_size = state.config.page_size if state is not None else DEFAULT_PAGE_SIZE
        deep = state is not None and state.config.method in _DEPTH_DEPENDENT
        held = (
            [self._held_list(name, key, page, page_size, deep=deep) for name in route.rankers]
            if query is not None and query.corpus_id is not None
            else [None] * len(route.rankers)
        )
        if all(ids is not None for ids in held):
            lists: Sequence[tuple[str, ...] | None] = held  # all held: no task, no thread hop
        else:
            missing = [i for i, ids in enumerate(held) if ids is None]
            ranked = await asyncio.gather(
                *(
                    self._list(route.rankers[i], query, key, page, page_size, deep=deep)
                    for i in missing
                )
            )
            lists = list(held)
            for i, ids in zip(missing, ranked, strict=True):
                lists[i] = ids
        if state is None:
            experiment_id, version, design = "", 0, Design.AB
        else:
            experiment_id, version, design = (
                state.config.id,
                state.spec.version,
                state.config.design,
            )
        seed = 0
        if design is Design.INTERLEAVING:
            assert state is not None
            seed = interleave.seed_for(state.spec.salt, unit_id, key)
        by_corpus_id = query is not None and query.corpus_id is not None
        shown = self._page(route, lists, seed, page, page_size, keep=by_corpus_id)
        now = datetime.now(UTC)
        assignment = None
        if state is not None:
            assigned = self._assigned[experiment_id, version]
            if unit_id not in assigned:
                assigned.add(unit_id)
                assignment = Assignment(experiment_id, version, unit_id, route.treatment, now)
        impression = Impression(
            impression_id=self._ids.new(),
            experiment_id=experiment_id,
            experiment_version=version,
            unit_id=unit_id,
            query_id=key,
            design=design,
            treatment=route.treatment,
            rankers=route.rankers,
            lists=(
                cast("tuple[tuple[str, ...], ...]", tuple(lists))
                if None not in lists
                else tuple(ids or () for ids in lists)
            ),
            doc_ids=shown.doc_ids,
            teams=shown.teams,
            ts=now,
            page_start=shown.page_start,
            seed=seed,
            excluded=shown.excluded if state is not None else NO_EXPERIMENT,
        )
        try:
            await self.journal.append(
                (impression,) if assignment is None else (assignment, impression)
            )
        except JournalError:
            if assignment is not None:
                self._assigned[experiment_id, version].discard(unit_id)
            raise
        if assignment is not None:
            self.figures.assignment(assignment)
        self._remember(_Shown(impression, self.figures.impression(impression)))
        self.metrics.impressions.labels(experiment_id or NO_EXPERIMENT).inc()
        return SearchPage(
            impression_id=impression.impression_id,
            query_id=key,
            unit_id=unit_id,
            page=page,
            page_size=page_size,
            has_more=shown.has_more,
            results=self._results(shown, keep=by_corpus_id),
        )

    def _results(self, shown: ShownPage, *, keep: bool) -> msgspec.Raw:
        """A page's results, encoded (`keep`: once per page, kept like the drafts, the least
        recently used dropped first)."""
        key = (shown.doc_ids, shown.page_start)
        encoded = self._encoded.get(key)
        if encoded is None:
            first = shown.page_start + 1
            urls = self._urls
            results = []
            for i, doc in enumerate(shown.doc_ids):
                # Unpacked, not starred: a starred call takes the interpreter's slow call path.
                thumbnail, full = urls.get(doc) or self._result_urls(doc)
                results.append(SearchResult(doc, thumbnail, full, first + i, i))
            encoded = msgspec.Raw(_RESULTS_ENCODER.encode(results))
            kept = self._encoded
            if keep and self.config.limits.drafted_pages:
                if len(kept) >= self.config.limits.drafted_pages:
                    kept.popitem(last=False)
                kept[key] = encoded
        else:
            self._encoded.move_to_end(key)
        return encoded

    def image_url(self, doc: str) -> str:
        """The URL of a corpus image (``/images/<id>``; add ``?thumb=1`` for its thumbnail)."""
        return self._result_urls(doc)[1]

    def _result_urls(self, doc: str) -> tuple[str, str]:
        """A corpus image's thumbnail URL and URL (made once per image)."""
        urls = self._urls.get(doc)
        if urls is None:
            url = f"/images/{quote(doc, safe='/')}"
            urls = self._urls[doc] = (f"{url}?thumb=1", url)
        return urls

    async def _list(
        self,
        name: str,
        query: Query | None,
        key: str,
        page: int,
        page_size: int,
        *,
        deep: bool,
    ) -> tuple[str, ...] | None:
        """One ranker's list for page `page`, or None if the ranker failed.

        Uploads (and depth-dependent methods) are ranked once at the deepest page served,
        and the lists of an upload are kept for its later pages (the image is not). A corpus
        image is ranked at depth page_size, then 2 page_size, ... up to this page's depth, each
        deeper list extending the one before: the first page's lists are a prefix of the
        second's, so a later page continues the same draft.
        """
        max_depth = page_size * self.config.limits.max_page
        if query is None or query.image is not None or deep:
            return await self._ranked(name, query, key, max_depth)
        if page == 1:
            return await self._ranked(name, query, key, page_size)
        merged: dict[str, None] = {}
        for step in range(1, page + 1):
            ids = await self._ranked(name, query, key, step * page_size)
            if ids is None:
                return None
            merged.update(dict.fromkeys(ids))
        return tuple(merged)

    def _held_list(
        self, name: str, key: str, page: int, page_size: int, *, deep: bool
    ) -> tuple[str, ...] | None:
        """What `_list` would give for a corpus-image query if every list it needs is in the
        ranking cache or the ranker's precomputed table, else None: no task, no thread.

        Counted only when it answers (cached lists as hits; a list read from the table as a
        miss, then cached), so that `_ranked` never counts a lookup a second time.
        """
        if page == 1 and not deep:  # the common case: one list, cached or in the table
            wanted = (name, key, page_size)
            held = self.rankings.hit(wanted)
            if held is None:
                held = self._table_list(name, key, page_size)
                if held is not None:
                    self.rankings.misses += 1
                    self.rankings.put(wanted, held)
                    self.metrics.ranker_table_reads.labels(name).inc()
            return held
        if deep or page == 1:
            depths: Sequence[int] = (
                page_size * self.config.limits.max_page if deep else page_size,
            )
        else:
            depths = range(page_size, (page + 1) * page_size, page_size)
        read: list[tuple[str, ...] | None] = []
        for depth in depths:
            if (name, key, depth) in self.rankings:
                read.append(None)  # fetched (and counted) below, once all are found
                continue
            ids = self._table_list(name, key, depth)
            if ids is None:
                return None
            read.append(ids)
        merged: dict[str, None] = {}
        for depth, ids in zip(depths, read, strict=True):
            if ids is None:
                ids = self.rankings.get((name, key, depth))
                assert ids is not None
            else:
                self.rankings.misses += 1
                self.rankings.put((name, key, depth), ids)
                self.metrics.ranker_table_reads.labels(name).inc()
            if len(depths) == 1:
                return ids
            merged.update(dict.fromkeys(ids))
        return tuple(merged)

    def _table_list(self, name: str, key: str, depth: int) -> tuple[str, ...] | None:
        """A corpus image's list read from the ranker's precomputed table, or None (no table,
        not that deep, or a failure, which `_ranked` meets again and counts)."""
        lookup = self._lookups.get(name)
        if lookup is None:
            return None
        try:
            return lookup(key, depth)
        except Exception:
            return None

    def _page(
        self,
        route: Route,
        lists: Sequence[tuple[str, ...] | None],
        seed: int,
        page: int,
        page_size: int,
        *,
        keep: bool,
    ) -> ShownPage:
        """The page shown (`keep`: the page may be kept for other units' searches)."""
        max_page = self.config.limits.max_page
        depth = page * page_size
        deeper = False  # a list is as long as this page: the ranker may hold more
        answered = False
        for ids in lists:
            if ids is not None:
                answered = True
                if len(ids) >= depth:
                    deeper = True
        if not answered:
            raise RankersFailedError(
                f"every ranker failed or timed out ({', '.join(route.rankers)}); try again"
            )
        state = route.experiment
        if state is not None and state.config.design is Design.INTERLEAVING:
            memo = self._memo(state)  # corpus images' pages only: an upload rarely repeats
            shown = interleaved_page(
                memo.method,
                route.rankers,
                lists,
                seed=seed,
                page=page,
                page_size=page_size,
                max_page=max_page,
                deeper=deeper,
                seed_scheme=state.spec.seed_scheme,
                memo=memo if keep else None,
            )
        else:
            ids = lists[0]
            assert ids is not None
            shown = single_page(
                ids, 0, page=page, page_size=page_size, max_page=max_page, deeper=deeper
            )
        if not shown.doc_ids and page > 1:
            raise InvalidRequestError(f"page {page} is past the last result")
        return shown

    def _kept_pages(self) -> tuple[int, int, int]:
        """Kept pages' hits and misses since start, and the pages kept now."""
        memos = tuple(self._memos.values())
        return (
            self._retired_hits + sum(m.hits for m in memos),
            self._retired_misses + sum(m.misses for m in memos),
            sum(len(m) for m in memos),
        )

    def _memo(self, state: ExperimentState) -> PageMemo:
        """The method of an interleaving experiment's version, with the pages it keeps."""
        key = (state.id, state.version)
        memo = self._memos.get(key)
        if memo is None:
            assert state.config.method is not None
            method = interleave.get(state.config.method, **dict(state.config.options))
            self._drop_pages(state.id)  # a new version drafts anew: the old one's pages go
            memo = self._memos[key] = PageMemo(method, self.config.limits.drafted_pages)
        return memo

    def _drop_pages(self, experiment_id: str) -> None:
        """Forget the pages kept for an experiment (every version); their hit and miss counts
        stay in the metrics' totals."""
        for key in [k for k in self._memos if k[0] == experiment_id]:
            gone = self._memos.pop(key)
            self._retired_hits += gone.hits
            self._retired_misses += gone.misses

    async def _ranked(
        self, name: str, query: Query | None, query_id: str, depth: int
    ) -> tuple[str, ...] | None:
        """One ranker's list for the query, or None if it failed or timed out."""
        by_id = query is not None and query.corpus_id is not None
        if by_id:
            cached = self.rankings.get((name, query_id, depth))
            if cached is not None:
                return cached
        else:
            cached = self._lists.get((name, query_id, depth))
            if cached is not None:
                self._lists.move_to_end((name, query_id, depth))
                return cached
        if query is None:
            raise UnknownQueryError(
                f"query {query_id!r} is not held any more (or was never seen): search with "
                "the image again"
            )
        uploads = query.image is not None
        lookup = self._lookups.get(name) if by_id else None
        started = time.perf_counter()
        try:
            held = None if lookup is None else lookup(query_id, depth)
            if held is not None:  # read, not ranked: no ranker time to observe
                self.metrics.ranker_table_reads.labels(name).inc()
                self.rankings.put((name, query_id, depth), held)
                return held
            async with asyncio.timeout(self.config.limits.ranker_timeout):
                ids = await self._batchers[(name, uploads)].submit((query, depth))
        except TimeoutError:
            self.metrics.ranker_failures.labels(name, "timeout").inc()
            logger.warning("ranker %s timed out on %s", name, query_id)
            return None
        except Exception as error:
            self.metrics.ranker_failures.labels(name, type(error).__name__).inc()
            logger.warning("ranker %s failed on %s: %s", name, query_id, error)
            return None
        self.metrics.ranker_seconds.labels(name).observe(time.perf_counter() - started)
        if by_id:
            self.rankings.put((name, query_id, depth), ids)
        elif uploads:
            self._lists[(name, query_id, depth)] = ids
            while len(self._lists) > 2 * self.config.limits.cached_queries:
                self._lists.popitem(last=False)
        return ids

    def _remember(self, shown: _Shown) -> None:
        self._impressions[shown.record.impression_id] = shown
        while len(self._impressions) > self.config.limits.live_impressions:
            self._impressions.popitem(last=False)

    # -- clicks -----------------------------------------------------------------------------

    async def click(self, *, impression_id: str, position: int, click_id: str) -> ClickOut:
        """Log a click on a shown position, once per click id.

        Raises:
            UnknownImpressionError: No such impression is held.
            InvalidRequestError: The position was not shown.
            ConflictError: The click id was used for another impression or position.
            JournalError: The click could not be logged.
        """
        shown = self._impressions.get(impression_id)
        if shown is None:
            error: ExperimentError = UnknownImpressionError(
                f"no impression {impression_id!r} was shown"
            )
            error.reason = "unknown_impression"  # counted by the app, as every refusal
            raise error
        record = shown.record
        if not 0 <= position < len(record.doc_ids):
            error = InvalidRequestError(
                f"position {position} was not shown: impression {impression_id!r} showed "
                f"positions 0..{len(record.doc_ids) - 1}"
            )
            error.reason = "position_not_shown"
            raise error
        doc_id = record.doc_ids[position]
        earlier = self._clicks.get(click_id)
        if earlier is not None:
            if earlier[:2] != (impression_id, position):
                error = ConflictError(f"click id {click_id!r} was already used for another click")
                error.reason = "click_id_reused"
                raise error
            if earlier[2] is not None:
                await asyncio.shield(earlier[2])  # acknowledged only once durable
            return ClickOut(click_id, impression_id, position, doc_id, duplicate=True)
        click = Click(
            click_id=click_id,
            impression_id=impression_id,
            experiment_id=record.experiment_id,
            experiment_version=record.experiment_version,
            unit_id=record.unit_id,
            position=position,
            doc_id=doc_id,
            ts=datetime.now(UTC),
        )
        future = self.journal.append([click])
        self._clicks[click_id] = (impression_id, position, future)
        try:
            await asyncio.shield(future)  # a duplicate may be waiting on it too
        except JournalError:
            del self._clicks[click_id]
            raise
        self._clicks[click_id] = (impression_id, position, None)
        self._count_click(shown, position)
        self.metrics.clicks.labels(record.experiment_id or NO_EXPERIMENT).inc()
        return ClickOut(click_id, impression_id, position, doc_id, duplicate=False)

    def _count_click(self, shown: _Shown, position: int) -> None:
        first = position not in shown.clicked
        if first:
            shown.clicked = (*shown.clicked, position)
        shown.outcome = self.figures.click(shown.record, shown.outcome, shown.clicked, first=first)

    # -- experiments ------------------------------------------------------------------------

    def experiments(self) -> list[ExperimentOut]:
        """Every experiment, without figures."""
        return [_experiment_out(state) for state in self._engine().experiments()]

    async def experiment(self, experiment_id: str, *, version: int | None = None) -> ExperimentOut:
        """One experiment with the live figures of its current (or the given) version.

        The sums are copied on the event loop; the bootstrap and tests run on a worker thread.

        Raises:
            UnknownExperimentError: No experiment has that id (or no such version).
        """
        state = self._engine().get(experiment_id)
        spec = state.spec
        if version is not None:
            found = [s for s in state.history if s.version == version]
            if not found:
                raise UnknownExperimentError(
                    f"experiment {experiment_id!r} has no version {version} "
                    f"(versions: {[s.version for s in state.history]})"
                )
            spec = found[0]
        snapshot = self.figures.snapshot(spec)
        figures = await asyncio.to_thread(compute_figures, snapshot)
        self.figures.remember(figures, spec)
        return msgspec.structs.replace(_experiment_out(state), figures=figures)

    def create_experiment(self, config: ExperimentConfig) -> ExperimentOut:
        """Create (and by default start) an experiment; see `Engine.create`."""
        return _experiment_out(self._engine().create(config))

    def start_experiment(self, experiment_id: str) -> ExperimentOut:
        """Start an experiment; see `Engine.start`."""
        return _experiment_out(self._engine().start(experiment_id))

    def stop_experiment(self, experiment_id: str) -> ExperimentOut:
        """Stop an experiment (its kept pages are dropped); see `Engine.stop`."""
        state = self._engine().stop(experiment_id)
        self._drop_pages(experiment_id)  # it serves no page until it runs again
        return _experiment_out(state)

    def update_experiment(
        self,
        experiment_id: str,
        *,
        weights: Sequence[float] | None = None,
        traffic: float | None = None,
        page_size: int | None = None,
    ) -> ExperimentOut:
        """Change an experiment; new weights make a new version. See `Engine.update`."""
        state = self._engine().update(
            experiment_id, weights=weights, traffic=traffic, page_size=page_size
        )
        return _experiment_out(state)

    # -- images and health ------------------------------------------------------------------

    def image_png(self, image_id: str, *, thumb: bool = False) -> bytes:
        """A corpus image as PNG (a thumbnail at most 64 pixels wide if `thumb`).

        Raises:
            UnknownImageError: No corpus image has that id.
        """
        key = (image_id, thumb)
        cached = self._png.get(key)
        if cached is not None:
            return cached
        if image_id not in self.corpus:
            raise UnknownImageError(f"no image {image_id!r} in the corpus")
        from PIL import Image

        picture = Image.fromarray(np.asarray(self.corpus.image(image_id)))
        if thumb and max(picture.size) > _THUMB:
            picture.thumbnail((_THUMB, _THUMB))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=False)
        data = buffer.getvalue()
        self._png[key] = data
        while len(self._png) > 4096:
            self._png.popitem(last=False)
        return data

    def sample_images(self, count: int, *, seed: int) -> list[str]:
        """`count` corpus ids picked by `seed` (the page's "pick an image" choices)."""
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(self.corpus), size=min(count, len(self.corpus)), replace=False)
        return [self.corpus.ids[int(r)] for r in rows]

    def health(self) -> Health:
        """Liveness and journal counters."""
        stats = self.journal.stats
        self.metrics.journal_commits.set(stats.commits)
        self.metrics.journal_records.set(stats.records)
        self.metrics.fsync_restarts.set(stats.fsync_restarts)
        self.metrics.uncompacted.set(self.journal.uncompacted_records)
        running = sum(s.running for s in self.engine.experiments()) if self.engine else 0
        failure = self.journal.failure
        return Health(
            status="ok" if failure is None else f"event log failed: {failure}",
            experiments_running=running,
            journal_commits=stats.commits,
            journal_records=stats.records,
            uncompacted_records=self.journal.uncompacted_records,
            fsync_restarts=stats.fsync_restarts,
        )


def _experiment_out(state: ExperimentState) -> ExperimentOut:
    config = state.config
    return ExperimentOut(
        id=config.id,
        design=str(config.design),
        version=state.version,
        running=state.running,
        rankers=list(config.rankers),
        weights=list(config.weights),
        method=config.method,
        options=dict(config.options),
        layer=config.layer,
        traffic=config.traffic,
        page_size=config.page_size,
        versions=[
            ExperimentVersionOut(
                version=spec.version,
                salt=spec.salt,
                rankers=list(spec.rankers),
                weights=list(spec.weights),
                method=spec.method,
                options=dict(spec.options),
                started_at=spec.started_at.isoformat(),
            )
            for spec in state.history
        ],
    )
