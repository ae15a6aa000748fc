"""The embedding checks that decide whether a model version may serve.

Three measurements on a labelled corpus, each for the model and (optionally) a baseline model on the
very same cases:

* **Minimum functional test (MFT).** A case is an anchor image of concept *c* in one style, one
  image of *c* in another style (the positive) and ``m`` images of ``m`` other, distinct concepts
  drawn from the positive's style (the distractors), so that style alone never gives the answer.
  The case passes when the positive is strictly the nearest of the ``m + 1`` to the anchor by
  cosine similarity (a tie fails). Anchors are drawn without replacement while the corpus has
  enough of them.
* **Invariance test.** The same cases with the positive replaced by a transformed copy (see
  `rankers.transforms`): one pass rate per transform. Anchor and distractors stay untouched.
* **Retrieval quality.** Every corpus image of the anchor style (or every image, if no style is
  fixed) whose concept exists in another style is a query; the gallery is every image of the other
  styles, searched exactly. ``recall@k`` is the mean over queries of the share of the query's
  same-concept gallery images found in the top ``k`` (the emoji corpus has one per query, so
  recall@1 is the hit rate at rank 1). ``precision@10`` is the mean share of the top 10 that has
  the query's concept *or* its subcategory (a gallery smaller than 10 leaves misses).

Each pass rate carries a Wilson confidence interval. The paired comparison with the baseline is
McNemar's exact test on the cases one model passes and the other fails.

**Gate rule.** A check passes when the model's observed pass rate is at least the threshold *and*
the model is not significantly worse than the baseline on the same cases: it fails if McNemar's
exact p-value is below ``alpha`` while the model's pass rate is below the baseline's. The gate
passes when every check (the MFT and every invariance transform) passes. Retrieval quality is
reported, not gated.

Typical use::

    report = run_checks(corpus, load_embedder("effnet-lite0"), load_embedder("pixels-16"))
    report.verdict.passed
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rankers import transforms as transforms_registry
from rankers.errors import RankerError

if TYPE_CHECKING:
    from rich.progress import Progress

    from rankers.corpus import Corpus
    from rankers.embedder import Embedder
    from rankers.transforms import Transform

__all__ = [
    "MFT",
    "Case",
    "CheckConfig",
    "CheckReport",
    "CheckResult",
    "Decision",
    "EmbeddingCache",
    "ModelInfo",
    "PairedComparison",
    "PassRate",
    "RetrievalQuality",
    "Verdict",
    "add_arguments",
    "case_indices",
    "case_outcomes",
    "draw_cases",
    "gate",
    "mcnemar_exact",
    "nearest_is_positive",
    "pass_rate",
    "retrieval_plan",
    "retrieval_quality",
    "run",
    "run_checks",
]

logger = logging.getLogger(__name__)

MFT = "mft"
"""The name of the minimum functional test among the check results."""

Vectors = npt.NDArray[np.float32]
_Measured = tuple[dict[str, npt.NDArray[np.bool_]], "RetrievalQuality | None"]
_BATCHES_PER_CALL = 4
Indices = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """What to run and how to judge it.

    Attributes:
        cases: number of MFT cases drawn from the corpus labels.
        distractors: other-concept images in each case's comparison set (``m``).
        threshold: the lowest acceptable pass rate for every check.
        alpha: significance level of the paired comparison with the baseline.
        confidence: coverage of the Wilson intervals.
        seed: seeds the `numpy.random.Generator` that draws the cases.
        anchor_style: style of anchors and retrieval queries; None allows every style.
        transforms: names of registered transforms for the invariance test.
        retrieval: whether to measure retrieval quality (embeds the whole corpus).
        batch_size: images per call to the embedder.
    """

    cases: int = 500
    distractors: int = 9
    threshold: float = 0.95
    alpha: float = 0.05
    confidence: float = 0.95
    seed: int = 0
    anchor_style: str | None = "google"
    transforms: tuple[str, ...] = field(default_factory=transforms_registry.names)
    retrieval: bool = True
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.cases < 1:
            raise ValueError(f"cases must be at least 1, got {self.cases}")
        if self.distractors < 1:
            raise ValueError(f"distractors must be at least 1, got {self.distractors}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        for name in self.transforms:
            transforms_registry.get(name)  # fail now, not after an hour of embedding


@dataclass(frozen=True, slots=True)
class Case:
    """One MFT case, as corpus row indices."""

    anchor: int
    positive: int
    distractors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PassRate:
    """Passed cases out of all cases, with a Wilson confidence interval."""

    passes: int
    cases: int
    low: float
    high: float
    confidence: float

    @property
    def rate(self) -> float:
        """The observed pass rate."""
        return self.passes / self.cases


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """McNemar's exact test of a model against a baseline on the same cases.

    Attributes:
        model_only: cases the model passes and the baseline fails.
        baseline_only: cases the baseline passes and the model fails.
        p_value: two-sided exact p-value (binomial on the discordant cases); 1 if there are none.
    """

    model_only: int
    baseline_only: int
    p_value: float


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check (the MFT or one invariance transform) for the model and the baseline."""

    check: str
    model: PassRate
    baseline: PassRate | None = None
    comparison: PairedComparison | None = None


