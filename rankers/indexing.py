"""Offline indexing: embed a corpus in batches, resumably, and build its `VectorIndex`.

`build` embeds the corpus batch by batch, saving each finished batch as a chunk file in the index
folder's ``chunks/`` (written atomically, so a crash leaves only whole chunks). Run again after an
interruption, it reuses every chunk it finds for the same model version and corpus, embeds only the
rest, then builds the graph, writes the index and deletes the chunks. With a `StagedEmbedder` the
CPU preprocessing of batch i + 1 runs on a worker thread while the model runs batch i.

`ensure_index` returns an index folder for (model, corpus), building it only if it is missing or
stale; tests, the demo and the search service call it. A lock file beside the folder lets one
process build while the others wait for its result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from rankers import cache, models
from rankers import corpus as corpora
from rankers.corpus import Corpus
from rankers.embedder import Embedder, StagedEmbedder, as_images
from rankers.errors import ManifestError, RankerError
from rankers.index import MANIFEST_FILE, IndexManifest, IndexSettings, VectorIndex, exact_search

__all__ = [
    "BuildReport",
    "build",
    "ensure_index",
    "index_dir",
    "index_model",
    "installed_indexes",
]

logger = logging.getLogger(__name__)

_CHUNKS: Final = "chunks"
_PLAN: Final = "plan.json"
_SAMPLE_QUERIES: Final = 200

BatchCallback = Callable[[int, int], None]
"""Called after each batch is saved with (batches done, batches in all), resumed ones included."""


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What one `build` run did.

    Attributes:
        directory: The index folder.
        batches: Batches in the whole corpus.
        resumed: Batches found already embedded by an interrupted run and not redone.
        embedded: Batches embedded by this run.
        images_per_second: Embedding throughput of this run (0 when nothing was embedded).
        recall_at_10: Recall@10 of the graph against exact search on a sample of corpus queries.
    """

    directory: Path
    batches: int
    resumed: int
    embedded: int
    images_per_second: float
    recall_at_10: float


def index_dir(model: str, corpus: str) -> Path:
    """The folder of the index of `model` over `corpus`: ``<cache>/indexes/<model>__<corpus>``."""
    return cache.index_root() / f"{model}__{corpus}"


def installed_indexes() -> tuple[tuple[Path, IndexManifest], ...]:
    """Every complete index under ``<cache>/indexes``, with its manifest, sorted by folder."""
    found: list[tuple[Path, IndexManifest]] = []
    root = cache.index_root()
    for path in sorted(root.glob(f"*/{MANIFEST_FILE}")) if root.is_dir() else ():
        try:
            found.append((path.parent, IndexManifest.from_json(path.read_text(encoding="utf-8"))))
        except (OSError, ManifestError) as error:
            logger.warning("skipping %s: %s", path.parent, error)
    return tuple(found)


