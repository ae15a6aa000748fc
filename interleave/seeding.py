"""Deterministic randomness: every page can be regenerated from (salt, unit, query).

The generator for an impression is derived from a stable hash (BLAKE2b) of the experiment salt,
the unit id and the query id, never from Python's `hash()` (salted per process) or global state.
Logging the 64-bit seed with the impression lets an auditor rebuild the page exactly.

The seed stands for a PCG64 generator whose 128-bit state and increment are BLAKE2b of the seed
(through numpy's `ISeedSequence` interface), not numpy's `SeedSequence` hashing: a server drafts
one page per request, and `SeedSequence` cost it 6 us (20 under load) where this costs 2. The
seed is already a hash, so nothing is lost by hashing it once more instead of mixing it.

Each experiment version records its seed scheme (`analysis.schema.ExperimentSpec.seed_scheme`):
``"blake2b-pcg64"`` (this one, `SEED_SCHEME`) or ``"seedsequence-pcg64"`` (numpy's
``PCG64(seed)``, what logs written before the field existed used). `rng_from_seed` takes it, so
old logs replay and an experiment running across an upgrade keeps drafting its pages the same way.
Generators from these seeds do not `spawn` (no SeedSequence behind them).

`seed_words` gives the same generator's raw 64-bit words without building it: PCG64's
seeding and step (O'Neill's XSL-RR 128/64, as numpy implements it) in plain integers. Methods
that read only raw words (team-draft, balanced) draft a page from a logged seed with it
(`Method.interleave_seeded`): building a numpy Generator was a large share of a page's cost
(`python -m benchmarks.interleave` times pages both ways).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numpy.random.bit_generator import ISeedSequence

__all__ = [
    "LEGACY_SEED_SCHEME",
    "SEED_SCHEME",
    "SEED_SCHEMES",
    "first_word",
    "rng_for",
    "rng_from_seed",
    "seed_for",
    "seed_words",
]

SEED_SCHEME: Final = "blake2b-pcg64"
"""The seed scheme of new experiment versions."""
LEGACY_SEED_SCHEME: Final = "seedsequence-pcg64"
"""The scheme of experiment versions logged before schemes were recorded."""
SEED_SCHEMES: Final = (SEED_SCHEME, LEGACY_SEED_SCHEME)

_PERSON = b"braid.interleave"  # BLAKE2b personalisation: our hashes never collide with others'
_PERSON_STATE = b"braid.pcg64"
_PARTS: Final = struct.Struct("<Q")  # a part's length, before it
_STATE_WORDS: Final = struct.Struct("<4Q")
_SEED_HASH: Final = hashlib.blake2b(digest_size=8, person=_PERSON)  # copied, then updated
_STATE_HASH: Final = hashlib.blake2b(digest_size=32, person=_PERSON_STATE)
_PCG_MULTIPLIER: Final = 0x2360ED051FC65DA44385DF649FCCF645  # PCG_DEFAULT_MULTIPLIER_128
_MASK_128: Final = (1 << 128) - 1
_MASK_64: Final = (1 << 64) - 1


def seed_for(salt: str, unit: str, query: str) -> int:
    """A 64-bit seed from (salt, unit, query); each part is length-prefixed, so no two
    different triples share an encoding (("a", "bc") and ("ab", "c") differ)."""
    if type(salt) is not str or type(unit) is not str or type(query) is not str:
        for name, part in (("salt", salt), ("unit", unit), ("query", query)):
            if not isinstance(part, str):
                raise TypeError(f"{name} must be a str, not {type(part).__name__}")
    s, u, q = salt.encode(), unit.encode(), query.encode()
    # One buffer hashed at once: the same digest as updating part by part, in fewer calls.
    data = _PARTS.pack(len(s)) + s + _PARTS.pack(len(u)) + u + _PARTS.pack(len(q)) + q
    digest = _SEED_HASH.copy()
    digest.update(data)
    return int.from_bytes(digest.digest(), "little")


class _HashedSeed(ISeedSequence):
    """A generator's initial state: BLAKE2b of a 64-bit seed, as many words as it asks for."""

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> npt.NDArray[Any]:
        kind = np.dtype(dtype)
        if kind not in (np.dtype(np.uint32), np.dtype(np.uint64)):
            raise ValueError(f"only uint32 and uint64 states, not {kind}")
        digest = hashlib.blake2b(
            self.seed.to_bytes(8, "little"),
            digest_size=n_words * kind.itemsize,
            person=_PERSON_STATE,
        ).digest()
        return np.frombuffer(digest, dtype=kind.newbyteorder("<")).astype(kind)

    def __repr__(self) -> str:
        return f"_HashedSeed({self.seed})"


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64:
        raise ValueError("seed must be an unsigned 64-bit integer")
    return int(seed)


