"""`rankers.indexing`: resumable batch embedding, the index it writes, and `ensure_index`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from rankers.cache import CACHE_ENV
from rankers.corpus import Corpus
from rankers.embedder import Images, PixelEmbedder, as_images
from rankers.index import MANIFEST_FILE, IndexSettings, VectorIndex
from rankers.indexing import build, ensure_index, index_dir, installed_indexes


class RecordingEmbedder(PixelEmbedder):
    """The pixel embedder, recording the first pixel of every image it embeds."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__(16)
        self.seen: list[int] = []

    def prepare(self, frames: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        self.seen += [int(frame[0, 0, 0]) for frame in frames]
        return super().prepare(frames)


class Interrupt(Exception):
    pass


def stop_after(batches: int) -> Callable[[int, int], None]:
    def callback(done: int, total: int) -> None:
        if done == batches:
            raise Interrupt

    return callback


def numbered_corpus(count: int) -> Corpus:
    """Images whose first pixel is their row, so an embedder can tell which rows it saw."""
    images = np.random.default_rng(1).integers(0, 256, size=(count, 8, 8, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count)
    return Corpus.from_arrays(
        "numbered",
        [f"n{i}" for i in range(count)],
        images,
        styles=["s"] * count,
        concepts=[f"c{i}" for i in range(count)],
        subcategories=["t"] * count,
    )


def test_interrupted_build_resumes_without_redoing_batches(tmp_path: Path) -> None:
    corpus = numbered_corpus(100)
    embedder = RecordingEmbedder()
    with pytest.raises(Interrupt):
        build(embedder, corpus, tmp_path, batch_size=8, on_batch=stop_after(5))
    assert embedder.seen[:40] == list(range(40))
    assert not (tmp_path / MANIFEST_FILE).exists()  # no index until every batch is in
    # The prefetch thread may already have prepared batch 6; it was not saved, so it is redone.
    resumed = RecordingEmbedder()
    report = build(resumed, corpus, tmp_path, batch_size=16)  # a new batch size: the old one wins
    assert resumed.seen == list(range(40, 100))
    assert (report.batches, report.resumed, report.embedded) == (13, 5, 8)
    index = VectorIndex.open(tmp_path, model=resumed, corpus=corpus)
    np.testing.assert_allclose(
        np.stack([index.vector(row) for row in range(100)]),
        PixelEmbedder(16).embed(corpus.images),
        atol=2e-3,
    )
    assert not (tmp_path / "chunks").exists()
    assert index.manifest.figures["resumed_batches"] == 5


def test_damaged_chunk_is_redone(tmp_path: Path) -> None:
    corpus = numbered_corpus(30)
    with pytest.raises(Interrupt):
        build(RecordingEmbedder(), corpus, tmp_path, batch_size=10, on_batch=stop_after(2))
    (tmp_path / "chunks" / "0000000010.npy").write_bytes(b"not a chunk")
    again = RecordingEmbedder()
    report = build(again, corpus, tmp_path, batch_size=10)
    assert again.seen == list(range(10, 30))
    assert report.resumed == 1


def test_chunks_of_another_model_are_discarded(tmp_path: Path) -> None:
    corpus = numbered_corpus(30)
    with pytest.raises(Interrupt):
        build(PixelEmbedder(8), corpus, tmp_path, batch_size=10, on_batch=stop_after(2))
    again = RecordingEmbedder()
    report = build(again, corpus, tmp_path, batch_size=10)
    assert report.resumed == 0
    assert again.seen == list(range(30))


def test_plain_embedders_are_indexed_too(tmp_path: Path) -> None:
    class Plain:
        name, version, dim, sha256 = "plain", "1", 768, "1" * 64

        def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
            return PixelEmbedder(16).embed(as_images(images))

    corpus = numbered_corpus(20)
    report = build(Plain(), corpus, tmp_path, batch_size=6)
    assert (report.batches, report.embedded) == (4, 4)
    assert report.recall_at_10 == 1.0


def test_ensure_index_builds_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_corpus: Corpus
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    embedder = RecordingEmbedder()
    directory = ensure_index(embedder, tiny_corpus)
    assert directory == index_dir("pixels-16", "tiny") == tmp_path / "indexes" / "pixels-16__tiny"
    assert len(embedder.seen) == len(tiny_corpus)
    assert ensure_index(embedder, tiny_corpus) == directory
    assert len(embedder.seen) == len(tiny_corpus)  # reused, not rebuilt
    ((listed, manifest),) = installed_indexes()
    assert listed == directory
    assert manifest.count == len(tiny_corpus)
    # The neighbour table's depth is the builder's choice: not a reason to re-embed.
    assert ensure_index(embedder, tiny_corpus, settings=IndexSettings(neighbours=0)) == directory
    assert len(embedder.seen) == len(tiny_corpus)
    # Other graph settings are.
    ensure_index(embedder, tiny_corpus, settings=IndexSettings(connectivity=8))
    assert len(embedder.seen) == 2 * len(tiny_corpus)


def test_bad_batch_size(tmp_path: Path, tiny_corpus: Corpus) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        build(PixelEmbedder(16), tiny_corpus, tmp_path, batch_size=0)
