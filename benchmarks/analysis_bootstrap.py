"""Benchmark: user-clustered bootstrap of delta_AB, 1,000 resamples over 100,000 users.

Goal (issue 4, section 7): <= 2 s on 2 cores. Beside each figure it prints a straightforward
reference measured in the same run: a Python loop of `Generator.choice` user resamples that
gathers and sums the per-user arrays. Two inputs:

* discrete: outcomes in {-1, 0, 1} (team-draft, balanced, multileave credit), whose per-user
  (impressions, total) pairs take few distinct values, so `UserResampler` draws per-category
  counts;
* continuous: fractional outcomes (probabilistic interleaving), every user distinct, so it
  draws user indices and counts them.

Run: .venv/bin/python benchmarks/analysis_bootstrap.py [--users N] [--resamples B]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from numpy.typing import NDArray

from analysis.preference import bootstrap_ci


def _reference_ci(
    n: NDArray[np.float64], total: NDArray[np.float64], rng: np.random.Generator, resamples: int
) -> tuple[float, float]:
    users = n.size
    deltas = np.empty(resamples)
    for r in range(resamples):
        idx = rng.choice(users, size=users, replace=True)
        deltas[r] = total[idx].sum() / (2 * n[idx].sum())
    low, high = np.quantile(deltas, [0.025, 0.975])
    return float(low), float(high)


def _best_of(
    repeats: int, run: Callable[[], tuple[float, float]]
) -> tuple[float, tuple[float, float]]:
    best, result = float("inf"), (0.0, 0.0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def _users(
    users: int, rng: np.random.Generator, continuous: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n = rng.poisson(4.0, users) + 1
    decisive = rng.binomial(n, 0.4)
    wins = rng.binomial(decisive, 0.52)
    total = (2 * wins - decisive).astype(np.float64)
    if continuous:
        total = total * 0.8 + rng.uniform(-0.2, 0.2, users) * n
    return n.astype(np.float64), total


def main() -> None:
    """Time our bootstrap and the reference on both inputs and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3, help="report the best of this many")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"user-clustered bootstrap of delta_AB: {args.resamples:,} resamples over "
        f"{args.users:,} users (best of {args.repeats}; goal <= 2 s)"
    )
    print(f"{'input':<11} {'method':<28} {'seconds':>8} {'95% CI':>26}")
    for continuous in (False, True):
        label = "continuous" if continuous else "discrete"
        n, total = _users(args.users, rng, continuous)
        runs: dict[str, Callable[[], tuple[float, float]]] = {
            "braid multinomial": partial(
                bootstrap_ci, n, total, rng=rng, resamples=args.resamples, weights="multinomial"
            ),
            "braid poisson": partial(
                bootstrap_ci, n, total, rng=rng, resamples=args.resamples, weights="poisson"
            ),
            "reference choice loop": partial(_reference_ci, n, total, rng, args.resamples),
        }
        seconds: dict[str, float] = {}
        for name, run in runs.items():
            seconds[name], (low, high) = _best_of(args.repeats, run)
            print(f"{label:<11} {name:<28} {seconds[name]:>8.3f} [{low:+.5f}, {high:+.5f}]")
        speedup = seconds["reference choice loop"] / seconds["braid multinomial"]
        print(f"{label:<11} {'speed-up (multinomial)':<28} {speedup:>7.1f}x")


if __name__ == "__main__":
    main()