@dataclass(frozen=True, slots=True)
class RetrievalQuality:
    """Exact cross-style retrieval over the corpus (see the module docstring)."""

    queries: int
    recall_at_1: float
    recall_at_10: float
    precision_at_10: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's judgement of one check.

    Attributes:
        check: the check's name.
        below_threshold: the model's pass rate is below the threshold.
        worse_than_baseline: significantly below the baseline's pass rate on the same cases.
        reason: the judgement in words.
    """

    check: str
    below_threshold: bool
    worse_than_baseline: bool
    reason: str

    @property
    def passed(self) -> bool:
        """Neither below the threshold nor significantly worse than the baseline."""
        return not (self.below_threshold or self.worse_than_baseline)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate: passed when every check passed."""

    decisions: tuple[Decision, ...]

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(d.passed for d in self.decisions)

    @property
    def reason(self) -> str:
        """One short line: which checks failed and why, or that all passed."""
        total = len(self.decisions)
        failed = [d for d in self.decisions if not d.passed]
        if not failed:
            return f"all {total} checks passed"
        parts = []
        low = [d.check for d in failed if d.below_threshold]
        if low:
            parts.append(f"below the threshold: {', '.join(low)}")
        worse = [d.check for d in failed if d.worse_than_baseline]
        if worse:
            parts.append(f"significantly worse than the baseline: {', '.join(worse)}")
        return f"{len(failed)} of {total} checks failed; " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Which model a set of results belongs to."""

    name: str
    version: str
    dim: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Everything the checks measured, and the verdict."""

    corpus: str
    config: CheckConfig
    model: ModelInfo
    baseline: ModelInfo | None
    cases: tuple[Case, ...]
    results: tuple[CheckResult, ...]
    model_retrieval: RetrievalQuality | None
    baseline_retrieval: RetrievalQuality | None
    verdict: Verdict


# --- cases ------------------------------------------------------------------------------------


def _as_labels(
    values: Sequence[str] | npt.NDArray[np.str_], name: str, n: int
) -> npt.NDArray[np.str_]:
    labels = np.asarray(values, dtype=np.str_)
    if labels.shape != (n,):
        raise ValueError(f"{name} must hold one label per image ({n}), got shape {labels.shape}")
    return labels


