"""The vectorised batch path draws from the same distribution and credits the same way."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

import interleave

BATCH_INPUTS = [
    ((1, 2, 3, 4), (2, 4, 5, 1)),
    ((1, 2, 3, 4), (1, 2, 5, 6)),
    ((1, 2, 3, 4), (1, 2, 3, 4)),
    ((1, 2, 3, 4), (5, 6, -1, -1)),
    ((1, 1, 2, 3), (1, 3, 2, 7)),
]

METHODS = [
    ("team_draft", {}),
    ("team_draft", {"neutral_prefix": True}),
    ("team_draft", {"competitive_pairs": True}),
    ("balanced", {}),
]


@pytest.mark.parametrize(("name", "options"), METHODS)
@pytest.mark.parametrize(("a", "b"), BATCH_INPUTS)
def test_batch_pages_follow_the_exact_distribution(
    name: str, options: dict[str, bool], a: tuple[int, ...], b: tuple[int, ...]
) -> None:
    method = interleave.get(name, **options)
    k, n = 5, 8_000
    dist = method.distribution([[d for d in a if d >= 0], [d for d in b if d >= 0]], k=k)
    want = Counter({(p.docs, p.teams): pr for p, pr in dist.items()})
    lists = np.broadcast_to(np.array([[a], [b]]), (2, n, len(a))).copy()
    pages = method.interleave_batch(lists, k=k, rng=np.random.default_rng(3))
    seen: Counter[tuple[tuple[int, ...], tuple[int | None, ...]]] = Counter()
    for i in range(n):
        page = pages.page(i)
        seen[(page.docs, page.teams)] += 1
    assert set(seen) <= set(want)
    keys = sorted(want, key=repr)
    if len(keys) > 1:
        assert chisquare([seen[x] for x in keys], [want[x] * n for x in keys]).pvalue > 1e-4


@pytest.mark.parametrize(
    ("name", "options", "rankers"),
    [
        *((name, options, 2) for name, options in METHODS),
        ("team_draft_multileave", {}, 3),
        ("probabilistic", {}, 2),
        ("optimized", {}, 2),
    ],
)
def test_batch_credit_equals_scalar_credit(
    name: str, options: dict[str, bool], rankers: int
) -> None:
    rng = np.random.default_rng(5)
    method = interleave.get(name, **options)
    n, depth, k = 300, 8, 6
    lists = np.stack([np.argsort(rng.random((n, 12)), axis=1)[:, :depth] for _ in range(rankers)])
    pages = method.interleave_batch(lists, k=k, rng=rng)
    clicks = (rng.random((n, k)) < 0.3) & (pages.docs >= 0)
    batch = method.credit_batch(pages, clicks)
    for i in range(n):
        page = pages.page(i)
        c = method.credit(page, np.flatnonzero(clicks[i]).tolist())
        assert batch.scores[i] == pytest.approx(c.scores)
        assert batch.winner[i] == (-1 if c.winner is None else c.winner)
        assert batch.pairwise[i] == pytest.approx(np.array(c.pairwise))


def test_batch_rejects_bad_input() -> None:
    method = interleave.get("team_draft")
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="lists"):
        method.interleave_batch(np.zeros((2, 3)), k=2, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lists"):
        method.interleave_batch(np.full((2, 3, 4), -2), k=2, rng=rng)
    pages = method.interleave_batch(np.arange(24).reshape(2, 3, 4), k=4, rng=rng)
    with pytest.raises(ValueError, match="clicks"):
        method.credit_batch(pages, np.zeros((3, 5), dtype=bool))
    with pytest.raises(interleave.PageMismatchError):
        interleave.get("balanced").credit_batch(pages, np.zeros((3, 4), dtype=bool))
