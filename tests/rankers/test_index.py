"""`rankers.index`: build, save, open as a view, verify, and search against exact numpy search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rankers_fixtures import make_tiny_corpus

from rankers.corpus import Corpus
from rankers.embedder import Embedder, PixelEmbedder
from rankers.errors import ManifestError
from rankers.index import (
    INDEX_FILE,
    MANIFEST_FILE,
    PROJECTION_FILE,
    IndexManifest,
    IndexSettings,
    VectorIndex,
    exact_search,
    principal_axes,
)


def recall_at_10(index: VectorIndex, vectors: np.ndarray, rows: np.ndarray) -> float:
    exact, _ = exact_search(vectors, vectors[rows], 10)
    found, _ = index.search(vectors[rows], 10)
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), exact.tolist(), strict=True))
    return hits / (len(rows) * 10)


@pytest.fixture(scope="module")
def clustered() -> tuple[PixelEmbedder, Corpus, np.ndarray]:
    """A pixel embedder, a 24-image corpus, and its vectors."""
    embedder = PixelEmbedder(16)
    corpus = make_tiny_corpus()
    return embedder, corpus, embedder.embed(corpus.images)


def test_round_trip_and_view(
    tmp_path: Path, clustered: tuple[PixelEmbedder, Corpus, np.ndarray]
) -> None:
    embedder, corpus, vectors = clustered
    built = VectorIndex.build(vectors, model=embedder, corpus=corpus, figures={"answer": 42.0})
    keys, scores = built.search(vectors[:3], 5)
    built.save(tmp_path)
    for view in (True, False):
        opened = VectorIndex.open(tmp_path, model=embedder, corpus=corpus, view=view)
        again_keys, again_scores = opened.search(vectors[:3], 5)
        np.testing.assert_array_equal(again_keys, keys)
        np.testing.assert_allclose(again_scores, scores, atol=1e-6)
        assert len(opened) == len(corpus)
        np.testing.assert_allclose(opened.vector(4), vectors[4], atol=2e-3)
    manifest = opened.manifest
    assert (manifest.model, manifest.corpus, manifest.dim) == ("pixels-16", "tiny", 768)
    assert manifest.corpus_digest == corpus.digest
    assert manifest.model_sha256 == embedder.sha256
    assert manifest.figures["answer"] == 42.0
    assert manifest.built_at.endswith("+00:00")  # timezone-aware
    assert IndexManifest.from_json(manifest.to_json()) == manifest


def test_each_query_finds_itself_first(
    tmp_path: Path, clustered: tuple[PixelEmbedder, Corpus, np.ndarray]
) -> None:
    embedder, corpus, vectors = clustered
    index = VectorIndex.build(vectors, model=embedder, corpus=corpus)
    keys, scores = index.search(vectors, 1)
    np.testing.assert_array_equal(keys[:, 0], np.arange(len(corpus)))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=2e-3)
    single_keys, _ = index.search(vectors[7], 3)  # one query: 1-d results
    assert single_keys.shape == (3,)
    assert single_keys[0] == 7


def test_short_results_are_padded(clustered: tuple[PixelEmbedder, Corpus, np.ndarray]) -> None:
    embedder, corpus, vectors = clustered
    index = VectorIndex.build(vectors, model=embedder, corpus=corpus)
    keys, scores = index.search(vectors[:2], 30)
    assert keys.shape == (2, 30)
    assert (keys[:, 24:] == -1).all()
    assert np.isneginf(scores[:, 24:]).all()
    assert len(set(keys[0, :24].tolist())) == 24


@pytest.mark.parametrize(
    "settings",
    [
        IndexSettings(dtype="f32", reduce=0, rescore=0),
        IndexSettings(dtype="f16", reduce=0, rescore=0),
        IndexSettings(dtype="i8", reduce=0, rescore=0),
        IndexSettings(dtype="i8", reduce=0, rescore=3),
        IndexSettings(dtype="f16", reduce=16, rescore=5),
        IndexSettings(dtype="f32", reduce=16, rescore=5),
    ],
    ids=["f32", "f16", "i8", "i8-rescored", "reduced-f16", "reduced-f32"],
)
def test_every_precision_finds_the_exact_neighbours(settings: IndexSettings) -> None:
    rng = np.random.default_rng(5)
    centres = rng.gamma(0.5, size=(40, 64))
    vectors = centres[rng.integers(0, 40, 2000)] * rng.lognormal(0, 0.5, size=(2000, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    corpus = made_up_corpus("dots", 2000)
    model = _Fixed(64)
    index = VectorIndex.build(vectors, model=model, corpus=corpus, settings=settings)
    recall = recall_at_10(index, vectors, np.arange(0, 2000, 10))
    assert index.graph_dim == (settings.reduce or 64)
    assert recall >= (0.9 if settings == IndexSettings(dtype="i8", reduce=0, rescore=0) else 0.97)


def test_rescoring_is_tuned_to_the_corpus() -> None:
    """A coarse projection needs more candidates for the same recall: the tuning finds that,
    and held-out queries then reach about the recall it aimed for."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((60, 64)) * np.linspace(2.0, 0.2, 64)
    drawn = centres[rng.integers(0, 60, 2600)] + rng.standard_normal((2600, 64)) * 0.6
    drawn = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
    vectors, held_out = drawn[:2000], drawn[2000:]
    corpus = made_up_corpus("blobs", 2000)
    tuned = {}
    for reduce in (4, 32):
        settings = IndexSettings(reduce=reduce, tune_recall=0.97)
        index = VectorIndex.build(vectors, model=_Fixed(64), corpus=corpus, settings=settings)
        tuned[reduce] = index.manifest.rescore
        assert index.manifest.figures["tuned_recall_at_10"] >= 0.97
        exact, _ = exact_search(vectors, held_out, 10)
        found, _ = index.search(held_out, 10)
        hits = sum(
            len(set(a) & set(b)) for a, b in zip(found.tolist(), exact.tolist(), strict=True)
        )
        assert hits / exact.size >= 0.95
    assert tuned[4] > tuned[32]  # 4 axes rank candidates worse than 32