def draw_cases(
    styles: Sequence[str] | npt.NDArray[np.str_],
    concepts: Sequence[str] | npt.NDArray[np.str_],
    *,
    n: int,
    distractors: int,
    rng: np.random.Generator,
    anchor_style: str | None = None,
) -> tuple[Case, ...]:
    """Draw `n` MFT cases from per-image style and concept labels.

    Args:
        styles: the style of each corpus image.
        concepts: the concept of each corpus image (the same concept in several styles).
        n: number of cases.
        distractors: other-concept images per case, of distinct concepts, in the positive's style.
        rng: the only source of randomness; the same state gives the same cases.
        anchor_style: draw anchors only from this style; None draws from every style.

    Returns:
        The cases. Anchors are distinct while `n` does not exceed the eligible anchors.

    Raises:
        ValueError: if an argument is out of range.
        RankerError: if the labels allow no case (no concept in two styles, too few concepts).

    A corpus with a single style (animal-mnist) draws the positive from the same style: another
    image of the anchor's concept.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if distractors < 1:
        raise ValueError(f"distractors must be at least 1, got {distractors}")
    style_of = _as_labels(styles, "styles", len(styles))
    concept_of = _as_labels(concepts, "concepts", len(style_of))

    # by_style[style][concept] -> rows. Names are visited sorted, rows in corpus order, so the same
    # labels and generator state always give the same cases.
    by_style: dict[str, dict[str, list[int]]] = {}
    for row, (style, concept) in enumerate(
        zip(style_of.tolist(), concept_of.tolist(), strict=True)
    ):
        by_style.setdefault(style, {}).setdefault(concept, []).append(row)
    style_names = sorted(by_style)
    single = len(style_names) == 1
    if single:
        anchor_style = None  # one style: anchors, positives and distractors all share it
    if anchor_style is not None and anchor_style not in by_style:
        raise RankerError(f"no image has anchor style {anchor_style!r}; styles: {style_names}")
    concept_pool = {s: sorted(by_style[s]) for s in style_names}

    def partner_styles(row: int) -> list[str]:
        style, concept = style_of[row], concept_of[row]
        if single:  # the positive is another image of the concept, in the same style
            return [style] if len(by_style[style][concept]) > 1 else []
        return [s for s in style_names if s != style and concept in by_style[s]]

    eligible = np.array(
        [
            row
            for row in range(len(style_of))
            if (anchor_style is None or style_of[row] == anchor_style) and partner_styles(row)
        ],
        dtype=np.intp,
    )
    if eligible.size == 0:
        raise RankerError("no concept appears in two styles: the corpus allows no MFT case")
    anchors = rng.choice(eligible, size=n, replace=n > eligible.size)

    cases = []
    for anchor in anchors.tolist():
        concept = str(concept_of[anchor])
        partners = partner_styles(anchor)
        style = partners[int(rng.integers(len(partners)))]
        same = [row for row in by_style[style][concept] if row != anchor]
        positive = same[int(rng.integers(len(same)))]
        pool = [c for c in concept_pool[style] if c != concept]
        if len(pool) < distractors:
            raise RankerError(
                f"style {style!r} has {len(pool)} other concepts, "
                f"fewer than {distractors} distractors"
            )
        chosen = rng.choice(len(pool), size=distractors, replace=False)
        others = []
        for i in chosen.tolist():
            rows = by_style[style][pool[i]]
            others.append(rows[int(rng.integers(len(rows)))])
        cases.append(Case(anchor=anchor, positive=positive, distractors=tuple(others)))
    return tuple(cases)


def case_indices(cases: Sequence[Case]) -> tuple[Indices, Indices, Indices]:
    """The anchors (n,), positives (n,) and distractors (n, m) of `cases` as index arrays."""
    if not cases:
        raise ValueError("cases must not be empty")
    anchors = np.array([c.anchor for c in cases], dtype=np.intp)
    positives = np.array([c.positive for c in cases], dtype=np.intp)
    others = np.array([c.distractors for c in cases], dtype=np.intp)
    if others.ndim != 2:
        raise ValueError("every case must have the same number of distractors")
    return anchors, positives, others


# --- statistics -------------------------------------------------------------------------------


def _unit(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: Vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit


def nearest_is_positive(
    anchors: Vectors, positives: Vectors, distractors: Vectors
) -> npt.NDArray[np.bool_]:
    """Whether each positive is strictly the nearest of its comparison set to its anchor (cosine).

    Args:
        anchors: (n, d) anchor embeddings.
        positives: (n, d) embeddings of the same-concept images.
        distractors: (n, m, d) embeddings of the other-concept images.

    Returns:
        (n,) booleans; a tie with a distractor counts as a failure.
    """
    if anchors.ndim != 2 or positives.shape != anchors.shape:
        raise ValueError(
            f"anchors and positives must both be (n, d), got {anchors.shape} and {positives.shape}"
        )
    if distractors.ndim != 3 or distractors.shape[0] != anchors.shape[0]:
        raise ValueError(f"distractors must be (n, m, d), got {distractors.shape}")
    a, p, d = _unit(anchors), _unit(positives), _unit(distractors)
    positive_sim = np.einsum("nd,nd->n", a, p)
    distractor_sim = np.einsum("nd,nmd->nm", a, d)
    result: npt.NDArray[np.bool_] = positive_sim > distractor_sim.max(axis=1)
    return result


def pass_rate(outcomes: npt.NDArray[np.bool_], *, confidence: float = 0.95) -> PassRate:
    """The pass rate of `outcomes` with its Wilson score interval."""
    from statsmodels.stats.proportion import proportion_confint

    if outcomes.ndim != 1 or outcomes.size == 0:
        raise ValueError(f"outcomes must be a non-empty 1-d array, got shape {outcomes.shape}")
    passes, cases = int(np.count_nonzero(outcomes)), int(outcomes.size)
    low, high = proportion_confint(passes, cases, alpha=1 - confidence, method="wilson")
    return PassRate(passes, cases, float(low), float(high), confidence)


def mcnemar_exact(
    model: npt.NDArray[np.bool_], baseline: npt.NDArray[np.bool_]
) -> PairedComparison:
    """McNemar's exact test on paired per-case outcomes of a model and a baseline."""
    from statsmodels.stats.contingency_tables import mcnemar

    if model.shape != baseline.shape or model.ndim != 1:
        raise ValueError(
            "model and baseline must be 1-d outcomes of the same cases, "
            f"got {model.shape} and {baseline.shape}"
        )
    model_only = int(np.count_nonzero(model & ~baseline))
    baseline_only = int(np.count_nonzero(~model & baseline))
    if model_only + baseline_only == 0:
        return PairedComparison(0, 0, 1.0)
    both = int(np.count_nonzero(model & baseline))
    neither = int(np.count_nonzero(~model & ~baseline))
    table = [[both, model_only], [baseline_only, neither]]
    p_value = float(mcnemar(table, exact=True).pvalue)
    return PairedComparison(model_only, baseline_only, p_value)


