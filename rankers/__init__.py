"""Pluggable rankers: ONNX image embedders over usearch indexes, baselines, and model checks."""

from __future__ import annotations

from rankers.base import Query, Ranker, Ranking
from rankers.errors import ImageError, ManifestError, RankerError, UnknownItemError

__all__ = [
    "ImageError",
    "ManifestError",
    "Query",
    "Ranker",
    "RankerError",
    "Ranking",
    "UnknownItemError",
]
