"""k-NN speed and recall: Braid's `VectorIndex` beside exact numpy search and hnswlib, in one run.

Data: 1280-d unit vectors (effnet-lite0's embedding dimension) from a two-level Gaussian mixture,
calibrated on real effnet-lite0 embeddings of the emoji corpus: a shared mean direction (real CNN
features share one), N / 50 centres (2,000 at N = 100,000) in groups of 20, whose offsets follow a
power-law spectrum (variance of component i ~ 1/i) in a random basis, cluster sizes from a
Dirichlet(1), per-cluster spread log-normal (s = 0.5) and anisotropic noise (variance ~ i^-1.2 in
another random basis). The emoji embeddings have random-pair cosine 0.43, PCA participation ratio
54 and local intrinsic dimension (MLE, k = 20) 13; the mixture gives 0.42, 45 and 20 at 100,000
(printed each run): as clustered as real embeddings, and no easier for a graph. The centres grow
with N because a larger corpus holds more distinct things, not more copies of each: 1,000,000
vectors around 2,000 centres would be 500 noise draws per centre, locally plain Gaussian noise
(intrinsic dimension 33, measured), which defeats graphs as uniform random vectors do. Queries are
held-out draws from the same mixture; the ground truth is exact float32 search.

Measured for each N, k = 10:

* ours: ``VectorIndex.build`` with its default `IndexSettings` but no neighbour table (all cores;
  the table, a search per corpus row at build time so that a corpus-id query is a lookup, has
  no counterpart in hnswlib and no part in these searches): a float16 graph over the
  vectors' top 128 principal axes, whose top 5k candidates are rescored by exact cosine on the
  float16 vectors. Saved, then opened with ``VectorIndex.open`` as a memory-mapped view, as the
  rankers open it; beside it, the same usearch graph searched directly (projected query, no
  rescoring, no checks), to show where the time goes;
* exact: numpy brute force, a float32 matrix product and ``argpartition``, batched in blocks of
  queries whose scores fill 256 MiB (and one query at a time, on a subset: it is slow);
* hnswlib: M = 16, ef_construction = 128, inner-product space, ef = the smallest on a grid from
  8 to 512 (steps of 4 up to 64, then 8 up to 128) that reaches recall@10 >= 0.98 on the queries.

Figures: recall@10; queries/s one query at a time (one thread) and batched (all cores); p50 and p99
latency of single queries; build time; file size; resident memory (RSS) of a fresh process after
opening the index and after running the queries (ours as a view and loaded; hnswlib, which cannot
map, loaded). Single queries run in chunks of 100, ours and hnswlib alternating, and the share of
hnswlib's queries/s is the median over chunks of the paired ratio, so other processes on the
machine slow both alike. Then a sweep of the search-time settings (``expansion_search`` up to
twice hnswlib's ef, x ``rescore``) on the same graph, and of ``expansion_search`` on a full-width
int8 graph with the top 3k rescored (the previous default: ``IndexSettings(dtype="i8", reduce=0,
rescore=3)``), each point opened through ``VectorIndex.open`` with the manifest's settings
changed; it names the settings that meet the target, or the closest.

Target: recall@10 >= 0.98 at >= 80% of hnswlib's single-query queries/s.

Default run (about 2 minutes on a quiet 2-core machine, 3 when it is busy): N = 100,000, 1,000
queries. ``--sizes 100000,1000000`` adds N = 1,000,000: about 30 minutes more (20 with
``--no-full``) and 17 GB resident at its peak, 10 GB of which are page cache of memory-mapped
files (the vectors and the indexes), 5 GB hnswlib's graph. Needs ``hnswlib`` (the bench extra).

Run: python -m benchmarks.rankers_knn [--sizes 100000,1000000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rankers import models
from rankers.corpus import Corpus
from rankers.index import (
    INDEX_FILE,
    MANIFEST_FILE,
    PROJECTION_FILE,
    VECTORS_FILE,
    IndexManifest,
    IndexSettings,
    VectorIndex,
    import_usearch,
)

K = 10
TARGET_RECALL = 0.98
TARGET_SHARE = 0.80
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_EFS = (*range(8, 64, 4), *range(64, 128, 8), *range(128, 256, 16), *range(256, 513, 64))
SWEEP_EXPANSION = (24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768)
SWEEP_RESCORE: tuple[int | None, ...] = (None, 3, 5, 8)
"""None: the value tuned when the index was built (the default)."""
POINTS_PER_CENTRE = 50
CENTRES_PER_GROUP = 20
CHUNK = 100
WARMUP = 200

Vectors = npt.NDArray[np.float32]
Keys = npt.NDArray[np.int64]
Search = Callable[[Vectors], Keys]
"""Searches one query (dim,) and returns its K nearest rows."""


# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mixture:
    """A two-level Gaussian mixture of directions; `sample` draws unit vectors from it."""

    centres: Vectors
    groups: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    spread: Vectors
    noise_scale: Vectors
    noise_basis: Vectors

    @classmethod
    def calibrated(cls, dim: int, rng: np.random.Generator, *, centres: int) -> Mixture:
        """The mixture described in the module docstring (fitted to effnet-lite0 embeddings)."""
        groups = max(1, centres // CENTRES_PER_GROUP)
        order = np.arange(1, dim + 1, dtype=np.float64)
        centre_scale = order**-0.5  # variance ~ 1 / i
        centre_scale /= np.linalg.norm(centre_scale)
        noise_scale = order**-0.6  # variance ~ i^-1.2
        noise_scale /= np.linalg.norm(noise_scale)
        centre_basis = random_rotation(dim, rng)
        mean = np.abs(rng.standard_normal(dim))
        mean /= np.linalg.norm(mean)
        group_offsets = 0.6 * (rng.standard_normal((groups, dim)) * centre_scale) @ centre_basis
        group_of = rng.integers(0, groups, size=centres)
        own = 0.4 * (rng.standard_normal((centres, dim)) * centre_scale) @ centre_basis
        points = 0.8 * mean + group_offsets[group_of] + own
        return cls(
            centres=points.astype(np.float32),
            groups=group_of.astype(np.int64),
            weights=rng.dirichlet(np.ones(centres)),
            spread=(0.55 * rng.lognormal(0.0, 0.5, size=centres)).astype(np.float32),
            noise_scale=noise_scale.astype(np.float32),
            noise_basis=random_rotation(dim, rng).astype(np.float32),
        )

    def sample(
        self,
        count: int,
        rng: np.random.Generator,
        *,
        out: Vectors | None = None,
        block: int = 32768,
    ) -> tuple[Vectors, npt.NDArray[np.int64]]:
        """`count` unit vectors and the centre each was drawn from (in blocks, to bound memory).

        Args:
            count: How many.
            rng: The randomness.
            out: A (count, dim) float32 array to fill (a memory-mapped file, say).
            block: Rows drawn at a time.
        """
        dim = self.centres.shape[1]
        labels = rng.choice(len(self.weights), size=count, p=self.weights).astype(np.int64)
        if out is None:
            out = np.empty((count, dim), dtype=np.float32)
        for start in range(0, count, block):
            rows = labels[start : start + block]
            noise = rng.standard_normal((rows.size, dim), dtype=np.float32) * self.noise_scale
            part = self.centres[rows] + self.spread[rows, None] * (noise @ self.noise_basis)
            part /= np.linalg.norm(part, axis=1, keepdims=True)
            out[start : start + rows.size] = part
        return out, labels


def random_rotation(dim: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A random orthogonal (dim, dim) matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return np.asarray(q * np.sign(np.diag(r)), dtype=np.float64)


def data_statistics(vectors: Vectors, rng: np.random.Generator) -> str:
    """Random-pair cosine, PCA participation ratio and local intrinsic dimension, on samples."""
    probes = vectors[rng.choice(len(vectors), size=300, replace=False)]
    cosines, nearest_rows = [], []
    for start in range(0, len(probes), 50):
        similarity = probes[start : start + 50] @ vectors.T
        cosines.append(float(similarity.mean()))
        top = -np.partition(-similarity, 20, axis=1)[:, :21]
        nearest_rows.append(np.sort(top, axis=1)[:, ::-1][:, 1:])  # skip the probe itself
    pair_cosine = float(np.mean(cosines))
    nearest = np.concatenate(nearest_rows)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * nearest, 1e-12))
    lid = float(np.median(-1.0 / np.mean(np.log(distance[:, :-1] / distance[:, -1:]), axis=1)))
    sample = vectors[rng.choice(len(vectors), size=min(4000, len(vectors)), replace=False)]
    variance = np.linalg.svd(sample - sample.mean(axis=0), compute_uv=False) ** 2
    ratio = float(variance.sum() ** 2 / (variance**2).sum())
    return (
        f"random-pair cosine {pair_cosine:.2f}, PCA participation ratio {ratio:.0f}, "
        f"local intrinsic dimension {lid:.0f} (emoji effnet-lite0 embeddings: 0.43, 54, 13)"
    )


def corpus_of(labels: npt.NDArray[np.int64], groups: npt.NDArray[np.int64]) -> Corpus:
    """A corpus standing for the vectors (1 x 1 blank images), for the index's manifest."""
    count = len(labels)
    return Corpus.from_arrays(
        f"mixture-{count}",
        [f"mixture/{row}" for row in range(count)],
        np.zeros((count, 1, 1, 3), dtype=np.uint8),
        styles=["mixture"] * count,
        concepts=[f"centre-{label}" for label in labels.tolist()],
        subcategories=[f"group-{group}" for group in groups[labels].tolist()],
    )