def gate(results: Sequence[CheckResult], *, threshold: float, alpha: float = 0.05) -> Verdict:
    """Judge every check by the gate rule in the module docstring."""
    if not results:
        raise ValueError("results must not be empty")
    decisions = []
    for result in results:
        rate = result.model.rate
        below = rate < threshold
        words = [f"pass rate {rate:.3f} {'<' if below else '>='} threshold {threshold:.3f}"]
        base, comparison = result.baseline, result.comparison
        worse = False
        if base is not None and comparison is not None:
            worse = comparison.p_value < alpha and rate < base.rate
            relation = "significantly below" if worse else "not significantly below"
            if rate >= base.rate:
                relation = "at least"
            words.append(
                f"{relation} the baseline's {base.rate:.3f} (McNemar p={comparison.p_value:.2g})"
            )
        reason = f"{result.check}: " + ", ".join(words)
        decisions.append(Decision(result.check, below, worse, reason))
    return Verdict(tuple(decisions))


# --- retrieval --------------------------------------------------------------------------------


def retrieval_plan(
    styles: Sequence[str] | npt.NDArray[np.str_],
    concepts: Sequence[str] | npt.NDArray[np.str_],
    *,
    query_style: str | None = None,
) -> tuple[tuple[Indices, Indices], ...]:
    """(queries, gallery) row-index pairs, one per query style (see the module docstring)."""
    style_of = _as_labels(styles, "styles", len(styles))
    concept_of = _as_labels(concepts, "concepts", len(style_of))
    query_styles = sorted(set(style_of.tolist())) if query_style is None else [query_style]
    plan = []
    for style in query_styles:
        in_style = style_of == style
        gallery = np.flatnonzero(~in_style)
        has_partner = np.isin(concept_of, concept_of[gallery])
        queries = np.flatnonzero(in_style & has_partner)
        if queries.size:
            plan.append((queries, gallery))
    return tuple(plan)


