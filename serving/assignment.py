"""Deterministic assignment: a stable hash of (salt, unit id) picks layers' slots and arms.

A unit's place is a number in [0, 1) from BLAKE2b (never Python's `hash()`, which is salted
per process), so every server, every restart and every auditor agrees on it:

* Layer slot: `unit_point(layer, unit)` uses the layer's name as its salt, so re-weighting
  or re-versioning an experiment never moves a unit between the experiments of a layer.
  An experiment owns disjoint intervals of [0, 1) in its layer; a unit is in the experiment
  whose interval holds its point, so it is in at most one experiment per layer.
* Arm: `unit_point(salt, unit)` with the experiment version's salt, mapped through the
  cumulative weights (`choose_arm`). A new version has a new salt: arms are re-randomised
  openly, never silently re-bucketed under the old version's name.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Final

__all__ = ["Interval", "allocate", "choose_arm", "unit_point"]

_PERSON: Final = b"braid.assign"
_SCALE: Final = float(2**64)
_HASH: Final = hashlib.blake2b(digest_size=8, person=_PERSON)  # copied, never updated

Interval = tuple[float, float]
"""A half-open interval [low, high) of [0, 1)."""


def unit_point(salt: str, unit_id: str) -> float:
    """The unit's point in [0, 1) under `salt`; each part is length-prefixed before hashing."""
    s, u = salt.encode("utf-8"), unit_id.encode("utf-8")
    h = _HASH.copy()  # one update of the whole input: the digest of updating part by part
    h.update(len(s).to_bytes(8, "little") + s + len(u).to_bytes(8, "little") + u)
    return int.from_bytes(h.digest(), "little") / _SCALE


def choose_arm(weights: Sequence[float], point: float) -> int:
    """The arm whose share of [0, 1), laid out in order by `weights`, holds `point`.

    Raises:
        ValueError: A weight is not positive and finite, or `point` is outside [0, 1).
    """
    if not weights or any(not (w > 0 and math.isfinite(w)) for w in weights):
        raise ValueError("weights must be positive and finite")
    if not 0 <= point < 1:
        raise ValueError(f"point must lie in [0, 1), got {point}")
    total = math.fsum(weights)
    edges = [c / total for c in itertools.accumulate(weights)]
    return min(bisect.bisect_right(edges, point), len(weights) - 1)


def allocate(taken: Sequence[Interval], share: float) -> tuple[Interval, ...] | None:
    """Intervals of total length `share` from the free part of [0, 1), lowest first.

    Args:
        taken: Intervals other experiments of the layer hold (disjoint).
        share: The length wanted, in (0, 1].

    Returns:
        Disjoint intervals covering exactly `share` of the free space, or None if less is free.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must lie in (0, 1], got {share}")
    free: list[Interval] = []
    cursor = 0.0
    for low, high in sorted(taken):
        if low > cursor:
            free.append((cursor, low))
        cursor = max(cursor, high)
    if cursor < 1.0:
        free.append((cursor, 1.0))
    if math.fsum(high - low for low, high in free) < share - 1e-9:
        return None
    out: list[Interval] = []
    left = share
    for low, high in free:
        if left <= 1e-12:
            break
        take = min(high - low, left)
        out.append((low, high if take >= high - low - 1e-12 else low + take))
        left -= take
    return tuple(out)