def test_a_one_image_corpus_builds_and_searches() -> None:
    vector = np.zeros((1, 8), np.float32)
    vector[0, 3] = 1.0
    index = VectorIndex.build(vector, model=_Fixed(8), corpus=made_up_corpus("one", 1))
    keys, scores = index.search(vector[0], 3)
    assert keys.tolist() == [0, -1, -1]
    assert scores[0] == pytest.approx(1.0)
    assert np.isneginf(scores[1:]).all()


def test_principal_axes_are_orthonormal_and_capture_the_spread() -> None:
    rng = np.random.default_rng(2)
    scales = np.array([5.0, 3.0, 2.0] + [0.1] * 29)
    rotation = np.linalg.qr(rng.standard_normal((32, 32)))[0]
    vectors = (rng.standard_normal((500, 32)) * scales) @ rotation
    axes = principal_axes(vectors, 3)
    assert axes is not None
    assert axes.shape == (32, 3)
    assert axes.dtype == np.float32
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-5)
    centred = vectors - vectors.mean(axis=0)
    kept = np.linalg.norm(centred @ axes) ** 2 / np.linalg.norm(centred) ** 2
    assert kept > 0.95  # the three wide directions hold ~97% of the variance
    assert principal_axes(vectors, 0) is None
    assert principal_axes(vectors, 32) is None  # not below the dimension: nothing to reduce
    assert principal_axes(vectors[:10], 16) is None  # not below the number of rows