def retrieval_quality(
    embeddings: Vectors,
    styles: Sequence[str] | npt.NDArray[np.str_],
    concepts: Sequence[str] | npt.NDArray[np.str_],
    subcategories: Sequence[str] | npt.NDArray[np.str_],
    *,
    query_style: str | None = None,
) -> RetrievalQuality:
    """Recall@1, recall@10 and precision@10 of exact cosine search across styles.

    Args:
        embeddings: (N, d), one row per corpus image (rows outside the plan are ignored).
        styles, concepts, subcategories: per-image labels.
        query_style: the style of the queries; None makes every style a query style in turn.

    Raises:
        RankerError: if no image has a same-concept image in another style.
    """
    n = embeddings.shape[0]
    style_of = _as_labels(styles, "styles", n)
    concept_of = _as_labels(concepts, "concepts", n)
    subcategory_of = _as_labels(subcategories, "subcategories", n)
    plan = retrieval_plan(style_of, concept_of, query_style=query_style)
    if not plan:
        raise RankerError("no query has a same-concept image in another style")
    unit = _unit(embeddings.astype(np.float32, copy=False))
    recall_1: list[npt.NDArray[np.float64]] = []
    recall_10: list[npt.NDArray[np.float64]] = []
    precision_10: list[npt.NDArray[np.float64]] = []
    for queries, gallery in plan:
        k = min(10, gallery.size)
        scores = unit[queries] @ unit[gallery].T
        # Stable sort on the negated scores: ties keep corpus order, so results are repeatable.
        top = gallery[np.argsort(-scores, axis=1, kind="stable")[:, :k]]
        same_concept = concept_of[top] == concept_of[queries][:, None]
        same_subcategory = subcategory_of[top] == subcategory_of[queries][:, None]
        relevant = (concept_of[gallery][None, :] == concept_of[queries][:, None]).sum(axis=1)
        recall_1.append(same_concept[:, :1].sum(axis=1) / relevant)
        recall_10.append(same_concept.sum(axis=1) / relevant)
        precision_10.append((same_concept | same_subcategory).sum(axis=1) / 10)
    return RetrievalQuality(
        queries=sum(q.size for q, _ in plan),
        recall_at_1=float(np.concatenate(recall_1).mean()),
        recall_at_10=float(np.concatenate(recall_10).mean()),
        precision_at_10=float(np.concatenate(precision_10).mean()),
    )


# --- embedding --------------------------------------------------------------------------------


class EmbeddingCache:
    """Embeddings of corpus images, original or transformed, each computed once.

    Args:
        embedder: the model.
        images: (N, H, W, 3) uint8 corpus images.
        transforms: the transforms that may be asked for, by name.
        batch_size: images per call to the embedder.
    """

    def __init__(
        self,
        embedder: Embedder,
        images: npt.NDArray[np.uint8],
        *,
        transforms: Mapping[str, Transform] | None = None,
        batch_size: int = 32,
    ) -> None:
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.embedder = embedder
        self.images = images
        self.transforms = dict(transforms or {})
        self.batch_size = batch_size
        self._rows: dict[tuple[str | None, int], Vectors] = {}

    def missing(self, indices: npt.ArrayLike, transform: str | None = None) -> Indices:
        """The distinct rows of `indices` not embedded yet under `transform`, sorted."""
        unique = np.unique(np.asarray(indices, dtype=np.intp))
        return np.array(
            [i for i in unique.tolist() if (transform, i) not in self._rows], dtype=np.intp
        )

    def vectors(
        self,
        indices: npt.ArrayLike,
        transform: str | None = None,
        *,
        advance: Callable[[int], None] | None = None,
    ) -> Vectors:
        """Embeddings of `indices` (any shape) under `transform`: shape ``indices.shape + (dim,)``.

        Args:
            indices: corpus rows.
            transform: the name of one of `transforms`, or None for the original images.
            advance: called with the number of images embedded after each call to the embedder.

        Raises:
            KeyError: if `transform` is not one of this cache's transforms.
            RankerError: if the embedder returns the wrong shape or non-finite values.
        """
        index_array = np.asarray(indices, dtype=np.intp)
        apply = None if transform is None else self.transforms[transform]
        todo = self.missing(index_array, transform)
        # Several batches per call let an embedder overlap preprocessing with inference.
        chunk = self.batch_size * _BATCHES_PER_CALL
        for start in range(0, todo.size, chunk):
            rows = todo[start : start + chunk]
            batch = self.images[rows]
            if apply is not None:
                batch = np.stack([apply(image) for image in batch])
            embedded = np.asarray(self.embedder.embed(batch, batch_size=self.batch_size))
            if embedded.shape != (rows.size, self.embedder.dim) or not np.isfinite(embedded).all():
                raise RankerError(
                    f"{self.embedder.name} returned {embedded.shape} embeddings for "
                    f"{rows.size} images (expected dim {self.embedder.dim}, finite values)"
                )
            for row, vector in zip(rows.tolist(), embedded.astype(np.float32), strict=True):
                self._rows[(transform, row)] = vector
            if advance is not None:
                advance(rows.size)
        flat = [self._rows[(transform, i)] for i in index_array.ravel().tolist()]
        if not flat:
            return np.zeros((*index_array.shape, self.embedder.dim), dtype=np.float32)
        return np.stack(flat).reshape(*index_array.shape, -1)


