"""Deterministic randomness: every page can be regenerated from (salt, unit, query).

The generator for an impression is derived from a stable hash (BLAKE2b) of the experiment salt,
the unit id and the query id, never from Python's `hash()` (salted per process) or global state.
Logging the 64-bit seed with the impression lets an auditor rebuild the page exactly.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["rng_for", "rng_from_seed", "seed_for"]

_PERSON = b"braid.interleave"  # BLAKE2b personalisation: our hashes never collide with others'


def seed_for(salt: str, unit: str, query: str) -> int:
    """A 64-bit seed from (salt, unit, query); each part is length-prefixed, so no two
    different triples share an encoding (("a", "bc") and ("ab", "c") differ)."""
    h = hashlib.blake2b(digest_size=8, person=_PERSON)
    for name, part in (("salt", salt), ("unit", unit), ("query", query)):
        if not isinstance(part, str):
            raise TypeError(f"{name} must be a str, not {type(part).__name__}")
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return int.from_bytes(h.digest(), "little")


def rng_from_seed(seed: int) -> np.random.Generator:
    """The generator an impression's logged `seed` stands for."""
    if not 0 <= seed < 2**64:
        raise ValueError("seed must be an unsigned 64-bit integer")
    return np.random.Generator(np.random.PCG64(seed))


def rng_for(salt: str, unit: str, query: str) -> np.random.Generator:
    """The generator for one (experiment salt, unit id, query id)."""
    return rng_from_seed(seed_for(salt, unit, query))
