"""Holm correction across the ranker pairs of a multileave.

A multileave of k rankers answers k (k - 1) / 2 pairwise questions at once; testing each at
alpha would find a spurious winner in some pair far more often than alpha. Holm's step-down
procedure (Holm 1979, "A simple sequentially rejective multiple test procedure", Scand. J.
Stat.) controls the family-wise error rate at alpha without assuming independence, and
rejects at least as much as Bonferroni.

A pair whose test could not be run (p-value nan: fewer than two users, say) is not part of
the family: it is never rejected, its adjusted p-value is nan, and the others are corrected
among themselves (a test that is not run cannot make a false discovery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# statsmodels is imported inside `holm`: importing it takes seconds, and
# `python -m analysis --help` must stay instant.

__all__ = ["AdjustedPValue", "holm"]


@dataclass(frozen=True, slots=True)
class AdjustedPValue:
    """One pair's p-value before and after the Holm correction.

    Attributes:
        a: First ranker of the pair.
        b: Second ranker of the pair.
        p_value: Unadjusted p-value.
        p_adjusted: Holm-adjusted p-value.
        reject: Whether p_adjusted < alpha (family-wise error controlled at alpha).
    """

    a: str
    b: str
    p_value: float
    p_adjusted: float
    reject: bool


def holm(
    pairs: Sequence[tuple[str, str]],
    p_values: Sequence[float],
    *,
    alpha: float = 0.05,
) -> tuple[AdjustedPValue, ...]:
    """Holm-adjust the p-values of several ranker pairs.

    Args:
        pairs: (a, b) for each test.
        p_values: Each pair's unadjusted p-value, aligned with `pairs`; nan for a pair that
            was not tested.
        alpha: Family-wise error rate.

    Returns:
        One `AdjustedPValue` per pair, in the order given (nan and not rejected where the
        p-value is nan).

    Raises:
        ValueError: If the lengths differ, a p-value is outside [0, 1] (and not nan) or
            alpha is not in (0, 1).
    """
    from statsmodels.stats.multitest import multipletests

    if len(pairs) != len(p_values):
        raise ValueError(f"pairs ({len(pairs)}) and p_values ({len(p_values)}) must align")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not pairs:
        return ()
    p = np.asarray(p_values, dtype=np.float64)
    tested = ~np.isnan(p)
    if not ((p[tested] >= 0) & (p[tested] <= 1)).all():
        raise ValueError("p_values must lie in [0, 1] (or be nan: not tested)")
    adjusted = np.full(p.shape, np.nan)
    if tested.any():
        adjusted[tested] = multipletests(p[tested], alpha=alpha, method="holm")[1]
    return tuple(
        AdjustedPValue(a, b, float(raw), float(adj), bool(adj < alpha))
        for (a, b), raw, adj in zip(pairs, p, adjusted, strict=True)
    )