def case_outcomes(
    cache: EmbeddingCache,
    cases: Sequence[Case],
    transform: str | None = None,
    *,
    advance: Callable[[int], None] | None = None,
) -> npt.NDArray[np.bool_]:
    """Per-case MFT outcomes, with the positive transformed by `transform` (None for the MFT)."""
    anchors, positives, others = case_indices(cases)
    return nearest_is_positive(
        cache.vectors(anchors, advance=advance),
        cache.vectors(positives, transform, advance=advance),
        cache.vectors(others, advance=advance),
    )


# --- running ----------------------------------------------------------------------------------


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not enabled) as bar:
        yield bar


def _measure(
    cache: EmbeddingCache,
    cases: Sequence[Case],
    config: CheckConfig,
    labels: tuple[npt.NDArray[np.str_], npt.NDArray[np.str_], npt.NDArray[np.str_]],
    bar: Progress,
) -> _Measured:
    """Embed what the checks need under one model (one progress task) and compute the outcomes."""
    styles, concepts, subcategories = labels
    anchors, positives, others = case_indices(cases)
    originals = np.concatenate([anchors, positives, others.ravel()])
    plan = (
        retrieval_plan(styles, concepts, query_style=config.anchor_style)
        if config.retrieval
        else ()
    )
    for queries, gallery in plan:
        originals = np.concatenate([originals, queries, gallery])
    total = cache.missing(originals).size + sum(
        cache.missing(positives, name).size for name in config.transforms
    )
    task = bar.add_task(f"embedding with {cache.embedder.name}", total=total)

    def advance(count: int) -> None:
        bar.advance(task, count)

    cache.vectors(originals, advance=advance)
    outcomes = {MFT: case_outcomes(cache, cases)}
    for name in config.transforms:
        outcomes[name] = case_outcomes(cache, cases, name, advance=advance)
    retrieval = None
    if config.retrieval and plan:
        rows = np.unique(np.concatenate([np.concatenate(pair) for pair in plan]))
        embeddings = np.zeros((len(styles), cache.embedder.dim), dtype=np.float32)
        embeddings[rows] = cache.vectors(rows)
        retrieval = retrieval_quality(
            embeddings, styles, concepts, subcategories, query_style=config.anchor_style
        )
    return outcomes, retrieval


def run_checks(
    corpus: Corpus,
    model: Embedder,
    baseline: Embedder | None = None,
    *,
    config: CheckConfig | None = None,
    progress: bool = False,
) -> CheckReport:
    """Run the MFT, the invariance test and retrieval quality for `model` (and `baseline`).

    Both models see the same cases, drawn once from `config.seed`.

    Args:
        corpus: the labelled images.
        model: the model under test.
        baseline: the model to compare with, or None.
        config: what to run and the gate's parameters; defaults to `CheckConfig()`.
        progress: show a progress bar on stderr.
    """
    config = config or CheckConfig()
    images = np.asarray(corpus.images)
    n = images.shape[0]
    labels = (
        _as_labels(corpus.styles, "styles", n),
        _as_labels(corpus.concepts, "concepts", n),
        _as_labels(corpus.subcategories, "subcategories", n),
    )
    if len(set(labels[0].tolist())) == 1:
        # Retrieval quality is measured across styles; a one-style corpus has no such query.
        config = dataclasses.replace(config, anchor_style=None, retrieval=False)
    rng = np.random.default_rng(config.seed)
    cases = draw_cases(
        labels[0],
        labels[1],
        n=config.cases,
        distractors=config.distractors,
        rng=rng,
        anchor_style=config.anchor_style,
    )
    chosen = {name: transforms_registry.get(name) for name in config.transforms}

    def measure(embedder: Embedder, bar: Progress) -> _Measured:
        cache = EmbeddingCache(embedder, images, transforms=chosen, batch_size=config.batch_size)
        measured = _measure(cache, cases, config, labels, bar)
        logger.info("measured %s on %d cases", embedder.name, len(cases))
        return measured

    with _progress_bar(progress) as bar:
        model_outcomes, model_retrieval = measure(model, bar)
        base_outcomes, base_retrieval = ({}, None) if baseline is None else measure(baseline, bar)
    results = []
    for check, outcomes in model_outcomes.items():
        result = CheckResult(check, pass_rate(outcomes, confidence=config.confidence))
        if check in base_outcomes:
            result = CheckResult(
                check,
                result.model,
                pass_rate(base_outcomes[check], confidence=config.confidence),
                mcnemar_exact(outcomes, base_outcomes[check]),
            )
        results.append(result)
    return CheckReport(
        corpus=corpus.name,
        config=config,
        model=_info(model),
        baseline=None if baseline is None else _info(baseline),
        cases=cases,
        results=tuple(results),
        model_retrieval=model_retrieval,
        baseline_retrieval=base_retrieval,
        verdict=gate(results, threshold=config.threshold, alpha=config.alpha),
    )