def rng_from_seed(seed: int, scheme: str = SEED_SCHEME) -> np.random.Generator:
    """The generator an impression's logged `seed` stands for under seed `scheme`.

    Raises:
        ValueError: `seed` is not an unsigned 64-bit integer, or `scheme` is unknown.
    """
    _check_seed(seed)
    if scheme == SEED_SCHEME:
        # numpy documents that a bit generator takes any ISeedSequence; its stubs list its own.
        return np.random.Generator(np.random.PCG64(_HashedSeed(int(seed))))  # type: ignore[arg-type]
    if scheme == LEGACY_SEED_SCHEME:
        return np.random.Generator(np.random.PCG64(int(seed)))
    raise ValueError(f"unknown seed scheme {scheme!r}; known: {', '.join(SEED_SCHEMES)}")


def seed_words(seed: int, scheme: str = SEED_SCHEME) -> Callable[[], int]:
    """The raw 64-bit words of ``rng_from_seed(seed, scheme)``, one per call.

    They are ``bit_generator.random_raw()``'s words, computed without building the generator
    (under the legacy scheme it is built: numpy's SeedSequence hashing is not reproduced).

    Raises:
        ValueError: `seed` is not an unsigned 64-bit integer, or `scheme` is unknown.
    """
    value = seed if type(seed) is int and 0 <= seed <= _MASK_64 else _check_seed(seed)
    if scheme != SEED_SCHEME:
        return rng_from_seed(value, scheme).bit_generator.random_raw
    state, increment = _pcg_start(value)

    def next_word() -> int:
        nonlocal state
        state = (state * _PCG_MULTIPLIER + increment) & _MASK_128
        high = state >> 64
        word = high ^ (state & _MASK_64)
        rotation = high >> 58
        return ((word >> rotation) | (word << (64 - rotation))) & _MASK_64

    return next_word


def first_word(seed: int, scheme: str = SEED_SCHEME) -> int:
    """``seed_words(seed, scheme)()``: the generator's first raw word, without the closure.

    What decides a page whose coins all come from the first word (`Method.coin_bits`).

    Raises:
        ValueError: `seed` is not an unsigned 64-bit integer, or `scheme` is unknown.
    """
    value = seed if type(seed) is int and 0 <= seed <= _MASK_64 else _check_seed(seed)
    if scheme != SEED_SCHEME:
        return int(rng_from_seed(value, scheme).bit_generator.random_raw())
    state, increment = _pcg_start(value)
    state = (state * _PCG_MULTIPLIER + increment) & _MASK_128
    high = state >> 64
    word = high ^ (state & _MASK_64)
    rotation = high >> 58
    return ((word >> rotation) | (word << (64 - rotation))) & _MASK_64


def _pcg_start(seed: int) -> tuple[int, int]:
    """PCG64's state and increment after numpy seeds it from `_HashedSeed(seed)`."""
    digest = _STATE_HASH.copy()  # cheaper than a new hash: no keyword arguments to parse
    digest.update(seed.to_bytes(8, "little"))
    # _HashedSeed's four little-endian words; numpy's pcg64_set_seed makes state and increment
    # of (word0 << 64 | word1) and (word2 << 64 | word3).
    word0, word1, word2, word3 = _STATE_WORDS.unpack(digest.digest())
    increment = ((word2 << 64 | word3) << 1 | 1) & _MASK_128
    # srandom: from state 0 one step (which leaves the increment), add initstate, one step.
    initstate = word0 << 64 | word1
    return ((initstate + increment) * _PCG_MULTIPLIER + increment) & _MASK_128, increment


def rng_for(salt: str, unit: str, query: str, scheme: str = SEED_SCHEME) -> np.random.Generator:
    """The generator for one (experiment salt, unit id, query id)."""
    return rng_from_seed(seed_for(salt, unit, query), scheme)