# -- exact search and recall ----------------------------------------------------------------------


def exact_top_k(vectors: Vectors, queries: Vectors, k: int) -> Keys:
    """The `k` rows of highest inner product with each query, best first (brute force).

    Queries go in blocks whose score matrix stays near 256 MiB.
    """
    block = max(1, 2**26 // len(vectors))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ vectors.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[start : start + block] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: Keys, truth: Keys) -> float:
    """The mean share of each query's true top k found in its answer."""
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


# -- timing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Single:
    """One searcher's single-query run: answers and per-query latencies in seconds."""

    keys: Keys
    latencies: npt.NDArray[np.float64]

    @property
    def qps(self) -> float:
        return float(len(self.latencies) / self.latencies.sum())

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1e3)


def run_single(search: Search, queries: Vectors) -> Single:
    """Search `queries` one at a time, timing each."""
    keys = np.empty((len(queries), K), dtype=np.int64)
    latencies = np.empty(len(queries), dtype=np.float64)
    clock = time.perf_counter
    for row, query in enumerate(queries):
        started = clock()
        keys[row] = search(query)
        latencies[row] = clock() - started
    return Single(keys, latencies)


def paired_single(searches: Sequence[Search], queries: Vectors) -> tuple[list[Single], list[float]]:
    """Run each search one query at a time, in chunks, alternating; and each one's share of the
    last's queries/s (median over chunks of the paired ratio)."""
    parts: list[list[Single]] = [[] for _ in searches]
    for number, start in enumerate(range(0, len(queries), CHUNK)):
        chunk = queries[start : start + CHUNK]
        order = range(len(searches)) if number % 2 == 0 else reversed(range(len(searches)))
        for which in order:
            parts[which].append(run_single(searches[which], chunk))
    runs = [
        Single(
            np.concatenate([part.keys for part in chunks]),
            np.concatenate([part.latencies for part in chunks]),
        )
        for chunks in parts
    ]
    reference = [part.qps for part in parts[-1]]
    shares = [
        float(np.median([part.qps / ref for part, ref in zip(chunks, reference, strict=True)]))
        for chunks in parts
    ]
    return runs, shares


