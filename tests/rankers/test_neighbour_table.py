"""The neighbour table built with each index: right, saved and checked, and what a corpus-id
query reads instead of searching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_index import _Fixed, made_up_corpus

from rankers.base import Precomputed, Query
from rankers.corpus import Corpus
from rankers.embedding_ranker import EmbeddingRanker
from rankers.errors import ManifestError
from rankers.index import (
    MANIFEST_FILE,
    NEIGHBOURS_FILE,
    IndexSettings,
    VectorIndex,
    exact_search,
)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, Corpus]:
    """2,000 clustered unit vectors (64-d) with two exact duplicates, and a corpus for them."""
    rng = np.random.default_rng(21)
    centres = rng.standard_normal((40, 64)) * np.linspace(2.0, 0.3, 64)
    vectors = centres[rng.integers(0, 40, 2000)] + rng.standard_normal((2000, 64)) * 0.5
    vectors[17] = vectors[1234]  # twins: each must list the other first, never itself
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return vectors, made_up_corpus("blobs", 2000)


def test_the_table_holds_each_rows_nearest_other_rows(blobs: tuple[np.ndarray, Corpus]) -> None:
    vectors, corpus = blobs
    settings = IndexSettings(reduce=16, neighbours=30)
    counted: list[int] = []
    index = VectorIndex.build(
        vectors, model=_Fixed(64), corpus=corpus, settings=settings, on_rows=counted.append
    )
    assert sum(counted) == len(corpus)
    assert index.manifest.figures["neighbours_seconds"] >= 0
    rows = np.arange(0, 2000, 7)
    exact, _ = exact_search(vectors, vectors[rows], 31)
    hits = 0
    for row, truth in zip(rows.tolist(), exact.tolist(), strict=True):
        found = index.neighbours(row, 30)
        assert found is not None
        keys, scores = found
        assert keys.shape == scores.shape == (30,)
        assert row not in keys.tolist()
        assert len(set(keys.tolist())) == 30
        assert (np.diff(scores) <= 0).all()  # best first
        cosine = vectors[keys] @ vectors[row]
        np.testing.assert_allclose(scores, cosine, atol=2e-3)  # float16 rows, float32 sums
        hits += len(set(keys.tolist()) & {t for t in truth if t != row})
    assert hits / (len(rows) * 30) >= 0.97
    assert index.neighbours(17, 1)[0].tolist() == [1234]  # type: ignore[index]
    assert index.neighbours(1234, 1)[0].tolist() == [17]  # type: ignore[index]
    # A shallower read is the same table's prefix; deeper than the table there is none.
    np.testing.assert_array_equal(index.neighbours(5, 12)[0], index.neighbours(5, 30)[0][:12])  # type: ignore[index]
    assert index.neighbours(5, 31) is None
    with pytest.raises(IndexError):
        index.neighbours(2000, 5)


def test_a_corpus_smaller_than_the_table_pads_it() -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.build(vectors, model=_Fixed(8), corpus=made_up_corpus("six", 6))
    for row in range(6):
        found = index.neighbours(row, 100)
        assert found is not None
        keys, scores = found
        assert sorted(keys.tolist()) == sorted(set(range(6)) - {row})
        assert np.isfinite(scores).all()
    one = np.zeros((1, 8), np.float32)
    one[0, 2] = 1.0
    alone = VectorIndex.build(one, model=_Fixed(8), corpus=made_up_corpus("one", 1))
    found = alone.neighbours(0, 10)
    assert found is not None
    assert found[0].size == 0
    assert alone.neighbour_lists(0, 10) == ([], [])


def test_neighbour_lists_are_the_tables_rows_as_lists() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.build(
        vectors,
        model=_Fixed(8),
        corpus=made_up_corpus("forty", 40),
        settings=IndexSettings(neighbours=60),  # deeper than the corpus: padded rows
    )
    for row in range(40):
        for k in (1, 5, 39, 60):
            found = index.neighbours(row, k)
            assert found is not None
            assert index.neighbour_lists(row, k) == (found[0].tolist(), found[1].tolist())
            assert index.neighbour_keys(row, k) == found[0].tolist()  # no padding
    assert index.neighbour_lists(0, 61) is None
    assert index.neighbour_keys(0, 61) is None
    with pytest.raises(IndexError):
        index.neighbour_lists(40, 5)
    with pytest.raises(IndexError):
        index.neighbour_keys(-1, 5)


def test_the_table_is_saved_checked_and_optional(
    tmp_path: Path, blobs: tuple[np.ndarray, Corpus]
) -> None:
    vectors, _corpus = blobs
    settings = IndexSettings(reduce=16, neighbours=20)
    built = VectorIndex.build(
        vectors[:300], model=_Fixed(64), corpus=made_up_corpus("b", 300), settings=settings
    )
    built.save(tmp_path)
    opened = VectorIndex.open(tmp_path)
    for row in (0, 150, 299):
        np.testing.assert_array_equal(opened.neighbours(row, 20)[0], built.neighbours(row, 20)[0])  # type: ignore[index]
    table = tmp_path / NEIGHBOURS_FILE
    original = table.read_bytes()
    changed = bytearray(original)
    changed[-3] ^= 0x01
    table.write_bytes(bytes(changed))
    with pytest.raises(ManifestError, match=r"neighbours\.npy does not match"):
        VectorIndex.open(tmp_path)
    VectorIndex.open(tmp_path, verify_checksum=False)  # sizes still checked, not contents
    table.unlink()
    with pytest.raises(ManifestError, match=r"neighbours\.npy has -1 bytes"):
        VectorIndex.open(tmp_path)
    # Without a table: no file, and every depth is searched.
    none = IndexSettings(reduce=16, neighbours=0)
    VectorIndex.build(
        vectors[:300], model=_Fixed(64), corpus=made_up_corpus("b", 300), settings=none
    ).save(tmp_path)
    assert not table.exists()
    assert VectorIndex.open(tmp_path).neighbours(0, 1) is None


def test_an_index_of_the_format_before_tables_is_still_served(
    tmp_path: Path, blobs: tuple[np.ndarray, Corpus]
) -> None:
    vectors, _ = blobs
    corpus = made_up_corpus("b", 300)
    settings = IndexSettings(reduce=16, neighbours=0)
    VectorIndex.build(vectors[:300], model=_Fixed(64), corpus=corpus, settings=settings).save(
        tmp_path
    )
    manifest = tmp_path / MANIFEST_FILE
    record = json.loads(manifest.read_text())
    record["format"] = 3
    del record["settings"]["neighbours"], record["neighbours_bytes"], record["neighbours_sha256"]
    manifest.write_text(json.dumps(record))
    opened = VectorIndex.open(tmp_path)
    assert opened.manifest.settings.neighbours == 0
    assert opened.neighbours(0, 5) is None
    keys, _ = opened.search(vectors[3], 2)
    assert keys[0] == 3


def test_a_corpus_id_query_reads_the_table_and_searches_only_past_it(
    blobs: tuple[np.ndarray, Corpus],
) -> None:
    vectors, corpus = blobs
    model = _Fixed(64)
    settings = IndexSettings(reduce=16, rescore=3, neighbours=8)
    index = VectorIndex.build(vectors, model=model, corpus=corpus, settings=settings)
    ranker = EmbeddingRanker(model, index, corpus)  # type: ignore[arg-type]
    assert isinstance(ranker, Precomputed)
    item = corpus.ids[3]
    held = ranker.precomputed(item, 8)
    assert held is not None
    assert held.ids == tuple(corpus.ids[k] for k in index.neighbours(3, 8)[0].tolist())  # type: ignore[index]
    assert ranker.rank(Query(corpus_id=item), 8) == held
    exact, _ = exact_search(vectors, vectors[3:4], 9)
    assert held.ids == tuple(corpus.ids[k] for k in exact[0].tolist() if k != 3)[:8]
    assert ranker.precomputed(item, 9) is None
    assert ranker.precomputed_ids(item, 9) is None
    for doc in corpus.ids:  # what a server reads: the same ids, each once, never the query
        for k in (1, 5, 8):
            ids = ranker.precomputed_ids(doc, k)
            assert ids == ranker.precomputed(doc, k).ids  # type: ignore[union-attr]
            assert ids is not None
            assert len(set(ids)) == len(ids) == k
            assert doc not in ids
    searched = ranker.rank(Query(corpus_id=item), 9)  # deeper than the table: a search
    assert item not in searched.ids
    assert len(searched.ids) == 9

    class NoSearch:  # a graph that must not be walked
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"searched the graph ({name})")

    index._graph = NoSearch()
    queries = [Query(corpus_id=i) for i in corpus.ids[:5]]
    expected = tuple(ranker.precomputed(i, 8) for i in corpus.ids[:5])
    assert ranker.rank_many(queries, 8) == expected
    with pytest.raises(AssertionError, match="searched the graph"):
        ranker.rank(Query(corpus_id=item), 9)


def test_the_tables_candidates_are_tuned_at_its_depth() -> None:
    """A coarse projection needs many candidates for a top 10; a table 30 deep takes 31 x step
    candidates and needs a smaller step, tuned to the same recall at its own depth."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((60, 64)) * np.linspace(2.0, 0.2, 64)
    drawn = centres[rng.integers(0, 60, 3000)] + rng.standard_normal((3000, 64)) * 0.6
    vectors = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
    settings = IndexSettings(reduce=4, tune_recall=0.97, neighbours=30)
    index = VectorIndex.build(
        vectors, model=_Fixed(64), corpus=made_up_corpus("c", 3000), settings=settings
    )
    figures, rescore = index.manifest.figures, index.manifest.rescore
    step = int(figures["neighbours_rescore"])
    assert step < rescore
    assert 31 * step >= 11 * rescore  # never fewer candidates than a top-10 search
    assert figures["neighbours_recall"] >= 0.97
    rows = np.arange(0, 3000, 11)
    exact, _ = exact_search(vectors, vectors[rows], 31)
    hits = 0
    for row, truth in zip(rows.tolist(), exact.tolist(), strict=True):
        keys, _ = index.neighbours(row, 30)  # type: ignore[misc]
        hits += len(set(keys.tolist()) & {t for t in truth if t != row})
    assert hits / (len(rows) * 30) >= 0.96
