"""Embedding throughput of the indexing path, beside the raw onnxruntime session, in one run.

For each model and onnxruntime thread count, at batch size 32, on the first ``--images`` images of
the emoji corpus (64 x 64 RGB, as ``python -m rankers index`` reads them):

* raw: an ``onnxruntime.InferenceSession`` opened here on the same model file with the same
  intra-op thread count (one inter-op thread, sequential, as the library sets), run batch after
  batch on inputs preprocessed beforehand and held in memory: the ceiling;
* embed: ``OnnxEmbedder.embed`` on the corpus images: checking, resizing and normalising each image
  (on a worker thread, overlapping the session run), the session run, the output checks and the
  L2 normalisation;
* index: ``rankers.indexing.build`` over a corpus of the same images, into a temporary folder; its
  reported images/s covers the embedding loop of ``python -m rankers index`` (the same work as
  embed, plus writing each batch's chunk file), not the graph build after it.

The kinds run in turn, ``--rounds`` times (order reversed every other round), with preprocessing
alone timed as well. Printed: the best images/s of each kind; each kind's share of raw, the median
over rounds of its images/s divided by raw's in the same round (other processes on the machine slow
paired runs alike, so they mostly cancel out); preprocessing's cost per image; and the CPU ceiling,
the best share the machine's CPUs allow when preprocessing (work raw does not do) has to share them
with the session's threads: 100% while a core is spare, below it when the session's threads take
every core. Target: embed and index >= 90% of raw. The load average is printed before and after: on
a machine busier than its cores the spare core is gone and the shares drop and get noisier.

Default run (about 1.5 minutes on a quiet 2-core machine, up to 3 when it is busy): effnet-lite0
and effnet-lite0-int8, threads 1 and 2, 256 images (8 batches), 7 rounds. Needs the emoji corpus
(``make data``).

Run: python -m benchmarks.rankers_embed [--models effnet-lite0,effnet-lite2] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankers import corpus as corpora
from rankers import indexing, models
from rankers.corpus import Corpus
from rankers.embedder import OnnxEmbedder, as_images, default_threads

BATCH = 32
TARGET = 0.90


@dataclass(frozen=True, slots=True)
class Row:
    """One model at one thread count: best images/s of each kind, and the shares of raw.

    A share is the median, over rounds, of the kind's throughput divided by raw's in the same
    round: pairing runs that were seconds apart cancels most of what other processes do to both.
    """

    model: str
    threads: int
    raw: float
    embed: float
    index: float
    embed_share: float
    index_share: float
    prepare_ms: float
    ceiling: float


def raw_session(embedder: OnnxEmbedder, threads: int) -> Any:
    """A bare onnxruntime session on the model file, with the library's thread settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(embedder.manifest.model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def head(corpus: Corpus, count: int) -> Corpus:
    """The first `count` images of `corpus` as a corpus of their own."""
    return Corpus.from_arrays(
        f"{corpus.name}-first-{count}",
        corpus.ids[:count],
        corpus.images[:count],
        styles=corpus.styles[:count],
        concepts=corpus.concepts[:count],
        subcategories=corpus.subcategories[:count],
        categories=corpus.categories[:count],
        files=corpus.files[:count],
    )


def images_per_second(run: Callable[[], object], count: int) -> float:
    """`count` divided by the wall time of one call of `run`."""
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def measure(name: str, threads: int, sample: Corpus, rounds: int) -> Row:
    """Raw, embed and index throughput of model `name` with `threads` onnxruntime threads."""
    embedder = models.load_embedder(name, threads=threads)
    if not isinstance(embedder, OnnxEmbedder):
        raise SystemExit(f"{name} is not an ONNX model")
    session = raw_session(embedder, threads)
    manifest = embedder.manifest
    count = len(sample)
    images = sample.images
    batches = [embedder.prepare(list(images[i : i + BATCH])) for i in range(0, count, BATCH)]

    def raw() -> None:
        for batch in batches:
            session.run([manifest.output_name], {manifest.input_name: batch})

    def embed() -> None:
        embedder.embed(images, batch_size=BATCH)

    def prepare() -> None:
        for start in range(0, count, BATCH):
            embedder.prepare(as_images(images[start : start + BATCH]))

    def index() -> float:
        with tempfile.TemporaryDirectory(prefix="braid-bench-embed-") as folder:
            report = indexing.build(embedder, sample, folder, batch_size=BATCH)
        return report.images_per_second

    # Warm both sessions up (first runs allocate their arenas).
    session.run([manifest.output_name], {manifest.input_name: batches[0]})
    embedder.embed(images[:BATCH], batch_size=BATCH)
    kinds: dict[str, Callable[[], float]] = {
        "raw": lambda: images_per_second(raw, count),
        "embed": lambda: images_per_second(embed, count),
        "index": index,
        "prepare": lambda: images_per_second(prepare, count),
    }
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(rounds):
        order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
        for kind in order:
            rates[kind].append(kinds[kind]())
    raws = np.asarray(rates["raw"])
    # CPU-seconds per image: the session's (all its threads busy) plus preprocessing's.
    work = threads / max(rates["raw"]) + 1 / max(rates["prepare"])
    ceiling = min(1.0, default_threads() / work / max(rates["raw"]))
    return Row(
        name,
        threads,
        raw=max(rates["raw"]),
        embed=max(rates["embed"]),
        index=max(rates["index"]),
        embed_share=float(np.median(np.asarray(rates["embed"]) / raws)),
        index_share=float(np.median(np.asarray(rates["index"]) / raws)),
        prepare_ms=1000 / max(rates["prepare"]),
        ceiling=ceiling,
    )


def verdict(share: float) -> str:
    """A share of raw as a percentage, with ok or MISSED against the target."""
    return f"{share:>6.1%} {'ok' if share >= TARGET else 'MISSED'}"


def load_average() -> str:
    """The 1-minute load average and the CPU count, for judging how busy the machine was."""
    try:
        return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rankers_embed", description=__doc__)
    parser.add_argument("--models", default="effnet-lite0,effnet-lite0-int8")
    parser.add_argument("--threads", default="1,2", help="onnxruntime intra-op thread counts")
    parser.add_argument("--images", type=int, default=256, help="corpus images per run")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    thread_counts = [int(value) for value in args.threads.split(",")]
    corpus = corpora.load("emoji")
    sample = head(corpus, min(args.images, len(corpus)))
    shape = "x".join(map(str, sample.images.shape[1:3]))
    print(
        f"emoji corpus, {len(sample)} images of {shape} px, batch {BATCH}, {args.rounds} rounds; "
        f"best images/s, median share of raw (target >= {TARGET:.0%}); {load_average()}"
    )
    print(
        f"{'model':<20} {'threads':>7} {'raw session':>12} {'embed()':>10} {'share':>13} "
        f"{'indexing':>10} {'share':>13} {'prep ms/img':>12} {'CPU ceiling':>12}"
    )
    for name in names:
        for threads in thread_counts:
            row = measure(name, threads, sample, args.rounds)
            print(
                f"{row.model:<20} {row.threads:>7} {row.raw:>12,.1f} "
                f"{row.embed:>10,.1f} {verdict(row.embed_share)} "
                f"{row.index:>10,.1f} {verdict(row.index_share)} "
                f"{row.prepare_ms:>12.2f} {row.ceiling:>12.0%}",
                flush=True,
            )
    print(
        "prep ms/img: preprocessing alone, one thread. CPU ceiling: the best share the "
        f"{default_threads()} CPUs allow when preprocessing (absent from raw) must share them "
        "with the session's threads."
    )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