def best_batch_qps(search: Callable[[Vectors], object], queries: Vectors, rounds: int = 3) -> float:
    """Queries/s of searching all `queries` in one call, best of `rounds`."""
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        search(queries)
        best = max(best, len(queries) / (time.perf_counter() - started))
    return best


# -- resident memory, measured in a fresh process ------------------------------------------------


def rss_kib() -> dict[str, int]:
    """This process's resident memory from /proc/self/status: total, anonymous, file-backed."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    found: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in fields:
                found[fields[name]] = int(value.split()[0])
    return found


def child(mode: str, path: str, queries_path: str) -> None:
    """Open an index in this (fresh) process and print its RSS deltas as one JSON line."""
    queries = np.load(queries_path)
    import_usearch()
    hnswlib = import_hnswlib() if mode == "hnswlib" else None
    before = rss_kib()
    search: Search
    if mode in ("view", "load"):
        index = VectorIndex.open(path, view=mode == "view")

        def search(query: Vectors) -> Keys:
            return index.search(query, K)[0]
    elif hnswlib is not None:
        graph = hnswlib.Index(space="ip", dim=queries.shape[1])
        graph.load_index(path)
        graph.set_num_threads(1)
        graph.set_ef(int(os.environ["BRAID_BENCH_EF"]))

        def search(query: Vectors) -> Keys:
            return np.asarray(graph.knn_query(query, k=K)[0][0], dtype=np.int64)
    else:
        raise SystemExit(f"unknown mode {mode!r}")

    opened = rss_kib()
    run_single(search, queries)
    searched = rss_kib()
    delta = {
        f"{stage}_{kind}": (after[kind] - before[kind]) / 1024
        for stage, after in (("open", opened), ("search", searched))
        for kind in ("anon", "file")
    }
    print(json.dumps(delta))


def measure_rss(mode: str, path: Path, queries_path: Path, ef: int = 0) -> dict[str, float]:
    """RSS deltas (MiB) of opening `path` in mode view, load or hnswlib, in a fresh process."""
    command = [sys.executable, "-m", "benchmarks.rankers_knn", "--child", mode, str(path)]
    environment = {**os.environ, "BRAID_BENCH_EF": str(ef)}
    result = subprocess.run(
        [*command, str(queries_path)], capture_output=True, text=True, env=environment, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"RSS measurement ({mode}) failed:\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


# -- the indexes -------------------------------------------------------------------------------


def import_hnswlib() -> Any:
    """Import hnswlib, or exit saying how to install it."""
    try:
        import hnswlib  # type: ignore[import-untyped]
    except ImportError:
        raise SystemExit(
            "hnswlib is not installed: pip install -e '.[bench]' (or pip install hnswlib)"
        ) from None
    return hnswlib


def with_settings(source: Path, target: Path, settings: IndexSettings) -> Path:
    """An index folder sharing `source`'s files (hard links) whose manifest has `settings`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (INDEX_FILE, VECTORS_FILE, PROJECTION_FILE):
        if not (source / name).exists():
            continue
        (target / name).unlink(missing_ok=True)
        try:
            os.link(source / name, target / name)
        except OSError:
            (target / name).symlink_to(source / name)
    manifest = IndexManifest.from_json((source / MANIFEST_FILE).read_text(encoding="utf-8"))
    rescore = manifest.rescore if settings.rescore is None else settings.rescore
    changed = dataclasses.replace(manifest, settings=settings, rescore=rescore)
    (target / MANIFEST_FILE).write_text(changed.to_json(), encoding="utf-8")
    return target


