"""Pluggable rankers: ONNX image embedders over usearch indexes, baselines, and model checks.

The plug point is `Ranker` (`rankers.base`). Implementations: `EmbeddingRanker` (a model and its
index), `RerankRanker` (a new model re-ordering another ranker's top candidates), the deliberately
degraded `NoisyRanker` and `ShuffledTailRanker`, and the in-memory `StaticRanker`. Models are loaded
by name from `rankers.models`, corpora from `rankers.corpus`, indexes built by `rankers.indexing`.
Importing this package loads neither onnxruntime nor usearch; they load when first needed.
"""

from __future__ import annotations

from rankers.base import Precomputed, Query, Ranker, Ranking
from rankers.corpus import Corpus
from rankers.embedder import Embedder, OnnxEmbedder, PixelEmbedder
from rankers.embedding_ranker import EmbeddingRanker
from rankers.errors import ImageError, ManifestError, RankerError, UnknownItemError
from rankers.noisy import NoisyRanker
from rankers.rerank import RerankRanker
from rankers.shuffled_tail import ShuffledTailRanker
from rankers.static import StaticRanker

__all__ = [
    "Corpus",
    "Embedder",
    "EmbeddingRanker",
    "ImageError",
    "ManifestError",
    "NoisyRanker",
    "OnnxEmbedder",
    "PixelEmbedder",
    "Precomputed",
    "Query",
    "Ranker",
    "RankerError",
    "Ranking",
    "RerankRanker",
    "ShuffledTailRanker",
    "StaticRanker",
    "UnknownItemError",
]