def test_a_missing_or_changed_projection_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((300, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    corpus = made_up_corpus("dots", 300)
    settings = IndexSettings(reduce=8)
    VectorIndex.build(vectors, model=_Fixed(32), corpus=corpus, settings=settings).save(tmp_path)
    assert VectorIndex.open(tmp_path).graph_dim == 8
    projection = tmp_path / PROJECTION_FILE
    original = projection.read_bytes()
    changed = bytearray(original)
    changed[-1] ^= 0x01  # same size, one weight changed
    projection.write_bytes(bytes(changed))
    with pytest.raises(ManifestError, match=r"projection\.npy does not match its manifest"):
        VectorIndex.open(tmp_path, verify_checksum=False)
    np.save(projection, np.zeros((32, 9), np.float32))
    with pytest.raises(ManifestError, match=r"projection\.npy has"):
        VectorIndex.open(tmp_path)
    projection.unlink()
    with pytest.raises(ManifestError, match=r"projection\.npy has -1 bytes"):
        VectorIndex.open(tmp_path)


def made_up_corpus(name: str, count: int) -> Corpus:
    """A corpus standing for made-up vectors: `count` blank images, one concept each."""
    return Corpus.from_arrays(
        name,
        [f"{name}/{i}" for i in range(count)],
        np.zeros((count, 1, 1, 3), np.uint8),
        styles=["s"] * count,
        concepts=[f"c{i}" for i in range(count)],
        subcategories=["t"] * count,
    )


class _Fixed:
    """An embedder stand-in for vectors made up in the test."""

    def __init__(self, dim: int) -> None:
        self.name, self.version, self.dim, self.sha256 = "made-up", "1", dim, "0" * 64

    def embed(self, images: object, *, batch_size: int = 32) -> np.ndarray:
        raise NotImplementedError


def test_index_built_by_another_model_is_refused(
    tmp_path: Path, clustered: tuple[PixelEmbedder, Corpus, np.ndarray]
) -> None:
    embedder, corpus, vectors = clustered
    VectorIndex.build(vectors, model=embedder, corpus=corpus).save(tmp_path)
    with pytest.raises(ManifestError, match=r"built by pixels-16 .* not pixels-8"):
        VectorIndex.open(tmp_path, model=PixelEmbedder(8), corpus=corpus)


def test_index_over_another_corpus_is_refused(
    tmp_path: Path, clustered: tuple[PixelEmbedder, Corpus, np.ndarray]
) -> None:
    embedder, corpus, vectors = clustered
    VectorIndex.build(vectors, model=embedder, corpus=corpus).save(tmp_path)
    other = make_tiny_corpus(seed=8)
    with pytest.raises(ManifestError, match="covers corpus tiny"):
        VectorIndex.open(tmp_path, model=embedder, corpus=other)


def test_damaged_index_files_are_refused(
    tmp_path: Path, clustered: tuple[PixelEmbedder, Corpus, np.ndarray]
) -> None:
    embedder, corpus, vectors = clustered
    VectorIndex.build(vectors, model=embedder, corpus=corpus).save(tmp_path)
    graph = tmp_path / INDEX_FILE
    original = graph.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    graph.write_bytes(bytes(damaged))
    with pytest.raises(ManifestError, match="sha256"):
        VectorIndex.open(tmp_path)
    graph.write_bytes(original[:-10])
    with pytest.raises(ManifestError, match="bytes, its manifest says"):
        VectorIndex.open(tmp_path)
    graph.write_bytes(original)
    manifest = tmp_path / MANIFEST_FILE
    record = json.loads(manifest.read_text())
    record["format"] = 99
    manifest.write_text(json.dumps(record))
    with pytest.raises(ManifestError, match="unknown format"):
        VectorIndex.open(tmp_path)
    manifest.unlink()
    with pytest.raises(ManifestError, match="no complete index"):
        VectorIndex.open(tmp_path)


def test_bad_arguments(clustered: tuple[PixelEmbedder, Corpus, np.ndarray]) -> None:
    embedder, corpus, vectors = clustered
    with pytest.raises(ValueError, match="vectors must have shape"):
        VectorIndex.build(vectors[:3], model=embedder, corpus=corpus)
    index = VectorIndex.build(vectors, model=embedder, corpus=corpus)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(vectors[:1], 0)
    with pytest.raises(ValueError, match="queries must have shape"):
        index.search(np.zeros((1, 5), np.float32), 3)
    with pytest.raises(IndexError):
        index.vector(len(corpus))
    bad: dict[str, object] = {"dtype": "f64"}
    with pytest.raises(ValueError, match="dtype"):
        IndexSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connectivity"):
        IndexSettings(connectivity=1)
    with pytest.raises(ValueError, match="needs rescore > 0"):
        IndexSettings(reduce=64, rescore=0)
    with pytest.raises(ValueError, match="reduce must be"):
        IndexSettings(reduce=1)


def test_real_index_recall_against_exact_search(
    lite0_index: VectorIndex, lite0: Embedder, emoji: Corpus
) -> None:
    vectors = np.stack([lite0_index.vector(row) for row in range(len(emoji))])
    rows = np.linspace(0, len(emoji) - 1, 400).astype(np.int64)
    # The default settings: a 128-d float16 graph, the number of candidates tuned.
    assert recall_at_10(lite0_index, vectors, rows) >= 0.98
    assert lite0_index.manifest.settings == IndexSettings()
    assert lite0_index.graph_dim == 128
    assert lite0_index.manifest.figures["recall_at_10_sample"] >= 0.98