def ours_search(index: VectorIndex) -> Search:
    def search(query: Vectors) -> Keys:
        return index.search(query, K)[0]

    return search


def hnsw_search(graph: Any) -> Search:
    def search(query: Vectors) -> Keys:
        return np.asarray(graph.knn_query(query, k=K, num_threads=1)[0][0], dtype=np.int64)

    return search


def file_mib(*paths: Path) -> float:
    return sum(path.stat().st_size for path in paths) / 2**20


def load_average() -> str:
    try:
        return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unknown"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# -- one size -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """The vectors, the queries and their exact answers for one N."""

    vectors: Vectors
    queries: Vectors
    warmup: Vectors
    truth: Keys
    queries_path: Path


@dataclass(frozen=True, slots=True)
class Point:
    """One swept setting: its recall and single-query speed."""

    settings: IndexSettings
    recall: float
    qps: float
    share: float

    @property
    def meets(self) -> bool:
        return self.recall >= TARGET_RECALL and self.share >= TARGET_SHARE


def build_ours(
    problem: Problem, embedder: Any, corpus: Corpus, settings: IndexSettings, folder: Path
) -> float:
    """Build our index through the API (all cores) and save it; the build's wall time."""
    started = time.perf_counter()
    built = VectorIndex.build(
        problem.vectors, model=embedder, corpus=corpus, settings=settings, threads=0
    )
    seconds = time.perf_counter() - started
    built.save(folder)
    print(f"ours ({settings.dtype}) built in {seconds:.1f} s", flush=True)
    return seconds