def build(
    embedder: Embedder,
    corpus: Corpus,
    directory: str | os.PathLike[str],
    *,
    batch_size: int = 32,
    settings: IndexSettings | None = None,
    progress: bool = False,
    on_batch: BatchCallback | None = None,
) -> BuildReport:
    """Embed `corpus` with `embedder` (resuming an interrupted run) and save its index.

    Args:
        embedder: The model.
        corpus: The images to index.
        directory: The index folder; holds ``chunks/`` while building.
        batch_size: Images per batch and per chunk file. An interrupted run's batch size wins, so
            its chunks stay usable.
        settings: Index precision and graph settings.
        progress: Show a rich progress bar on stderr.
        on_batch: Called after each batch is saved (also for resumed ones).

    Returns:
        What was done.

    Raises:
        ValueError: `batch_size` is not positive.
        RankerError: The embedder returned the wrong shape.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    directory = Path(directory)
    with _exclusive(directory):
        return _build(embedder, corpus, directory, batch_size, settings, progress, on_batch)


def _build(
    embedder: Embedder,
    corpus: Corpus,
    directory: Path,
    batch_size: int,
    settings: IndexSettings | None,
    progress: bool,
    on_batch: BatchCallback | None,
) -> BuildReport:
    chunks = directory / _CHUNKS
    batch_size = _plan(chunks, embedder, corpus, batch_size)
    starts = range(0, len(corpus), batch_size)
    done = {start for start in starts if _chunk_ok(chunks, start, corpus, batch_size, embedder.dim)}
    todo = [start for start in starts if start not in done]
    if done:
        logger.info("resuming: %d of %d batches already embedded", len(done), len(starts))
    started = time.perf_counter()
    with _progress_bar(progress, f"embedding with {embedder.name}", len(corpus)) as advance:
        advance(sum(min(batch_size, len(corpus) - start) for start in done))
        finished = len(done)
        for start, vectors in _embed_batches(embedder, corpus, todo, batch_size):
            _save_chunk(chunks, start, vectors)
            finished += 1
            advance(vectors.shape[0])
            if on_batch is not None:
                on_batch(finished, len(starts))
    seconds = time.perf_counter() - started
    embedded_images = sum(min(batch_size, len(corpus) - start) for start in todo)
    throughput = embedded_images / seconds if todo and seconds > 0 else 0.0
    vectors = np.concatenate([np.load(_chunk_path(chunks, start)) for start in starts])
    table = (settings or IndexSettings()).neighbours > 0
    described = "finding each image's neighbours"
    with _progress_bar(progress and table, described, len(corpus), "rows") as advance:
        index = VectorIndex.build(
            vectors,
            model=embedder,
            corpus=corpus,
            settings=settings,
            figures={
                "batch_size": float(batch_size),
                "batches": float(len(starts)),
                "resumed_batches": float(len(done)),
                "embed_seconds": round(seconds, 3),
                "images_per_second": round(throughput, 2),
            },
            on_rows=advance,
        )
    recall = _sample_recall(index, vectors)
    index = index.with_figures({"recall_at_10_sample": round(recall, 4)})
    index.save(directory)
    shutil.rmtree(chunks, ignore_errors=True)
    return BuildReport(
        directory=directory,
        batches=len(starts),
        resumed=len(done),
        embedded=len(todo),
        images_per_second=throughput,
        recall_at_10=recall,
    )


def index_model(
    model: str,
    corpus: str,
    *,
    batch_size: int = 32,
    threads: int | None = None,
    progress: bool = False,
    directory: str | os.PathLike[str] | None = None,
    settings: IndexSettings | None = None,
) -> BuildReport:
    """Load a registered model and corpus by name and `build` their index (``rankers index``).

    Raises:
        UnknownItemError: No model or corpus has that name.
        RankerError: The corpus is not fetched, or the model does not match its manifest.
    """
    embedder = models.load_embedder(model, threads=threads)
    loaded = corpora.load(corpus)
    target = index_dir(model, corpus) if directory is None else Path(directory)
    return build(
        embedder, loaded, target, batch_size=batch_size, settings=settings, progress=progress
    )


def ensure_index(
    model: str | Embedder,
    corpus: str | Corpus,
    *,
    settings: IndexSettings | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> Path:
    """The index folder of (model, corpus), built first if it is missing or was built differently.

    Args:
        model: A registered model name, or a loaded embedder.
        corpus: A registered corpus name, or a loaded corpus.
        settings: The index settings wanted (default `IndexSettings()`); an index built with other
            settings is rebuilt.
        threads: onnxruntime threads when the model has to be loaded.
        progress: Show a progress bar if it has to be built.

    Returns:
        The folder, which `VectorIndex.open` accepts for this model and corpus.
    """
    embedder = models.load_embedder(model, threads=threads) if isinstance(model, str) else model
    loaded = corpora.load(corpus) if isinstance(corpus, str) else corpus
    wanted = settings or IndexSettings()
    directory = index_dir(embedder.name, loaded.name)
    if _usable(directory, embedder, loaded, wanted):
        return directory
    with _exclusive(directory):
        if not _usable(directory, embedder, loaded, wanted):  # someone may have built it meanwhile
            _build(embedder, loaded, directory, 32, wanted, progress, None)
    return directory


def _usable(directory: Path, embedder: Embedder, corpus: Corpus, settings: IndexSettings) -> bool:
    try:
        index = VectorIndex.open(directory, model=embedder, corpus=corpus, view=True)
    except ManifestError as error:
        logger.info("%s needs building: %s", directory, error)
        return False
    # The neighbour table's depth is the builder's choice (`rankers index --neighbours`): an
    # index without one, or with another depth, serves, and is not re-embedded for it.
    built = dataclasses.replace(index.manifest.settings, neighbours=settings.neighbours)
    if built != settings:
        logger.info("%s needs rebuilding with %s", directory, settings)
        return False
    return True


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (a sibling ``.lock`` file): one builder at a time."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f".{directory.name}.lock").open("a") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _plan(chunks: Path, embedder: Embedder, corpus: Corpus, batch_size: int) -> int:
    identity = {
        "model": embedder.name,
        "model_version": str(embedder.version),
        "model_sha256": embedder.sha256,
        "corpus": corpus.name,
        "corpus_digest": corpus.digest,
        "count": len(corpus),
        "dim": embedder.dim,
    }
    path = chunks / _PLAN
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and all(previous.get(k) == v for k, v in identity.items()):
        stored = previous.get("batch_size")
        if isinstance(stored, int) and stored > 0:
            if stored != batch_size:
                logger.info("keeping the interrupted run's batch size %d", stored)
            return stored
    if chunks.exists():
        shutil.rmtree(chunks)
    chunks.mkdir(parents=True)
    _write_atomic(path, json.dumps({**identity, "batch_size": batch_size}, indent=2).encode())
    return batch_size


def _chunk_path(chunks: Path, start: int) -> Path:
    return chunks / f"{start:010d}.npy"


def _chunk_ok(chunks: Path, start: int, corpus: Corpus, batch_size: int, dim: int) -> bool:
    path = _chunk_path(chunks, start)
    if not path.is_file():
        return False
    try:
        stored = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    rows = min(batch_size, len(corpus) - start)
    return bool(stored.shape == (rows, dim) and stored.dtype == np.float32)


def _save_chunk(chunks: Path, start: int, vectors: npt.NDArray[np.float32]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".chunk-", suffix=".npy", dir=chunks)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, vectors)
        os.replace(temporary, _chunk_path(chunks, start))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _embed_batches(
    embedder: Embedder, corpus: Corpus, starts: Sequence[int], batch_size: int
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    def frames(start: int) -> Sequence[npt.NDArray[np.uint8]]:
        return as_images(corpus.images[start : start + batch_size])

    def check(start: int, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows = min(batch_size, len(corpus) - start)
        if vectors.shape != (rows, embedder.dim):
            raise RankerError(
                f"{embedder.name} returned {vectors.shape} for {rows} images, "
                f"expected ({rows}, {embedder.dim})"
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    if not isinstance(embedder, StagedEmbedder):
        for start in starts:
            yield start, check(start, embedder.embed(frames(start), batch_size=batch_size))
        return
    staged = embedder

    def prepare(start: int) -> npt.NDArray[np.float32]:
        return staged.prepare(frames(start))

    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
        pending = pool.submit(prepare, starts[0])
        for position, start in enumerate(starts):
            batch = pending.result()
            if position + 1 < len(starts):
                pending = pool.submit(prepare, starts[position + 1])
            yield start, check(start, staged.infer(batch))


def _sample_recall(index: VectorIndex, vectors: npt.NDArray[np.float32]) -> float:
    """Recall@10 of `index` against exact search, for an evenly spread sample of corpus rows."""
    count = int(vectors.shape[0])
    k = min(10, count)
    rows = np.unique(np.linspace(0, count - 1, num=min(_SAMPLE_QUERIES, count)).astype(np.int64))
    exact, _ = exact_search(vectors, vectors[rows], k)
    found, _ = index.search(vectors[rows], k, threads=0)
    hits = 0
    for got, want in zip(found.tolist(), exact.tolist(), strict=True):
        hits += len(set(got) & set(want))
    return hits / (len(rows) * k)


@contextmanager
def _progress_bar(
    enabled: bool, description: str, total: int, unit: str = "images"
) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _count: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                "" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed"
            )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