def _info(embedder: Embedder) -> ModelInfo:
    return ModelInfo(embedder.name, embedder.version, embedder.dim, embedder.sha256)


# --- command line -----------------------------------------------------------------------------


_MAX_COUNT = 1_000_000
"""A bound on the counts the checks take (cases, images): far more would not fit in memory."""


def _positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must lie in 1..{_MAX_COUNT:,}, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _transform_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in transforms_registry.TRANSFORMS]
    if unknown:
        known = ", ".join(transforms_registry.names())
        raise argparse.ArgumentTypeError(
            f"unknown transform(s) {', '.join(unknown)}; known: {known}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m rankers check`` to `parser`."""
    defaults = CheckConfig()
    parser.description = (
        "Minimum functional test, invariance test and retrieval quality of an embedding model, "
        "gated by a threshold and a paired comparison with a baseline. Exit 0 when the gate "
        "passes, 1 when it fails, 2 on an error."
    )
    parser.add_argument(
        "--model", required=True, metavar="NAME", help="the model under test (e.g. effnet-lite0)"
    )
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="a model to compare with on the same cases (e.g. pixels-16); default: none",
    )
    parser.add_argument(
        "--corpus",
        default="emoji",
        metavar="NAME",
        help="the labelled corpus (default: %(default)s)",
    )
    parser.add_argument(
        "--cases",
        type=_positive_int,
        default=defaults.cases,
        metavar="N",
        help="MFT cases drawn from the corpus labels (default: %(default)s)",
    )
    parser.add_argument(
        "--distractors",
        type=_positive_int,
        default=defaults.distractors,
        metavar="M",
        help="other-concept images per case (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=_probability,
        default=defaults.threshold,
        metavar="RATE",
        help="lowest acceptable pass rate of every check (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        metavar="INT",
        help="seed of the case draw (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="also write report.md into this directory"
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="onnxruntime threads per model (default: the CPUs available)",
    )
    parser.add_argument(
        "--transforms",
        type=_transform_names,
        default=defaults.transforms,
        metavar="LIST",
        help=f"comma-separated invariance transforms (default: {','.join(defaults.transforms)})",
    )
    parser.add_argument(
        "--anchor-style",
        default=defaults.anchor_style,
        metavar="STYLE",
        help="style of anchors and retrieval queries; 'any' for every style (default: %(default)s)",
    )
    parser.add_argument(
        "--no-retrieval",
        action="store_true",
        help="skip retrieval quality (recall@1, precision@10), which embeds the whole corpus",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``python -m rankers check`` on parsed `args`; exit code 0 pass, 1 fail, 2 error."""
    from rich.console import Console

    from rankers import corpus as corpora
    from rankers import report
    from rankers.models import load_embedder

    try:
        config = CheckConfig(
            cases=args.cases,
            distractors=args.distractors,
            threshold=args.threshold,
            seed=args.seed,
            anchor_style=None if args.anchor_style == "any" else args.anchor_style,
            transforms=tuple(args.transforms),
            retrieval=not args.no_retrieval,
        )
        corpus = corpora.load(args.corpus)
        model = load_embedder(args.model, threads=args.threads)
        baseline = (
            None if args.baseline is None else load_embedder(args.baseline, threads=args.threads)
        )
        result = run_checks(corpus, model, baseline, config=config, progress=True)
    except (RankerError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    console = Console()
    if not console.is_terminal:  # a log file: do not squeeze the table into 80 columns
        console = Console(width=120)
    console.print(report.render_table(result))
    if args.out is not None:
        path = report.write_markdown(result, args.out)
        print(f"report written to {path}", file=sys.stderr)
    if not result.verdict.passed:
        print(f"gate failed: {result.verdict.reason}", file=sys.stderr)
        return 1
    return 0
