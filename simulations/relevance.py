"""Relevance grades from the corpus labels, and the known truth of each ranker.

The query is a corpus image of one style (vendor). A result is grade 2 when it shows the same
concept in another style (the twin a user is looking for), grade 1 when it is in the same
subcategory, 0 otherwise; an empty slot is -1 (never clicked). Grades are computed for whole
arrays of pages at once from integer label codes.

The truth a simulation knows: a ranker's expected gain per query, the sum over positions of the
probability of a click times the grade of the result there (a click on the twin is worth two
clicks on a related result), under the simulated users' own click model, computed exactly from
the click model's marginal click probabilities over the whole query pool. A ranker whose pages
users would click more usefully is better; interleaving and A/B are judged by whether they find
that direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from analysis.schema import QRELS_SCHEMA
from rankers.corpus import Corpus
from simulations.click_models import ClickModel

__all__ = ["Labels", "true_utility"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Labels:
    """Integer codes of the corpus labels, for vectorised grading."""

    concept: IntArray
    subcategory: IntArray
    style: IntArray

    @classmethod
    def of(cls, corpus: Corpus) -> Labels:
        """Encode a corpus's labels."""

        def codes(values: tuple[str, ...]) -> IntArray:
            _, inverse = np.unique(np.asarray(values), return_inverse=True)
            return inverse.astype(np.int64)

        return cls(codes(corpus.concepts), codes(corpus.subcategories), codes(corpus.styles))

    def grades(self, queries: IntArray, docs: IntArray) -> npt.NDArray[np.int8]:
        """Grades of `docs` (n, k) corpus rows for `queries` (n,) rows; -1 where docs is -1."""
        q = queries[:, None]
        d = np.maximum(docs, 0)
        twin = (self.concept[d] == self.concept[q]) & (self.style[d] != self.style[q])
        related = self.subcategory[d] == self.subcategory[q]
        grade = np.where(twin, 2, np.where(related, 1, 0))
        return np.where(docs < 0, -1, grade).astype(np.int8)

    def qrels(self, corpus: Corpus, queries: IntArray) -> pl.DataFrame:
        """Every (query, doc, grade >= 1) judgment for the given query rows, in QRELS_SCHEMA."""
        parts = []
        rows = np.arange(len(corpus.ids))
        for q in np.unique(queries):
            same = rows[(self.subcategory == self.subcategory[q]) & (rows != q)]
            grade = self.grades(np.array([q]), same[None, :])[0]
            parts.append((np.full(len(same), q), same, grade))
        if not parts:
            return pl.DataFrame(schema=QRELS_SCHEMA)
        qs, ds, gs = (np.concatenate(x) for x in zip(*parts, strict=True))
        ids = pl.Series(corpus.ids)
        return pl.DataFrame(
            {"query_id": ids.gather(qs), "doc_id": ids.gather(ds), "grade": gs},
            schema=QRELS_SCHEMA,
        )


def true_utility(
    model: ClickModel, labels: Labels, queries: IntArray, table: IntArray, k: int
) -> float:
    """Expected gain (click probability times grade, summed over the page) per query when
    `table`'s lists are shown alone.

    Args:
        model: The simulated users' click model.
        labels: Corpus label codes.
        queries: Query rows of the pool.
        table: (len(queries), >= k) the ranker's lists for those queries.
        k: Page length.
    """
    grades = labels.grades(queries, table[:, :k])
    p = model.click_probabilities(grades)
    return float((p * np.maximum(grades, 0)).sum(axis=1).mean())