def build_hnsw(problem: Problem, path: Path) -> tuple[Any, float, int]:
    """Build hnswlib's graph (all cores), save it, and tune ef; (graph, build seconds, ef)."""
    hnswlib = import_hnswlib()
    count, dim = problem.vectors.shape
    started = time.perf_counter()
    graph = hnswlib.Index(space="ip", dim=dim)
    graph.init_index(
        max_elements=count, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=1
    )
    for start in range(0, count, 65536):  # in slices: the vectors may be a memory-mapped file
        rows = np.arange(start, min(count, start + 65536))
        graph.add_items(np.ascontiguousarray(problem.vectors[rows]), rows, num_threads=-1)
    seconds = time.perf_counter() - started
    graph.save_index(str(path))
    # Batched search gives the same answers as single queries, faster: tune on it.
    tuning: list[tuple[int, float]] = []
    for ef in HNSW_EFS:
        graph.set_ef(ef)
        found = graph.knn_query(problem.queries, k=K, num_threads=-1)[0]
        tuning.append((ef, recall_at_k(found, problem.truth)))
        if tuning[-1][1] >= TARGET_RECALL:
            break
    ef = tuning[-1][0]
    graph.set_ef(ef)
    steps = ", ".join(f"{ef} {recall:.3f}" for ef, recall in tuning)
    print(f"hnswlib built in {seconds:.1f} s; ef tuning (recall@10): {steps}", flush=True)
    return graph, seconds, ef


