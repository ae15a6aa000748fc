"""Interleaving: merge rankers' lists into one page and turn its clicks into a preference.

>>> import interleave
>>> method = interleave.get("team_draft")
>>> page = method.interleave([["a", "b", "c"], ["b", "d", "a"]], k=3,
...                          rng=interleave.rng_for("exp-1", "user-7", "query-3"))
>>> method.credit(page, clicks=[0]).winner in (0, 1)
True
"""

from __future__ import annotations

from interleave.balanced import Balanced
from interleave.base import Credit, CreditBatch, DocId, Method, Page, PageBatch
from interleave.errors import InterleaveError, PageMismatchError, UnknownMethodError
from interleave.multileave import TeamDraftMultileave
from interleave.optimized import Optimized
from interleave.probabilistic import Probabilistic
from interleave.registry import get, names, register
from interleave.seeding import (
    LEGACY_SEED_SCHEME,
    SEED_SCHEME,
    SEED_SCHEMES,
    first_word,
    rng_for,
    rng_from_seed,
    seed_for,
    seed_words,
)
from interleave.team_draft import TeamDraft

__all__ = [
    "LEGACY_SEED_SCHEME",
    "SEED_SCHEME",
    "SEED_SCHEMES",
    "Balanced",
    "Credit",
    "CreditBatch",
    "DocId",
    "InterleaveError",
    "Method",
    "Optimized",
    "Page",
    "PageBatch",
    "PageMismatchError",
    "Probabilistic",
    "TeamDraft",
    "TeamDraftMultileave",
    "UnknownMethodError",
    "first_word",
    "get",
    "names",
    "register",
    "rng_for",
    "rng_from_seed",
    "seed_for",
    "seed_words",
]

for _method in (Balanced, Optimized, Probabilistic, TeamDraft, TeamDraftMultileave):
    register(_method.name, _method)
del _method
