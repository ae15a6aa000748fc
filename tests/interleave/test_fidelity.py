"""Fidelity: clicks that ignore the rankers must not favour either of them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import interleave


def random_pairs(rng: np.random.Generator, n: int, depth: int, pool: int) -> np.ndarray:
    """(2, n, depth) lists: two random rankings of a random subset of a shared pool."""
    out = np.empty((2, n, depth), dtype=np.int64)
    for r in range(2):
        keys = rng.random((n, pool))
        out[r] = np.argsort(keys, axis=1)[:, :depth]
    return out


@pytest.mark.parametrize("options", [{}, {"neutral_prefix": True}, {"competitive_pairs": True}])
@pytest.mark.parametrize("clicks", ["uniform", "position_biased"])
def test_team_draft_expected_credit_is_zero_under_random_clicks(
    options: dict[str, bool], clicks: str
) -> None:
    rng = np.random.default_rng(7)
    n, depth, k = 200_000, 10, 10
    method = interleave.get("team_draft", **options)
    pages = method.interleave_batch(random_pairs(rng, n, depth, 14), k=k, rng=rng)
    # uniform clicks, or examination falling with rank
    p_click = np.full(k, 0.2) if clicks == "uniform" else 0.9 / np.arange(1, k + 1)
    clicked = rng.random((n, k)) < p_click
    outcome = method.credit_batch(pages, clicked).outcome
    se = outcome.std() / np.sqrt(n)
    # 4 standard errors: a fair method fails this with probability ~6e-5.
    assert abs(outcome.mean()) < 4 * se
    # The credit difference in clicks, not just the sign, is centred too.
    scores = method.credit_batch(pages, clicked).scores
    diff = scores[:, 0] - scores[:, 1]
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(n)


def test_team_draft_exact_expected_outcome_is_zero_for_a_random_click() -> None:
    method = interleave.get("team_draft")
    for a, b in [
        ((1, 2, 3, 4), (4, 3, 2, 1)),
        ((1, 2, 3, 4), (2, 1, 5, 6)),
        ((1, 2, 3), (2, 3, 1)),
    ]:
        dist = method.distribution([a, b], k=4)
        expected = sum(
            p * method.credit(page, [c]).outcome / len(page.docs)
            for page, p in dist.items()
            for c in range(len(page.docs))
        )
        assert expected == pytest.approx(0.0, abs=1e-12)


def test_balanced_bias_known_example_exact() -> None:
    """A=(1,2,3), B=(2,3,1), one uniformly random click: B wins two thirds."""
    method = interleave.get("balanced")
    wins: Counter[int | None] = Counter()
    for page, p in method.distribution([(1, 2, 3), (2, 3, 1)], k=3).items():
        for c in range(3):
            wins[method.credit(page, [c]).winner] += p / 3
    assert wins[1] == pytest.approx(2 / 3)
    assert wins[0] == pytest.approx(1 / 3)


def test_balanced_bias_shows_in_sampling() -> None:
    rng = np.random.default_rng(11)
    n = 30_000
    method = interleave.get("balanced")
    lists = np.broadcast_to(np.array([[[1, 2, 3]], [[2, 3, 1]]]), (2, n, 3)).copy()
    pages = method.interleave_batch(lists, k=3, rng=rng)
    clicked = np.zeros((n, 3), dtype=bool)
    clicked[np.arange(n), rng.integers(0, 3, n)] = True
    b_wins = (method.credit_batch(pages, clicked).winner == 1).mean()
    tol = 4 * np.sqrt((2 / 3) * (1 / 3) / n)
    assert abs(b_wins - 2 / 3) < tol