def usearch_alone(folder: Path) -> Search:
    """Search the usearch graph of `folder` directly (no wrapper, no rescoring): where time goes."""
    manifest = IndexManifest.from_json((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    settings = manifest.settings
    graph = import_usearch().Index.restore(str(folder / INDEX_FILE), view=True)
    graph.expansion_search = settings.expansion_search
    fetch = K * max(1, manifest.rescore)
    projection = np.load(folder / PROJECTION_FILE) if manifest.projection_bytes else None

    def search(query: Vectors) -> Keys:
        walked = query if projection is None else query @ projection
        return np.asarray(graph.search(walked, fetch, threads=1).keys[:K], dtype=np.int64)

    return search


@dataclass(frozen=True, slots=True)
class Exact:
    """Exact search's figures: single queries (a subset) and batched queries/s."""

    single: Single
    batch_qps: float


def measure_exact(problem: Problem) -> Exact:
    """Time exact numpy search, single (on a subset: it is slow) and batched."""
    vectors, queries = problem.vectors, problem.queries

    def exact_one(query: Vectors) -> Keys:
        return np.asarray(exact_top_k(vectors, query[None, :], K)[0], dtype=np.int64)

    subset = queries[: max(10, min(len(queries), 10_000_000 // len(vectors)))]
    single = run_single(exact_one, subset)
    batch = best_batch_qps(lambda q: exact_top_k(vectors, q, K), queries, rounds=2)
    return Exact(single, batch)


def drop_page_cache(*paths: Path) -> None:
    """Ask the kernel to drop `paths`' clean cached pages (unmapped files only), so files the
    searches do not read leave no memory pressure on the ones they do (at 1M, gigabytes)."""
    for path in paths:
        if path.exists() and hasattr(os, "posix_fadvise"):
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def compare(
    problem: Problem,
    exact: Exact,
    folder: Path,
    ours_build: float,
    graph: Any,
    hnsw_build: float,
    ef: int,
) -> None:
    """The main table: exact, hnswlib and ours (and usearch alone), and the verdict."""
    queries, work = problem.queries, problem.queries_path.parent
    index = VectorIndex.open(folder, view=True)
    searches = [usearch_alone(folder), ours_search(index), hnsw_search(graph)]
    for search in searches:
        run_single(search, problem.warmup)
    (alone, ours, hnsw), (alone_share, ours_share, _) = paired_single(searches, queries)
    ours_batch = best_batch_qps(lambda q: index.search(q, K, threads=0), queries)
    hnsw_batch = best_batch_qps(lambda q: graph.knn_query(q, k=K, num_threads=-1), queries)
    ours_recall = recall_at_k(ours.keys, problem.truth)
    rows = (
        ("exact numpy (f32)", 1.0, exact.single, exact.batch_qps, None,
         file_mib(work / "vectors.npy"), None),
        (f"hnswlib ef={ef}", recall_at_k(hnsw.keys, problem.truth), hnsw, hnsw_batch,
         hnsw_build, file_mib(work / "hnswlib.bin"), 1.0),
        ("ours (defaults)", ours_recall, ours, ours_batch, ours_build,
         file_mib(folder / INDEX_FILE, folder / VECTORS_FILE, folder / PROJECTION_FILE),
         ours_share),
        ("  its usearch search", recall_at_k(alone.keys, problem.truth), alone, None, None,
         file_mib(folder / INDEX_FILE), alone_share),
    )  # fmt: skip
    print(
        f"{'method':<22} {'recall@10':>9} {'single q/s':>11} {'share':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'batch q/s':>10} {'build s':>8} {'file MiB':>9}"
    )
    for name, recall, single, batch, build, size, share in rows:
        print(
            f"{name:<22} {recall:>9.3f} {single.qps:>11,.0f} "
            f"{'-' if share is None else f'{share:.0%}':>6} {single.percentile_ms(50):>7.2f} "
            f"{single.percentile_ms(99):>7.2f} {'-' if batch is None else f'{batch:,.0f}':>10} "
            f"{'-' if build is None else f'{build:.1f}':>8} {size:>9,.0f}"
        )
    print(
        f"(share: of hnswlib's single q/s, median of paired chunks of {CHUNK}; exact single "
        f"queries: {len(exact.single.latencies)}; ours' file = graph + f16 vectors + "
        "projection; 'its usearch search' = the same graph searched directly, without the "
        "rescoring and checks)"
    )
    recall_ok, share_ok = ours_recall >= TARGET_RECALL, ours_share >= TARGET_SHARE
    print(
        f"target recall@10 >= {TARGET_RECALL}: {ours_recall:.3f} {verdict(recall_ok)}; "
        f"single q/s >= {TARGET_SHARE:.0%} of hnswlib's: {ours_share:.0%} {verdict(share_ok)}; "
        f"overall {verdict(recall_ok and share_ok)}",
        flush=True,
    )


def memory(problem: Problem, folder: Path, hnsw_path: Path, ef: int) -> None:
    """Resident memory of fresh processes opening each index and running the queries."""
    path = problem.queries_path
    figures = (
        ("ours, view", measure_rss("view", folder, path)),
        ("ours, loaded", measure_rss("load", folder, path)),
        ("hnswlib, loaded", measure_rss("hnswlib", hnsw_path, path, ef)),
    )
    print(
        f"resident memory of a fresh process, MiB (anonymous + file-backed; file-backed pages "
        f"are the shared page cache); after {len(problem.queries):,} single queries:"
    )
    for name, rss in figures:
        print(
            f"  {name:<16} on open: +{rss['open_anon']:,.0f} anon +{rss['open_file']:,.0f} file; "
            f"after queries: +{rss['search_anon']:,.0f} anon +{rss['search_file']:,.0f} file"
        )


def sweep(
    problem: Problem,
    folder: Path,
    work: Path,
    reference: Search,
    grid: Sequence[tuple[int, int | None]],
) -> list[Point]:
    """Recall and single-query speed of one graph under other expansion_search and rescore."""
    base = IndexManifest.from_json((folder / MANIFEST_FILE).read_text(encoding="utf-8")).settings
    points: list[Point] = []
    for expansion, rescore in grid:
        settings = dataclasses.replace(base, expansion_search=expansion, rescore=rescore)
        target = with_settings(
            folder, work / f"sweep-{settings.dtype}-{expansion}-{rescore}", settings
        )
        index = VectorIndex.open(target, view=True, verify_checksum=False)
        recall = recall_at_k(index.search(problem.queries, K, threads=0)[0], problem.truth)
        run_single(ours_search(index), problem.warmup[: WARMUP // 2])
        (single, _), (share, _) = paired_single([ours_search(index), reference], problem.queries)
        point = Point(settings, recall, single.qps, share)
        points.append(point)
        mark = " (default)" if settings == OURS else ""
        graph = f"{settings.reduce or index.dim}-d {settings.dtype}"
        used = f"{index.manifest.rescore}{'' if rescore is not None else ' tuned'}"
        print(
            f"  {graph:>10} {expansion:>16} {used:>9} {recall:>9.3f} "
            f"{single.qps:>11,.0f} {share:>6.0%} {verdict(point.meets):>6}{mark}",
            flush=True,
        )
        shutil.rmtree(target)
    return points


def summarise(points: Sequence[Point]) -> None:
    """Which swept settings meet the target, or which come closest."""

    def name(point: Point) -> str:
        s = point.settings
        return (
            f"dtype={s.dtype} reduce={s.reduce} expansion_search={s.expansion_search} "
            f"rescore={'tuned' if s.rescore is None else s.rescore} "
            f"(recall {point.recall:.3f}, {point.share:.0%} of hnswlib)"
        )

    def by_share(point: Point) -> float:
        return point.share

    def by_recall(point: Point) -> float:
        return point.recall

    meeting = [point for point in points if point.meets]
    if meeting:
        fastest = max(meeting, key=by_share)
        print(f"settings meeting the target: {len(meeting)}; fastest: {name(fastest)}")
        return
    print("no swept setting meets the target; closest:")
    accurate = [point for point in points if point.recall >= TARGET_RECALL]
    fast = [point for point in points if point.share >= TARGET_SHARE]
    if accurate:
        best = max(accurate, key=by_share)
        print(f"  fastest with recall@10 >= {TARGET_RECALL}: {name(best)}")
    if fast:
        best = max(fast, key=by_recall)
        print(f"  best recall at >= {TARGET_SHARE:.0%} of hnswlib's q/s: {name(best)}")


OURS = IndexSettings(neighbours=0)
"""The default graph and search settings, without the neighbour table (see the docstring)."""
FULL_WIDTH = IndexSettings(dtype="i8", reduce=0, expansion_search=96, rescore=3, neighbours=0)
"""The alternative graph: every dimension, int8, the top 3k rescored (the default until 2026-11)."""


def bench_size(
    count: int, query_count: int, work: Path, rng: np.random.Generator, *, full: bool
) -> None:
    """Everything above for `count` vectors; prints as it goes."""
    embedder = models.load_embedder("effnet-lite0", threads=1)  # its identity goes in the manifest
    dim = embedder.dim
    centres = max(1, count // POINTS_PER_CENTRE)
    print(f"\n== N = {count:,} vectors of {dim} d, {query_count:,} held-out queries, k = {K}")
    mixture = Mixture.calibrated(dim, rng, centres=centres)
    # The vectors live in a file, memory-mapped: page cache rather than private memory (5 GB at 1M).
    vectors_path = work / "vectors.npy"
    filled = np.lib.format.open_memmap(
        vectors_path, mode="w+", dtype=np.float32, shape=(count, dim)
    )
    _, labels = mixture.sample(count, rng, out=filled)
    filled.flush()
    del filled
    vectors = np.load(vectors_path, mmap_mode="r")
    drawn, _ = mixture.sample(query_count + WARMUP, rng)
    print(
        f"data: {centres:,} centres in {len(np.unique(mixture.groups)):,} groups; "
        f"{data_statistics(vectors, rng)}",
        flush=True,
    )
    queries_path = work / "queries.npy"
    np.save(queries_path, drawn[:query_count])
    problem = Problem(
        vectors=vectors,
        queries=drawn[:query_count],
        warmup=drawn[query_count:],
        truth=exact_top_k(vectors, drawn[:query_count], K),
        queries_path=queries_path,
    )
    corpus = corpus_of(labels, mixture.groups)
    folder, full_folder = work / "ours", work / "ours-full"
    # Build one index at a time and drop it once saved: at 1M each holds gigabytes.
    ours_build = build_ours(problem, embedder, corpus, OURS, folder)
    if full:
        build_ours(problem, embedder, corpus, FULL_WIDTH, full_folder)
    del corpus
    hnsw_path = work / "hnswlib.bin"
    graph, hnsw_build, ef = build_hnsw(problem, hnsw_path)
    exact = measure_exact(problem)
    # Unmap the float32 vectors and drop them (and hnswlib's file, loaded) from the page cache:
    # at 1M they are 10 GB the searches never read, which would crowd out the pages they do.
    problem = dataclasses.replace(problem, vectors=np.empty((0, dim), dtype=np.float32))
    del vectors
    drop_page_cache(vectors_path, hnsw_path)
    compare(problem, exact, folder, ours_build, graph, hnsw_build, ef)
    del graph  # gigabytes at 1M: free it before fresh processes load theirs
    memory(problem, folder, hnsw_path, ef)
    graph = import_hnswlib().Index(space="ip", dim=dim)
    graph.load_index(str(hnsw_path))
    graph.set_ef(ef)
    print(
        f"sweep of search-time settings, single queries ({query_count:,}), share of "
        f"hnswlib ef={ef} (paired):"
    )
    header = f"{'graph':>10} {'expansion_search':>16} {'rescore':>9} {'recall@10':>9}"
    print(f"  {header} {'single q/s':>11} {'share':>6} {'target':>6}")
    reference = hnsw_search(graph)
    # Search widths up to twice hnswlib's (at least 128): the recall the data needs grows with N.
    widths = [width for width in SWEEP_EXPANSION if width <= max(128, 2 * ef)]
    grid = [(width, rescore) for width in widths for rescore in SWEEP_RESCORE]
    points = sweep(problem, folder, work, reference, grid)
    if full:
        points += sweep(problem, full_folder, work, reference, [(width, 3) for width in widths])
    summarise(points)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rankers_knn", description=__doc__)
    parser.add_argument("--sizes", default="100000", help="comma-separated N (e.g. 100000,1000000)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-full",
        action="store_true",
        help="skip building and sweeping the full-width int8 graph (the alternative)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    sizes = [int(value) for value in args.sizes.split(",") if value.strip()]
    print(f"k-NN benchmark; {load_average()}")
    for count in sizes:
        with tempfile.TemporaryDirectory(prefix="braid-bench-knn-") as work:
            rng = np.random.default_rng(args.seed)
            bench_size(count, args.queries, Path(work), rng, full=not args.no_full)
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
