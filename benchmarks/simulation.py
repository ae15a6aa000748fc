"""Simulation core speed: interleave, sample clicks and credit, impressions per second.

Target (2 cores): >= 1,000,000 impressions/s for team-draft (with the PBM and the DBN click
models; the batch kernel is compiled before timing, as it is once per installation).
The reference, measured in the same run, simulates impression by impression in plain Python
(scalar interleave, a per-position click loop, scalar credit), as a straightforward simulator
would. Lists are random rankings of 40 documents with random grades; depth 20, page 10.

Run: python -m benchmarks.simulation
"""

from __future__ import annotations

import time

import numpy as np

import interleave
from simulations import click_models


def main() -> None:
    rng = np.random.default_rng(0)
    n, pool, depth, k = 1_000_000, 40, 20, 10
    model = click_models.get("dbn")
    grade_of = rng.integers(0, 3, size=(n, pool))  # each query's grade for each document
    lists = np.stack([np.argsort(rng.random((n, pool)), axis=1)[:, :depth] for _ in range(2)])
    propensity = rng.lognormal(0, 0.3, size=n)
    print(f"{'measure':<52} {'impressions/s':>14}")
    for name, click_model in (("team_draft", "pbm"), ("team_draft", "dbn"), ("balanced", "dbn")):
        method = interleave.get(name)
        users = click_models.get(click_model)
        method.interleave_batch(lists[:, :1000], k=k, rng=rng)  # compile the kernel first
        t = time.perf_counter()
        pages = method.interleave_batch(lists, k=k, rng=rng)
        grades = np.take_along_axis(grade_of, np.maximum(pages.docs, 0), axis=1)
        clicks = users.sample(grades, rng, propensity)
        method.credit_batch(pages, clicks)
        rate = n / (time.perf_counter() - t)
        label = f"batch {name} + {click_model.upper()} clicks + credit, 1M"
        target = "  (target >= 1,000,000)" if name == "team_draft" else ""
        verdict = ("  ok" if rate >= 1_000_000 else "  MISSED") if target else ""
        print(f"{label:<52} {rate:>14,.0f}{target}{verdict}")
    method = interleave.get("team_draft")
    m = 20_000
    attract = np.asarray(model.attractiveness)
    satisfy = np.asarray(model.satisfaction)  # type: ignore[attr-defined]
    gamma = float(model.gamma)  # type: ignore[attr-defined]
    t = time.perf_counter()
    for i in range(m):
        page = method.interleave([lists[0, i].tolist(), lists[1, i].tolist()], k=k, rng=rng)
        clicked = []
        for pos, doc in enumerate(page.docs):
            g = grade_of[i, doc]
            if rng.random() < attract[g] * min(1.0, propensity[i]):
                clicked.append(pos)
                if rng.random() < satisfy[g]:
                    break
            if rng.random() > gamma:
                break
        method.credit(page, clicked)
    rate = m / (time.perf_counter() - t)
    print(f"{'reference: per-impression Python loop':<52} {rate:>14,.0f}")


if __name__ == "__main__":
    main()
