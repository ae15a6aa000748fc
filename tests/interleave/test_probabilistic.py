"""Probabilistic interleaving's marginalised credit against brute force over assignments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import interleave
from interleave.probabilistic import posterior_a


def brute_force_outcome(page: interleave.Page, clicks: list[int], tau: float) -> float:
    """E[sign(#A clicks - #B clicks)] over all 2^n team assignments, weighted by
    P(assignment | page) from the sampling process itself."""
    a, b = page.lists
    wa = {d: 1 / (i + 1) ** tau for i, d in enumerate(a)}
    wb = {d: 1 / (i + 1) ** tau for i, d in enumerate(b)}
    total = 0.0
    norm = 0.0
    for assignment in itertools.product((0, 1), repeat=len(page.docs)):
        p = 1.0
        shown: set[object] = set()
        for d, t in zip(page.docs, assignment, strict=True):
            w = wa if t == 0 else wb
            rest = sum(v for x, v in w.items() if x not in shown)
            p *= 0.5 * (w.get(d, 0.0) / rest if rest else 0.0)
            shown.add(d)
        ca = sum(1 for c in clicks if assignment[c] == 0)
        cb = len(clicks) - ca
        total += p * np.sign(ca - cb)
        norm += p
    return total / norm


@pytest.mark.parametrize("seed", range(6))
def test_marginalised_credit_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    method = interleave.get("probabilistic")
    a = list(rng.permutation(10))
    b = list(rng.permutation(10))
    page = method.interleave([a, b], k=8, rng=rng)
    clicks = sorted(rng.choice(8, size=int(rng.integers(1, 5)), replace=False).tolist())
    got = method.credit(page, clicks)
    assert got.outcome == pytest.approx(brute_force_outcome(page, clicks, 3.0), abs=1e-12)
    q = posterior_a(page.lists[0], page.lists[1], page.docs, 3.0)
    assert got.scores[0] == pytest.approx(sum(q[c] for c in clicks))


@pytest.mark.parametrize("tau", [0.5, 10.0, 20.0, 50.0])
@pytest.mark.parametrize("seed", range(3))
def test_marginalised_credit_equals_brute_force_at_other_taus(seed: int, tau: float) -> None:
    # Overlapping lists: a document both rankers hold needs the weight each has left, which
    # subtracting from the total turned into rounding error beyond tau 15 (outcomes off by 1).
    rng = np.random.default_rng(seed)
    method = interleave.get("probabilistic", tau=tau)
    page = method.interleave([list(rng.permutation(9)), list(rng.permutation(9))], k=7, rng=rng)
    clicks = [0, 2, 5]
    assert method.credit(page, clicks).outcome == pytest.approx(
        brute_force_outcome(page, clicks, tau), abs=1e-9
    )


@pytest.mark.parametrize("tau", [3.0, 20.0, 50.0])
def test_page_probability_matches_the_enumerated_distribution(tau: float) -> None:
    method = interleave.get("probabilistic", tau=tau)
    a, b = ["d0", "d1", "d2", "d3"], ["d1", "d0", "d2", "d3"]
    distribution = method.distribution([a, b], k=4)
    by_docs: dict[tuple[object, ...], float] = {}
    for page, p in distribution.items():
        by_docs[page.docs] = by_docs.get(page.docs, 0.0) + p
    for page in distribution:
        assert method.page_probability(page) == pytest.approx(by_docs[page.docs], rel=1e-9)


def test_the_largest_tau_drafts_and_credits_deep_pages() -> None:
    # At tau = 50 everything below rank 1 weighs under 1e-15: the mass left in a list after
    # its first document is a rounding error, which once made the posterior 0 / 0.
    method = interleave.get("probabilistic", tau=50)
    a = [f"a{i}" for i in range(40)]
    b = [f"b{i}" for i in range(40)]
    for seed in range(5):
        page = method.interleave([a, b], k=30, rng=np.random.default_rng(seed))
        q = posterior_a(a, b, page.docs, 50.0)
        assert q == [1.0 if d in a else 0.0 for d in page.docs]  # each list's own documents
        credit = method.credit(page, range(0, 30, 3))
        assert -1.0 <= credit.outcome <= 1.0
        assert 0.0 <= method.page_probability(page) <= 1.0


def test_credit_at_twenty_positions_uses_no_enumeration() -> None:
    # 2^20 assignments would take seconds; the dynamic programme is instant and exact:
    # with every page document in only one list, the team of each position is certain.
    method = interleave.get("probabilistic")
    a = [f"a{i}" for i in range(20)]
    b = [f"b{i}" for i in range(20)]
    page = method.interleave([a, b], k=20, rng=np.random.default_rng(1))
    clicks = list(range(20))
    credit = method.credit(page, clicks)
    na = sum(1 for d in page.docs if d in a)
    assert credit.scores == pytest.approx((na, 20 - na))
    assert credit.outcome == np.sign(na - (20 - na))


def test_identical_lists_give_expected_tie() -> None:
    method = interleave.get("probabilistic")
    lst = list(range(10))
    page = method.interleave([lst, lst], k=10, rng=np.random.default_rng(2))
    for clicks in ([0], [1, 4], [0, 2, 5, 9]):
        assert method.credit(page, clicks).outcome == pytest.approx(0.0)
        assert method.credit(page, clicks).winner is None
