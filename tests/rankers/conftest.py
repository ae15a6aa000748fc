"""Shared fixtures: a tiny synthetic corpus; the real emoji corpus, model and index (built once).

The real fixtures need the fetched corpus (``make data``) and skip only when ``.cache/data`` is
absent. The effnet-lite0 index is built on first use (about a minute on 2 cores) and kept in the
cache, so later sessions reuse it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rankers_fixtures import make_tiny_corpus

from rankers import cache, models
from rankers import corpus as corpora
from rankers.corpus import Corpus
from rankers.embedder import Embedder, PixelEmbedder
from rankers.index import VectorIndex
from rankers.indexing import build, ensure_index


@pytest.fixture(scope="session")
def tiny_corpus() -> Corpus:
    """24 synthetic 24 x 24 images (2 styles x 12 concepts)."""
    return make_tiny_corpus()


@pytest.fixture(scope="session")
def pixels() -> PixelEmbedder:
    """The raw-pixel baseline embedder."""
    return PixelEmbedder(16)


@pytest.fixture(scope="session")
def tiny_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Corpus, pixels: PixelEmbedder
) -> VectorIndex:
    """A pixels-16 index over the tiny corpus."""
    directory = tmp_path_factory.mktemp("tiny-index")
    build(pixels, tiny_corpus, directory, batch_size=5)
    return VectorIndex.open(directory, model=pixels, corpus=tiny_corpus)


def _require_data() -> None:
    if not cache.data_dir().is_dir():
        pytest.skip(f"no fetched data at {cache.data_dir()}: run `make data` first")


@pytest.fixture(scope="session")
def emoji() -> Corpus:
    """The real emoji corpus (skips only if the data folder is absent)."""
    _require_data()
    return corpora.load("emoji")


@pytest.fixture(scope="session")
def lite0() -> Embedder:
    """The bundled effnet-lite0 model, with 2 onnxruntime threads."""
    return models.load_embedder("effnet-lite0", threads=2)


@pytest.fixture(scope="session")
def lite0_index(emoji: Corpus, lite0: Embedder) -> VectorIndex:
    """The effnet-lite0 index of the emoji corpus, built once and cached."""
    return VectorIndex.open(ensure_index(lite0, emoji, progress=False), model=lite0, corpus=emoji)


@pytest.fixture(scope="session")
def pixels_emoji_index(emoji: Corpus) -> VectorIndex:
    """The pixels-16 index of the emoji corpus (a few seconds to build), cached."""
    embedder = models.load_embedder("pixels-16")
    return VectorIndex.open(ensure_index(embedder, emoji), model=embedder, corpus=emoji)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of the effnet-lite0 folder, safe to damage."""
    source = models.manifest("effnet-lite0").directory
    target = tmp_path / "effnet-lite0"
    target.mkdir()
    for name in ("manifest.toml", "model.onnx"):
        (target / name).write_bytes((source / name).read_bytes())
    return target
