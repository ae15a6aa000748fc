"""Nearest-neighbour indexes: one usearch HNSW graph per (model, corpus), with a manifest beside it.

An index folder holds:

- ``index.usearch``: the usearch graph, keys = corpus rows, cosine metric;
- ``vectors.npy``: the embeddings as float16 (N, dim), memory-mapped on open: the exact rescoring
  step and the ranker's corpus-id queries read rows from it;
- ``index.json``: the `IndexManifest` (model name, version and sha256; corpus name and digest;
  dimension, metric, precision and graph settings; file sizes and sha256; build time and figures).
  Written last, so its presence marks a complete index.

`VectorIndex.open` maps the graph as a read-only view and refuses (`ManifestError`) an index built
by another model version or over another corpus, or whose files differ from the manifest.

Defaults (`IndexSettings`): int8 graph, connectivity 16, expansion 128 to build and 96 to search,
the top 3k re-ranked by exact cosine on the float16 vectors. Chosen by measurement here (usearch
2.26.1, one query at a time, CPU time per query on one core, recall@10 against exact search), on
50,000 clustered 1280-d vectors made from effnet-lite0 emoji embeddings (each a real embedding times
log-normal noise, s = 0.8, so only 68% of nearest neighbours share a source)::

    precision   ef   recall@10   us/query   build (cpu-s)   graph bytes/vector
    f32         64   0.988       920        79              5,120 + links
    f16         64   0.987       720        45              2,560 + links
    f16         96   0.996       690        45
    i8          64   0.905       370        21              1,280 + links
    i8 + top 3k 64   0.983       490        20
    i8 + top 3k 96   0.991       720        25

float32 is the slowest on this CPU (as the issue found), int8 alone loses recall, and int8 with
rescoring matches float16 at the same speed while building twice as fast in half the memory; ef 96
leaves headroom for 1M vectors, where a graph needs a wider search for the same recall. On the emoji
corpus itself (3,822 vectors) f32, f16 and rescored int8 all reach recall@10 >= 0.995 from ef 32.

usearch is imported lazily, after onnxruntime (usearch 2.26.2 and later crash when onnxruntime is
imported after them; the pin in pyproject.toml and ``tests/rankers/test_import_order.py`` guard the
same thing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from rankers.errors import ManifestError, RankerError

if TYPE_CHECKING:
    from rankers.corpus import Corpus
    from rankers.embedder import Embedder

__all__ = [
    "INDEX_FILE",
    "MANIFEST_FILE",
    "VECTORS_FILE",
    "IndexManifest",
    "IndexSettings",
    "Precision",
    "VectorIndex",
    "exact_search",
    "import_usearch",
]

Precision = Literal["f32", "f16", "i8"]

INDEX_FILE: Final = "index.usearch"
VECTORS_FILE: Final = "vectors.npy"
MANIFEST_FILE: Final = "index.json"
_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """How the graph is built and searched.

    Attributes:
        dtype: The precision usearch stores and compares vectors in.
        connectivity: Edges per node (HNSW's M).
        expansion_add: Candidate list size while building (efConstruction).
        expansion_search: Candidate list size while searching (ef); raised to k when k is larger.
        rescore: When > 0, fetch ``rescore * k`` candidates and re-rank them by exact cosine on the
            stored vectors (recovers the recall int8 loses).
    """

    dtype: Precision = "i8"
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 96
    rescore: int = 3

    def __post_init__(self) -> None:
        if self.dtype not in get_args(Precision):
            raise ValueError(f"dtype must be one of {get_args(Precision)}, got {self.dtype!r}")
        for name in ("connectivity", "expansion_add", "expansion_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        if isinstance(self.rescore, bool) or not isinstance(self.rescore, int) or self.rescore < 0:
            raise ValueError(f"rescore must be a non-negative integer, got {self.rescore!r}")


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
            if record.pop("format") != _FORMAT:
                raise ManifestError("index manifest of an unknown format: rebuild the index")
            settings = IndexSettings(**record.pop("settings"))
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

    __slots__ = ("_graph", "_manifest", "_vectors")

    def __init__(
        self, graph: Any, vectors: npt.NDArray[np.float16], manifest: IndexManifest
    ) -> None:
        """Wrap a usearch index; prefer `build` and `open`."""
        self._graph = graph
        self._vectors = vectors
        self._manifest = manifest

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
    ) -> VectorIndex:
        """Build the graph over `vectors` (row i embeds corpus row i).

        Args:
            vectors: (N, dim) float32 unit rows, N = len(corpus), dim = model.dim.
            model: The embedder that produced them (recorded in the manifest).
            corpus: The corpus they embed (recorded in the manifest).
            settings: Precision and graph settings; defaults to `IndexSettings()`.
            threads: usearch threads for adding (0: all).
            figures: Measurements to record (embedding time, throughput, ...).

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
        graph = usearch.Index(
            ndim=model.dim,
            metric="cos",
            dtype=settings.dtype,
            connectivity=settings.connectivity,
            expansion_add=settings.expansion_add,
            expansion_search=settings.expansion_search,
        )
        graph.add(
            np.arange(len(corpus), dtype=np.uint64),
            np.ascontiguousarray(vectors, dtype=np.float32),
            threads=threads,
        )
        measured = {"build_seconds": round(time.perf_counter() - started, 3), **(figures or {})}
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
            figures=MappingProxyType(measured),
        )
        return cls(graph, vectors.astype(np.float16), manifest)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the index folder; the manifest goes last, atomically.

        Returns:
            The folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST_FILE).unlink(missing_ok=True)  # incomplete until rewritten
        index_path, vectors_path = directory / INDEX_FILE, directory / VECTORS_FILE
        # Write beside and rename: a process with the old files memory-mapped keeps reading them.
        staged_index = directory / f".{INDEX_FILE}.partial"
        staged_vectors = directory / f".{VECTORS_FILE}.partial"
        self._graph.save(str(staged_index))
        with staged_vectors.open("wb") as stream:
            np.save(stream, np.ascontiguousarray(self._vectors, dtype=np.float16))
        os.replace(staged_index, index_path)
        os.replace(staged_vectors, vectors_path)
        manifest = _replace(
            self._manifest,
            index_bytes=index_path.stat().st_size,
            index_sha256=_file_sha256(index_path),
            vectors_bytes=vectors_path.stat().st_size,
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
            verify_checksum: Hash the graph file against the manifest (reads it once; turn off for
                very large indexes whose files you trust).

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
        for path, expected in (
            (index_path, manifest.index_bytes),
            (vectors_path, manifest.vectors_bytes),
        ):
            actual = path.stat().st_size if path.is_file() else -1
            if actual != expected:
                raise ManifestError(
                    f"{path} has {actual} bytes, its manifest says {expected}: rebuild the index"
                )
        if verify_checksum and _file_sha256(index_path) != manifest.index_sha256:
            raise ManifestError(f"{index_path} does not match its manifest's sha256: rebuild it")
        usearch = import_usearch()
        graph = usearch.Index.restore(str(index_path), view=view)
        if graph is None or graph.ndim != manifest.dim or len(graph) != manifest.count:
            raise ManifestError(f"{index_path} is not the usearch index its manifest describes")
        graph.expansion_search = manifest.settings.expansion_search
        try:
            vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ManifestError(f"{vectors_path} is unreadable: {error}") from error
        if vectors.shape != (manifest.count, manifest.dim) or vectors.dtype != np.float16:
            raise ManifestError(
                f"{vectors_path} does not hold ({manifest.count}, {manifest.dim}) f16"
            )
        return cls(graph, vectors, manifest)

    def with_figures(self, figures: Mapping[str, float]) -> VectorIndex:
        """The same index with `figures` added to its manifest's (not saved until `save`)."""
        merged = MappingProxyType({**self._manifest.figures, **figures})
        return VectorIndex(self._graph, self._vectors, _replace(self._manifest, figures=merged))

    @property
    def manifest(self) -> IndexManifest:
        """What this index is and how it was built."""
        return self._manifest

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._manifest.dim

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
            and their cosine similarities. When fewer than `k` rows exist, keys are padded with -1
            and similarities with -inf.

        Raises:
            ValueError: `k` is not positive or `queries` has the wrong shape.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        batch = np.asarray(queries, dtype=np.float32)
        single = batch.ndim == 1
        batch = batch[None, :] if single else batch
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), got {np.shape(queries)}")
        if not np.isfinite(batch).all():
            raise ValueError("queries must be finite")
        settings = self._manifest.settings
        fetch = min(len(self), k * settings.rescore if settings.rescore else k)
        if fetch >= len(self):
            # Asked for everything: a graph walk can miss a poorly linked node, a scan cannot.
            keys, scores = exact_search(self._vectors, batch, k)
            keys, scores = _pad(keys, np.clip(scores, -1.0, 1.0), k)
            return (keys[0], scores[0]) if single else (keys, scores)
        matches = self._graph.search(np.ascontiguousarray(batch), fetch, threads=threads)
        found = np.asarray(matches.keys, dtype=np.int64).reshape(batch.shape[0], -1)
        distances = np.asarray(matches.distances, dtype=np.float32).reshape(batch.shape[0], -1)
        # usearch answers one query with `Matches` (no `counts`), more with `BatchMatches`.
        counts = np.asarray(getattr(matches, "counts", [found.shape[1]])).reshape(-1)
        keys = np.full((batch.shape[0], k), -1, dtype=np.int64)
        scores = np.full((batch.shape[0], k), -np.inf, dtype=np.float32)
        for row in range(batch.shape[0]):
            candidates = found[row, : counts[row]]
            if settings.rescore:
                similarity = self._vectors[candidates].astype(np.float32) @ batch[row]
                order = np.argsort(-similarity, kind="stable")[:k]
                best, best_scores = candidates[order], np.clip(similarity[order], -1.0, 1.0)
            else:
                best, best_scores = candidates[:k], 1.0 - distances[row, : counts[row]][:k]
            keys[row, : best.size] = best
            scores[row, : best.size] = best_scores
        if single:
            return keys[0], scores[0]
        return keys, scores


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


def _pad(
    keys: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    missing = k - keys.shape[1]
    if missing <= 0:
        return keys, scores
    return (
        np.pad(keys, ((0, 0), (0, missing)), constant_values=-1),
        np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf),
    )


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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
