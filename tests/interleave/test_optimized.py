"""Optimized interleaving: legal pages, unbiasedness at every depth, bounded cost, caching."""

from __future__ import annotations

import numpy as np
import pytest

import interleave
from interleave.optimized import solve


def is_legal(docs: tuple[object, ...], a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    shown: set[object] = set()
    for d in docs:
        top_a = next((x for x in a if x not in shown), None)
        top_b = next((x for x in b if x not in shown), None)
        if d not in (top_a, top_b):
            return False
        shown.add(d)
    return True


@pytest.mark.parametrize("rule", ["inverse", "linear"])
@pytest.mark.parametrize("seed", range(8))
def test_distribution_is_legal_and_unbiased(rule: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = tuple(rng.permutation(8)[:6].tolist())
    b = tuple(rng.permutation(8)[:6].tolist())
    method = interleave.get("optimized", credit_rule=rule)
    dist = method.distribution([a, b], k=6)
    assert sum(dist.values()) == pytest.approx(1.0)
    assert all(p > 0 for p in dist.values())
    for page in dist:
        assert is_legal(page.docs, a, b)
    # Random clicks within the top j give both rankers the same expected score, every j.
    for depth in range(1, 7):
        expected = sum(
            p
            * (
                method.credit(page, range(min(depth, len(page.docs)))).scores[0]
                - method.credit(page, range(min(depth, len(page.docs)))).scores[1]
            )
            for page, p in dist.items()
        )
        assert expected == pytest.approx(0.0, abs=1e-7)


def test_solution_is_cached_per_shape() -> None:
    method = interleave.get("optimized")
    rng = np.random.default_rng(0)
    method.interleave([[1, 2, 3, 4], [2, 1, 5, 6]], k=4, rng=rng)
    before = solve.cache_info()
    page = method.interleave([["w", "x", "y", "z"], ["x", "w", "u", "v"]], k=4, rng=rng)
    after = solve.cache_info()
    assert after.hits == before.hits + 1
    assert after.misses == before.misses
    assert set(page.docs) <= {"w", "x", "y", "z", "u", "v"}


def test_large_inputs_stay_bounded() -> None:
    # 2^20 legal pages: the method samples a bounded set instead of enumerating or looping.
    method = interleave.get("optimized", max_pages=300)
    a = [f"a{i}" for i in range(20)]
    b = [f"b{i}" for i in range(20)]
    page = method.interleave([a, b], k=20, rng=np.random.default_rng(1))
    assert len(page.docs) == 20
    shape_solution = solve((tuple(range(20)), tuple(range(20, 40)), 20), "inverse", 300)
    assert not shape_solution.enumerated
    assert len(shape_solution.pages) <= 300
