"""Nearest-neighbour indexes: one usearch HNSW graph per (model, corpus), with a manifest beside it.

An index folder holds:

- ``index.usearch``: the usearch graph, keys = corpus rows, over the embeddings projected on their
  top principal axes (`IndexSettings.reduce`, 128 by default), squared-Euclidean metric; or over the
  full embeddings with the cosine metric when ``reduce=0``;
- ``projection.npy``: that projection, float32 (dim, reduce) (absent when ``reduce=0``);
- ``vectors.npy``: the embeddings as float16 (N, dim), memory-mapped on open: the exact rescoring
  step and the ranker's corpus-id queries read rows from it;
- ``neighbours.npy``: each corpus row's nearest other rows and their cosine similarities, best
  first, to `IndexSettings.neighbours` (100) deep: (N, depth) records of int32 ``key`` and float32
  ``score``, found by this index's own search when it was built, memory-mapped on open. A
  corpus-id query ("more like this") up to that depth is a row lookup, not a search (absent when
  ``neighbours=0``);
- ``index.json``: the `IndexManifest` (model name, version and sha256; corpus name and digest;
  dimension, metric, precision and graph settings; file sizes and sha256; build time and figures).
  Written last, so its presence marks a complete index.

`VectorIndex.open` maps the graph as a read-only view and refuses (`ManifestError`) an index built
by another model version or over another corpus, or whose files differ from the manifest.

A search walks the small graph for ``rescore * k`` candidates, then ranks them by exact cosine on
the stored float16 rows (numkong's SIMD kernels: numpy's float16 casts alone would cost more than
the walk). The number of candidates is tuned when the index is built (`IndexSettings.rescore`):
the more vectors, the more of them fall within the projection's error of the true neighbours.

Defaults (`IndexSettings`): 128 principal axes in float16, connectivity 16, expansion 128 to build
and 48 to search, candidates tuned to a leave-one-out recall@10 of 0.985, and a neighbour table
100 deep. The table costs a search per corpus row, 101 deep, with its own number of candidates,
tuned to the same recall at that depth (deep lists need fewer per result): 0.5 s for the emoji
corpus; at 100,000 clustered 1280-d vectors 30 s beside a 9 s graph (3 candidates per result
where the top 10 needed 24; recall@100 0.999). Graph settings chosen by measurement
(``benchmarks/rankers_knn.py``: usearch 2.26.1, one query at a time, one thread, recall@10 against
exact float32 search, clustered 1280-d vectors fitted to effnet-lite0 emoji embeddings, hnswlib
M 16 at the smallest ef reaching recall 0.98, paired in the same run)::

    N          graph                          recall@10  single q/s  share of hnswlib  build (s)
    100,000    hnswlib, 1280-d f32, ef 32       0.980       6,735        100%            19.6
               ours, 128-d f16, 50 rescored     0.986       6,180         93%            11.0
               1280-d i8, 30 rescored (old)     0.979       5,338         68%            13.4
    1,000,000  hnswlib, 1280-d f32, ef 112      0.981       1,638        100%           327.8
               ours, 128-d f16, 80 rescored     0.982       1,623        105%           180.3

The narrow graph walks about twice as fast as a full-width int8 graph (at 100,000: 9,800 against
5,200 walks/s for the same candidates), builds faster and takes a tenth of the memory; the
rescoring restores the exact order. 128 axes keep most of these vectors' variance, and real
embeddings concentrate theirs the same way (participation ratio 54 of 1,280). Over the emoji
corpus (3,822 vectors) the tuning keeps 20-30 candidates, recall@10 >= 0.99.

usearch is imported lazily, after onnxruntime (usearch 2.26.2 and later crash when onnxruntime is
imported after them; the pin in pyproject.toml and ``tests/rankers/test_import_order.py`` guard the
same thing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import numkong
import numpy as np
import numpy.typing as npt

from rankers.cache import file_sha256
from rankers.errors import ManifestError, RankerError

if TYPE_CHECKING:
    from rankers.corpus import Corpus
    from rankers.embedder import Embedder

__all__ = [
    "INDEX_FILE",
    "MANIFEST_FILE",
    "NEIGHBOURS_FILE",
    "PROJECTION_FILE",
    "VECTORS_FILE",
    "IndexManifest",
    "IndexSettings",
    "Precision",
    "VectorIndex",
    "exact_search",
    "import_usearch",
    "principal_axes",
]

Precision = Literal["f32", "f16", "i8"]

INDEX_FILE: Final = "index.usearch"
VECTORS_FILE: Final = "vectors.npy"
PROJECTION_FILE: Final = "projection.npy"
NEIGHBOURS_FILE: Final = "neighbours.npy"
MANIFEST_FILE: Final = "index.json"
_FORMAT: Final = 4
_NEIGHBOUR: Final = np.dtype([("key", "<i4"), ("score", "<f4")])
"""A record of the neighbour table: a corpus row and its cosine similarity to the table's row."""
_PCA_SAMPLE: Final = 20_000


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """How the graph is built and searched.

    Attributes:
        dtype: The precision usearch stores and compares the graph's vectors in.
        reduce: The graph's dimension: embeddings are projected on their top `reduce` principal
            axes (fitted on the corpus) before they enter the graph. 0, or a value not below the
            embedding dimension or the corpus size, keeps the full embeddings (cosine metric).
        connectivity: Edges per node (HNSW's M).
        expansion_add: Candidate list size while building (efConstruction).
        expansion_search: Candidate list size while searching (ef); raised to the number of
            candidates when that is larger.
        rescore: When > 0, fetch ``rescore * k`` candidates and re-rank them by exact cosine on the
            stored vectors; 0 ranks by the graph's own distances (not with a reduced graph, whose
            distances are approximate). None: tuned when the index is built, to the smallest
            of `RESCORE_STEPS` whose recall@10 on a sample of the corpus reaches `tune_recall`
            (each sampled row a query, itself left out): a larger corpus packs more
            neighbours into the error of the projection and needs more candidates.
        tune_recall: The recall@10 the tuning of `rescore` aims for.
        neighbours: Each corpus row's nearest other rows are found when the index is built, to
            this depth, and kept (``neighbours.npy``): a corpus-id query up to this depth is then
            a row lookup instead of a search. 0: no table. It costs a search per corpus row at
            build time and 8 bytes per row and neighbour on disk.
    """

    dtype: Precision = "f16"
    reduce: int = 128
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 48
    rescore: int | None = None
    tune_recall: float = 0.985
    neighbours: int = 100

    def __post_init__(self) -> None:
        if self.dtype not in get_args(Precision):
            raise ValueError(f"dtype must be one of {get_args(Precision)}, got {self.dtype!r}")
        for name in ("connectivity", "expansion_add", "expansion_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        for name in ("reduce", "rescore", "neighbours"):
            value = getattr(self, name)
            if name == "rescore" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.reduce == 1:
            raise ValueError("reduce must be 0 (full embeddings) or at least 2, got 1")
        if self.reduce and self.rescore == 0:
            raise ValueError(
                "a reduced graph (reduce > 0) needs rescore > 0: its distances are approximate"
            )
        if not 0.0 < self.tune_recall <= 1.0:
            raise ValueError(f"tune_recall must lie in (0, 1], got {self.tune_recall!r}")


@dataclass(frozen=True, slots=True)
class IndexManifest:
    """What an index folder holds and how it was made (``index.json``)."""

    model: str
    model_version: str
    model_sha256: str
    corpus: str
    corpus_digest: str
    count: int
    dim: int
    metric: str
    settings: IndexSettings
    built_at: str
    index_bytes: int
    index_sha256: str
    vectors_bytes: int
    projection_bytes: int
    projection_sha256: str
    rescore: int
    """The candidates multiplier searches use: `IndexSettings.rescore`, or its tuned value."""
    neighbours_bytes: int = 0
    neighbours_sha256: str = ""
    figures: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> str:
        """The manifest as indented JSON."""
        record = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        record["settings"] = asdict(self.settings)
        record["figures"] = dict(self.figures)
        return json.dumps({"format": _FORMAT, **record}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> IndexManifest:
        """Parse `to_json`'s output.

        Raises:
            ManifestError: The text is not a manifest of this format.
        """
        try:
            record = json.loads(text)
            version = record.pop("format")
            if version not in (3, _FORMAT):
                raise ManifestError("index manifest of an unknown format: rebuild the index")
            given = record.pop("settings")
            if version == 3:  # the format before neighbour tables: still served, searched live
                given["neighbours"] = 0
            settings = IndexSettings(**given)
            figures = MappingProxyType({k: float(v) for k, v in record.pop("figures").items()})
            return cls(settings=settings, figures=figures, **record)
        except ManifestError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ManifestError(f"index manifest is malformed: {error}") from error


class VectorIndex:
    """A usearch graph over one model's embeddings of one corpus, plus the vectors themselves.

    Build with `build` (then `save`), or `open` a saved folder. Keys are corpus rows. Searching is
    thread-safe; scores are cosine similarities.
    """

    __slots__ = (
        "_graph",
        "_manifest",
        "_neighbour_keys",
        "_neighbour_scores",
        "_neighbours",
        "_projection",
        "_vectors",
    )

    def __init__(
        self,
        graph: Any,
        vectors: npt.NDArray[np.float16],
        manifest: IndexManifest,
        projection: npt.NDArray[np.float32] | None = None,
        neighbours: npt.NDArray[np.void] | None = None,
    ) -> None:
        """Wrap a usearch index; prefer `build` and `open`."""
        self._graph = graph
        self._vectors = vectors
        self._manifest = manifest
        self._projection = projection
        self._neighbours = neighbours
        # Plain views of the (memory-mapped) fields: numpy's memmap subclass costs
        # microseconds a slice, and a lookup is a few slices.
        plain = None if neighbours is None else neighbours.view(np.ndarray)
        self._neighbour_keys = None if plain is None else plain["key"]
        self._neighbour_scores = None if plain is None else plain["score"]

    @classmethod
    def build(
        cls,
        vectors: npt.NDArray[np.float32],
        *,
        model: Embedder,
        corpus: Corpus,
        settings: IndexSettings | None = None,
        threads: int = 0,
        figures: Mapping[str, float] | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> VectorIndex:
        """Build the graph over `vectors` (row i embeds corpus row i), and the neighbour table.

        Args:
            vectors: (N, dim) float32 unit rows, N = len(corpus), dim = model.dim.
            model: The embedder that produced them (recorded in the manifest).
            corpus: The corpus they embed (recorded in the manifest).
            settings: Precision and graph settings; defaults to `IndexSettings()`.
            threads: usearch threads for adding (0: all).
            figures: Measurements to record (embedding time, throughput, ...).
            on_rows: Called with a count of rows each time that many more rows' neighbours are
                found (a search per row: the long part of building a large index).

        Raises:
            ValueError: `vectors` has the wrong shape or non-finite values.
        """
        settings = settings or IndexSettings()
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape != (len(corpus), model.dim):
            raise ValueError(
                f"vectors must have shape ({len(corpus)}, {model.dim}), got {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite")
        usearch = import_usearch()
        started = time.perf_counter()
        projection = principal_axes(vectors, settings.reduce)
        graph = usearch.Index(
            ndim=model.dim if projection is None else projection.shape[1],
            metric="cos" if projection is None else "l2sq",
            dtype=settings.dtype,
            connectivity=settings.connectivity,
            expansion_add=settings.expansion_add,
            expansion_search=settings.expansion_search,
        )
        keys = np.arange(len(corpus), dtype=np.uint64)
        for start in range(0, len(corpus), 65536):  # in slices: `vectors` may be memory-mapped
            rows = slice(start, start + 65536)
            part = np.ascontiguousarray(vectors[rows], dtype=np.float32)
            if projection is not None:
                part = part @ projection
            graph.add(keys[rows], part, threads=threads)
        halves = vectors.astype(np.float16)
        measured = {"build_seconds": round(time.perf_counter() - started, 3), **(figures or {})}
        rescore = settings.rescore
        if rescore is None:
            started = time.perf_counter()
            rescore, recall = _tune_rescore(
                graph, projection, vectors, halves, settings.tune_recall
            )
            measured["tuned_recall_at_10"] = round(recall, 4)
            measured["tune_seconds"] = round(time.perf_counter() - started, 3)
        manifest = IndexManifest(
            model=model.name,
            model_version=str(model.version),
            model_sha256=model.sha256,
            corpus=corpus.name,
            corpus_digest=corpus.digest,
            count=len(corpus),
            dim=model.dim,
            metric="cos",
            settings=settings,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            index_bytes=0,
            index_sha256="",
            vectors_bytes=0,
            projection_bytes=0,
            projection_sha256="",
            rescore=rescore,
            figures=MappingProxyType(measured),
        )
        index = cls(graph, halves, manifest, projection)
        if not settings.neighbours:
            return index
        started = time.perf_counter()
        step, recall = index._table_rescore(vectors, settings.neighbours, settings.tune_recall)
        table = index._neighbour_table(vectors, settings.neighbours, step, threads, on_rows)
        measured["neighbours_rescore"] = float(step)
        measured["neighbours_recall"] = round(recall, 4)
        measured["neighbours_seconds"] = round(time.perf_counter() - started, 3)
        manifest = _replace(manifest, figures=MappingProxyType(measured))
        return cls(graph, halves, manifest, projection, table)

    def _table_rescore(
        self, vectors: npt.NDArray[np.float32], depth: int, target: float
    ) -> tuple[int, float]:
        """The candidates multiplier of the table's searches, and its recall@`depth`.

        `rescore` was tuned for the top 10, where a reduced graph's error weighs most; a
        table `depth` deep takes (depth + 1) x step candidates, so a smaller step serves it
        (at 100,000 clustered vectors: 3 for recall@100 0.999, where the top 10 needed 24,
        which would cost 8 times the time). The smallest step of `RESCORE_STEPS` whose
        leave-one-out recall@`depth` on evenly spaced rows reaches `target`, and never fewer
        candidates than a top-10 search takes.
        """
        rescore, count = self._manifest.rescore, len(self)
        if not rescore:
            return 0, float("nan")
        least = -(-(_TUNE_K + 1) * rescore // (depth + 1))  # ceil
        steps = [step for step in RESCORE_STEPS if step >= least] or [RESCORE_STEPS[-1]]
        if (depth + 1) * steps[0] >= count:
            return steps[0], 1.0  # every row is a candidate: an exact scan
        rows = np.linspace(0, count - 1, min(count, _TUNE_QUERIES)).astype(np.int64)
        queries = np.asarray(vectors[rows], dtype=np.float32)
        truth = _top_k_excluding(vectors, queries, rows, depth)
        recall = 0.0
        for step in steps:
            keys, _ = self._search(queries, depth + 1, 0, step)
            hits = sum(
                len(set(found[found != row][:depth].tolist()) & set(best.tolist()))
                for found, row, best in zip(keys, rows.tolist(), truth, strict=True)
            )
            recall = hits / truth.size
            if recall >= target or (depth + 1) * step >= count:
                return step, recall
        return steps[-1], recall

    def _neighbour_table(
        self,
        vectors: npt.NDArray[np.float32],
        depth: int,
        rescore: int,
        threads: int,
        on_rows: Callable[[int], None] | None,
    ) -> npt.NDArray[np.void]:
        """Each row's `depth` nearest other rows by this index's own search with `rescore`
        candidates per result (padded with key -1 and score -inf when the corpus is smaller)."""
        count = len(self)
        table = np.empty((count, depth), dtype=_NEIGHBOUR)
        for start in range(0, count, _TABLE_CHUNK):
            rows = np.arange(start, min(count, start + _TABLE_CHUNK))
            queries = np.ascontiguousarray(vectors[start : rows[-1] + 1], dtype=np.float32)
            keys, scores = self._search(queries, min(depth + 1, count), threads, rescore)
            # Leave each row itself out (usually first; anywhere among equal vectors), keeping
            # the order of the others: a stable sort puts the kept columns first.
            own = keys == rows[:, None]
            keep = np.argsort(own, axis=1, kind="stable")[:, :depth]
            found = keep.shape[1]
            # A corpus of at most `depth` rows has no column to spare: the row is then last.
            kept = np.take_along_axis(own, keep, axis=1)
            table["key"][rows, :found] = np.where(kept, -1, np.take_along_axis(keys, keep, axis=1))
            table["score"][rows, :found] = np.where(
                kept, -np.inf, np.take_along_axis(scores, keep, axis=1)
            )
            table["key"][rows, found:] = -1
            table["score"][rows, found:] = -np.inf
            if on_rows is not None:
                on_rows(len(rows))
        return table

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the index folder; the manifest goes last, atomically.

        Returns:
            The folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST_FILE).unlink(missing_ok=True)  # incomplete until rewritten
        index_path, vectors_path = directory / INDEX_FILE, directory / VECTORS_FILE
        projection_path = directory / PROJECTION_FILE
        # Write beside and rename: a process with the old files memory-mapped keeps reading them.
        staged_index = directory / f".{INDEX_FILE}.partial"
        staged_vectors = directory / f".{VECTORS_FILE}.partial"
        self._graph.save(str(staged_index))
        with staged_vectors.open("wb") as stream:
            np.save(stream, np.ascontiguousarray(self._vectors, dtype=np.float16))
        os.replace(staged_index, index_path)
        os.replace(staged_vectors, vectors_path)
        if self._projection is None:
            projection_path.unlink(missing_ok=True)
        else:
            staged_projection = directory / f".{PROJECTION_FILE}.partial"
            with staged_projection.open("wb") as stream:
                np.save(stream, self._projection)
            os.replace(staged_projection, projection_path)
        neighbours_path = directory / NEIGHBOURS_FILE
        if self._neighbours is None:
            neighbours_path.unlink(missing_ok=True)
        else:
            staged_neighbours = directory / f".{NEIGHBOURS_FILE}.partial"
            with staged_neighbours.open("wb") as stream:
                np.save(stream, np.ascontiguousarray(self._neighbours))
            os.replace(staged_neighbours, neighbours_path)
        table = self._neighbours is not None
        manifest = _replace(
            self._manifest,
            index_bytes=index_path.stat().st_size,
            index_sha256=file_sha256(index_path),
            vectors_bytes=vectors_path.stat().st_size,
            projection_bytes=projection_path.stat().st_size if self._projection is not None else 0,
            projection_sha256=file_sha256(projection_path) if self._projection is not None else "",
            neighbours_bytes=neighbours_path.stat().st_size if table else 0,
            neighbours_sha256=file_sha256(neighbours_path) if table else "",
        )
        _write_atomic(directory / MANIFEST_FILE, manifest.to_json())
        self._manifest = manifest
        return directory

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        model: Embedder | None = None,
        corpus: Corpus | None = None,
        view: bool = True,
        verify_checksum: bool = True,
    ) -> VectorIndex:
        """Open a saved index folder, checking it against the model and corpus it should serve.

        Args:
            directory: The folder `save` wrote.
            model: When given, the index must have been built by this model version (name, version
                and sha256).
            corpus: When given, the index must cover exactly this corpus (digest).
            view: Memory-map the graph read-only instead of loading it into memory.
            verify_checksum: Hash the graph file and the neighbour table against the manifest
                (reads them once; turn off for very large indexes whose files you trust). The
                projection is always checked.

        Raises:
            ManifestError: The folder is incomplete, its files differ from the manifest, or it was
                built by another model or over another corpus.
        """
        directory = Path(directory)
        try:
            text = (directory / MANIFEST_FILE).read_text(encoding="utf-8")
        except OSError as error:
            raise ManifestError(
                f"no complete index at {directory} (cannot read {MANIFEST_FILE}: {error.strerror})"
            ) from error
        manifest = IndexManifest.from_json(text)
        if model is not None:
            _check_model(manifest, model, directory)
        if corpus is not None:
            _check_corpus(manifest, corpus, directory)
        index_path, vectors_path = directory / INDEX_FILE, directory / VECTORS_FILE
        projection_path = directory / PROJECTION_FILE
        neighbours_path = directory / NEIGHBOURS_FILE
        for path, expected in (
            (index_path, manifest.index_bytes),
            (vectors_path, manifest.vectors_bytes),
            (projection_path, manifest.projection_bytes or -1),
            (neighbours_path, manifest.neighbours_bytes or -1),
        ):
            actual = path.stat().st_size if path.is_file() else -1
            if actual != expected:
                raise ManifestError(
                    f"{path} has {actual} bytes, its manifest says {expected}: rebuild the index"
                )
        if verify_checksum and file_sha256(index_path) != manifest.index_sha256:
            raise ManifestError(f"{index_path} does not match its manifest's sha256: rebuild it")
        if (
            verify_checksum
            and manifest.neighbours_bytes
            and file_sha256(neighbours_path) != manifest.neighbours_sha256
        ):
            raise ManifestError(
                f"{neighbours_path} does not match its manifest's sha256: rebuild the index"
            )
        projection = None
        if manifest.projection_bytes:
            # Small, and every query goes through it: always checked.
            if file_sha256(projection_path) != manifest.projection_sha256:
                raise ManifestError(
                    f"{projection_path} does not match its manifest's sha256: rebuild the index"
                )
            projection = _load_array(projection_path)
            if projection.dtype != np.float32 or projection.ndim != 2:
                raise ManifestError(f"{projection_path} does not hold a float32 matrix")
            projection = np.ascontiguousarray(projection)
        graph_dim = manifest.dim if projection is None else projection.shape[1]
        usearch = import_usearch()
        graph = usearch.Index.restore(str(index_path), view=view)
        if graph is None or graph.ndim != graph_dim or len(graph) != manifest.count:
            raise ManifestError(f"{index_path} is not the usearch index its manifest describes")
        if projection is not None and projection.shape[0] != manifest.dim:
            raise ManifestError(f"{projection_path} does not project {manifest.dim}-d embeddings")
        graph.expansion_search = manifest.settings.expansion_search
        vectors = _load_array(vectors_path, mapped=True)
        if vectors.shape != (manifest.count, manifest.dim) or vectors.dtype != np.float16:
            raise ManifestError(
                f"{vectors_path} does not hold ({manifest.count}, {manifest.dim}) f16"
            )
        neighbours = None
        if manifest.neighbours_bytes:
            neighbours = _load_array(neighbours_path, mapped=True)
            depth = manifest.settings.neighbours
            if neighbours.shape != (manifest.count, depth) or neighbours.dtype != _NEIGHBOUR:
                raise ManifestError(
                    f"{neighbours_path} does not hold the ({manifest.count}, {depth}) neighbour "
                    "table its manifest describes: rebuild the index"
                )
        elif manifest.settings.neighbours:
            raise ManifestError(f"{neighbours_path} is missing: rebuild the index")
        return cls(graph, vectors, manifest, projection, neighbours)

    def with_figures(self, figures: Mapping[str, float]) -> VectorIndex:
        """The same index with `figures` added to its manifest's (not saved until `save`)."""
        merged = MappingProxyType({**self._manifest.figures, **figures})
        manifest = _replace(self._manifest, figures=merged)
        return VectorIndex(self._graph, self._vectors, manifest, self._projection, self._neighbours)

    @property
    def manifest(self) -> IndexManifest:
        """What this index is and how it was built."""
        return self._manifest

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._manifest.dim

    @property
    def graph_dim(self) -> int:
        """The dimension of the vectors in the graph (`dim` unless the graph is reduced)."""
        return self.dim if self._projection is None else int(self._projection.shape[1])

    def __len__(self) -> int:
        return self._manifest.count

    def vector(self, key: int) -> npt.NDArray[np.float32]:
        """The stored (float16-rounded) embedding of corpus row `key`, as float32.

        Raises:
            IndexError: `key` is not a row of the index.
        """
        if not 0 <= key < len(self):
            raise IndexError(f"key {key} is outside 0..{len(self) - 1}")
        return np.asarray(self._vectors[key], dtype=np.float32)

    def neighbours(
        self, key: int, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None:
        """Corpus row `key`'s `k` nearest other rows, read from the table built with the index.

        Returns:
            ``(keys, similarities)``, best first (fewer than `k` only when the corpus has fewer
            other rows); None when the index has no table `k` deep: search with `vector(key)`.

        Raises:
            IndexError: `key` is not a row of the index.
        """
        table = self._neighbour_keys
        if table is None or self._neighbour_scores is None or k > table.shape[1]:
            return None
        if not 0 <= key < len(self):
            raise IndexError(f"key {key} is outside 0..{len(self) - 1}")
        keys = table[key, :k]
        found = int(np.count_nonzero(keys >= 0))  # padding (-1) is trailing
        return keys[:found].astype(np.int64), self._neighbour_scores[key, :found].copy()

    def neighbour_keys(self, key: int, k: int) -> list[int] | None:
        """`neighbours`' keys alone, as a Python list: what a server turns into ids, in one
        conversion in C (arrays would cost a search by corpus id a few numpy calls more)."""
        table = self._neighbour_keys
        if table is None or k > table.shape[1]:
            return None
        if not 0 <= key < len(self):
            raise IndexError(f"key {key} is outside 0..{len(self) - 1}")
        keys: list[int] = table[key, :k].tolist()
        if keys and keys[-1] < 0:  # padding (-1) is trailing
            keys = keys[: keys.index(-1)]
        return keys

    def neighbour_lists(self, key: int, k: int) -> tuple[list[int], list[float]] | None:
        """`neighbours` as Python lists (see `neighbour_keys`)."""
        keys = self.neighbour_keys(key, k)
        if keys is None or self._neighbour_scores is None:
            return None
        scores: list[float] = self._neighbour_scores[key, : len(keys)].tolist()
        return keys, scores

    def search(
        self, queries: npt.NDArray[np.float32], k: int, *, threads: int = 1
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The `k` nearest corpus rows of each query.

        Args:
            queries: (dim,) or (n, dim) float32 unit vectors.
            k: Neighbours per query.
            threads: usearch threads for a batch of queries (0: all).

        Returns:
            ``(keys, similarities)``, each (n, k) (or (k,) for one query): corpus rows best first,
            and their cosine similarities. When fewer than `k` rows are found (a corpus smaller
            than `k`, or a graph walk that reached fewer), keys are padded with -1 and
            similarities with -inf.

        Raises:
            ValueError: `k` is not positive or `queries` has the wrong shape.
        """
        return self._search(queries, k, threads, self._manifest.rescore)

    def _search(
        self, queries: npt.NDArray[np.float32], k: int, threads: int, rescore: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """`search` with `rescore` candidates per result (0: the graph's own order)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        batch = np.asarray(queries, dtype=np.float32)
        single = batch.ndim == 1
        batch = batch[None, :] if single else batch
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), got {np.shape(queries)}")
        if not np.isfinite(batch).all():
            raise ValueError("queries must be finite")
        fetch = min(len(self), k * rescore if rescore else k)
        if fetch >= len(self):
            # Asked for everything: a graph walk can miss a poorly linked node, a scan cannot.
            # Row by row with the rescoring kernel: the same scores as a graph search would give.
            every = np.asarray(self._vectors)
            keys = np.full((batch.shape[0], k), -1, dtype=np.int64)
            scores = np.full((batch.shape[0], k), -np.inf, dtype=np.float32)
            for row, query in enumerate(batch.astype(np.float16)):
                similarity = _dot_f16(every, query)
                order = np.argsort(-similarity, kind="stable")[:k]
                keys[row, : order.size] = order
                scores[row, : order.size] = np.clip(similarity[order], -1.0, 1.0)
            return (keys[0], scores[0]) if single else (keys, scores)
        walked = batch if self._projection is None else batch @ self._projection
        matches = self._graph.search(np.ascontiguousarray(walked), fetch, threads=threads)
        found = np.asarray(matches.keys, dtype=np.int64).reshape(batch.shape[0], -1)
        distances = np.asarray(matches.distances, dtype=np.float32).reshape(batch.shape[0], -1)
        # usearch answers one query with `Matches` (no `counts`), more with `BatchMatches`.
        counts = np.asarray(getattr(matches, "counts", [found.shape[1]])).reshape(-1)
        keys = np.full((batch.shape[0], k), -1, dtype=np.int64)
        scores = np.full((batch.shape[0], k), -np.inf, dtype=np.float32)
        halves = batch.astype(np.float16) if rescore else batch
        for row in range(batch.shape[0]):
            candidates = found[row, : counts[row]]
            if rescore:
                similarity = _dot_f16(self._vectors[candidates], halves[row])
                order = np.argsort(-similarity, kind="stable")[:k]
                best, best_scores = candidates[order], np.clip(similarity[order], -1.0, 1.0)
            else:
                best, best_scores = candidates[:k], 1.0 - distances[row, : counts[row]][:k]
            keys[row, : best.size] = best
            scores[row, : best.size] = best_scores
        if single:
            return keys[0], scores[0]
        return keys, scores


RESCORE_STEPS: Final = (2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)
"""The candidate multipliers the tuning of `IndexSettings.rescore` tries, smallest first."""
_TUNE_QUERIES: Final = 300
_TABLE_CHUNK: Final = 1024
_TUNE_K: Final = 10


def _tune_rescore(
    graph: Any,
    projection: npt.NDArray[np.float32] | None,
    vectors: npt.NDArray[np.floating[Any]],
    halves: npt.NDArray[np.float16],
    target: float,
) -> tuple[int, float]:
    """The smallest step of `RESCORE_STEPS` whose leave-one-out recall@10 on evenly spaced
    corpus rows reaches `target` (the last step when none does), and that recall."""
    count = len(vectors)
    rows = np.linspace(0, count - 1, min(count, _TUNE_QUERIES)).astype(np.int64)
    queries = np.asarray(vectors[rows], dtype=np.float32)
    truth = _top_k_excluding(vectors, queries, rows, _TUNE_K)
    walked = np.ascontiguousarray(queries if projection is None else queries @ projection)
    recall = 0.0
    for step in RESCORE_STEPS:
        fetch = min(count, (_TUNE_K + 1) * step)
        matches = graph.search(walked, fetch, threads=0)
        found = np.asarray(matches.keys, dtype=np.int64).reshape(len(rows), -1)
        # One query gives `Matches` (no `counts`), more give `BatchMatches`.
        counts = np.asarray(getattr(matches, "counts", [found.shape[1]])).reshape(-1)
        hits = 0
        for i, row in enumerate(rows.tolist()):
            candidates = found[i, : counts[i]]
            candidates = candidates[candidates != row]
            similarity = _dot_f16(halves[candidates], queries[i].astype(np.float16))
            best = candidates[np.argsort(-similarity, kind="stable")[:_TUNE_K]]
            hits += len(set(best.tolist()) & set(truth[i].tolist()))
        recall = hits / truth.size
        if recall >= target or fetch >= count:
            return step, recall
    return RESCORE_STEPS[-1], recall


def _top_k_excluding(
    vectors: npt.NDArray[np.floating[Any]],
    queries: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    k: int,
) -> npt.NDArray[np.int64]:
    """Exact top-`k` rows by inner product for each query, leaving out the query's own row;
    the corpus is read in blocks (it may be memory-mapped and larger than memory)."""
    best_keys = np.empty((len(queries), 0), dtype=np.int64)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), 65536):
        block = np.asarray(vectors[start : start + 65536], dtype=np.float32)
        scores = queries @ block.T
        inside = (rows >= start) & (rows < start + len(block))
        scores[inside, rows[inside] - start] = -np.inf
        keys = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_keys = np.concatenate([best_keys, keys], axis=1)
        keep = min(k, best_scores.shape[1])
        top = np.argpartition(-best_scores, keep - 1, axis=1)[:, :keep]
        best_scores = np.take_along_axis(best_scores, top, axis=1)
        best_keys = np.take_along_axis(best_keys, top, axis=1)
    return best_keys


def principal_axes(
    vectors: npt.NDArray[np.floating[Any]], count: int
) -> npt.NDArray[np.float32] | None:
    """The top `count` principal axes of `vectors` as a (dim, count) float32 projection.

    Fitted on at most 20,000 rows, evenly spaced through the corpus (no randomness). None when
    `count` is 0 or would not reduce anything: not below the dimension or the number of rows.
    """
    rows, dim = vectors.shape
    if count == 0 or count >= dim or count >= rows:
        return None
    sample = np.asarray(vectors[np.linspace(0, rows - 1, min(rows, _PCA_SAMPLE)).astype(np.intp)])
    sample = sample.astype(np.float64)
    _, _, axes = np.linalg.svd(sample - sample.mean(axis=0), full_matrices=False)
    return np.ascontiguousarray(axes[:count].T, dtype=np.float32)


def _dot_f16(
    rows: npt.NDArray[np.float16], query: npt.NDArray[np.float16]
) -> npt.NDArray[np.float32]:
    """Inner products of float16 `rows` (n, d) with a float16 `query` (d,), accumulated in float32.

    numkong's SIMD kernels: numpy would first cast the rows to float32, which costs several times
    the graph walk.
    """
    if rows.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    distances = numkong.cdist(rows, query[None, :], "dot", out_dtype="float32")
    return np.asarray(distances, dtype=np.float32).reshape(-1)


def exact_search(
    vectors: npt.NDArray[np.floating[Any]], queries: npt.NDArray[np.floating[Any]], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact top-`k` cosine search of unit `queries` (n, d) among unit `vectors` (N, d), in numpy.

    The reference the graph is measured against. Ties are broken by the lower row.
    """
    similarity = np.asarray(queries, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T
    k = min(k, similarity.shape[1])
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(similarity, order, axis=1)


def import_usearch() -> Any:
    """Import ``usearch.index``, after onnxruntime.

    Raises:
        RankerError: usearch is not installed.
    """
    # usearch 2.26.2+ crashes if onnxruntime is imported after it; importing onnxruntime first is
    # harmless and keeps every path through this package safe.
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401
    try:
        from usearch import index as usearch_index
    except ImportError as error:
        raise RankerError(
            "usearch is not installed: install Braid's dependencies (pip install 'usearch<2.26.2')"
        ) from error
    return usearch_index


def _check_model(manifest: IndexManifest, model: Embedder, directory: Path) -> None:
    built = (manifest.model, manifest.model_version, manifest.model_sha256)
    wanted = (model.name, str(model.version), model.sha256)
    if built != wanted:
        raise ManifestError(
            f"the index at {directory} was built by {built[0]} version {built[1]} "
            f"(sha256 {built[2][:12]}), not {wanted[0]} version {wanted[1]} "
            f"(sha256 {wanted[2][:12]}): rebuild it with `python -m rankers index`"
        )


def _check_corpus(manifest: IndexManifest, corpus: Corpus, directory: Path) -> None:
    if (manifest.corpus, manifest.corpus_digest) != (corpus.name, corpus.digest):
        raise ManifestError(
            f"the index at {directory} covers corpus {manifest.corpus} "
            f"(digest {manifest.corpus_digest[:12]}), not {corpus.name} "
            f"(digest {corpus.digest[:12]}): rebuild it with `python -m rankers index`"
        )


def _load_array(path: Path, *, mapped: bool = False) -> npt.NDArray[Any]:
    try:
        array: npt.NDArray[Any] = np.load(
            path, mmap_mode="r" if mapped else None, allow_pickle=False
        )
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path} is unreadable: {error}") from error
    return array


def _replace(manifest: IndexManifest, **changes: Any) -> IndexManifest:
    return dataclasses.replace(manifest, **changes)


def _write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
