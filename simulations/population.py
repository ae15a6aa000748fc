"""Simulated users: ids, how many queries each makes, how readily each clicks, and when."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Population", "make_population"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Population:
    """Users of one experiment.

    Attributes:
        unit_ids: One id per user.
        queries: How many queries each user makes (>= 1).
        propensity: Each user's click propensity, a multiplier of attractiveness (mean 1), so
            some users click more than others and user-level analysis is real.
    """

    unit_ids: tuple[str, ...]
    queries: IntArray
    propensity: FloatArray

    def __len__(self) -> int:
        return len(self.unit_ids)

    @property
    def impressions(self) -> int:
        """Total queries of all users."""
        return int(self.queries.sum())


def make_population(
    users: int,
    *,
    rng: np.random.Generator,
    prefix: str = "u",
    mean_queries: float = 5.0,
    propensity_sigma: float = 0.35,
) -> Population:
    """Draw a population.

    Args:
        users: Number of users.
        rng: Randomness, passed in.
        prefix: Prefix of the unit ids (distinct per experiment).
        mean_queries: Mean queries per user: 1 + Poisson(mean_queries - 1).
        propensity_sigma: Spread of the log-normal click propensity (mean 1).
    """
    if users <= 0:
        raise ValueError(f"users must be positive, got {users}")
    if mean_queries < 1:
        raise ValueError(f"mean_queries must be at least 1, got {mean_queries}")
    queries = 1 + rng.poisson(mean_queries - 1, size=users).astype(np.int64)
    propensity = rng.lognormal(-(propensity_sigma**2) / 2, propensity_sigma, size=users)
    width = len(str(users - 1))
    ids = tuple(f"{prefix}{i:0{width}d}" for i in range(users))
    return Population(ids, queries, propensity)
