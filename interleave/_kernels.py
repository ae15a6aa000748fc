"""Compiled row loops for the batch path (numba), imported only when a batch is interleaved.

Each kernel is the scalar algorithm of its module, run over rows of integer ids with -1 as
padding: row r of `team_draft_rows` is exactly `team_draft.draft` on that row's lists with the
coin word `coins[r]` (bits used least significant first), so the batch path and the scalar
path are one algorithm, and the exact-distribution tests of one cover the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["balanced_rows", "team_draft_rows"]


@njit(cache=True, inline="always")
def _on_page(row: Any, placed: int, doc: int) -> bool:
    for j in range(placed):  # noqa: SIM110 (numba compiles no generator expressions)
        if row[j] == doc:
            return True
    return False


@njit(cache=True)
def team_draft_rows(
    a: Any,
    b: Any,
    coins: Any,
    neutral_prefix: bool,
    competitive_pairs: bool,
    docs: Any,
    teams: Any,
) -> None:
    """Team-draft every row into `docs`/`teams` (pre-filled with -1)."""
    n, k = docs.shape
    la = a.shape[1]
    lb = b.shape[1]
    for r in range(n):
        page = docs[r]
        placed = 0
        ia = 0
        ib = 0
        if neutral_prefix:
            while (
                placed < k
                and ia < la
                and ia < lb
                and a[r, ia] >= 0
                and a[r, ia] == b[r, ia]
                and not _on_page(page, placed, a[r, ia])
            ):
                page[placed] = a[r, ia]
                teams[r, placed] = -1
                placed += 1
                ia += 1
            ib = ia
        ca = 0
        cb = 0
        word = coins[r]
        pending = False
        while placed < k:
            while ia < la and (a[r, ia] < 0 or _on_page(page, placed, a[r, ia])):
                ia += 1
            while ib < lb and (b[r, ib] < 0 or _on_page(page, placed, b[r, ib])):
                ib += 1
            a_ok = ia < la
            b_ok = ib < lb
            if a_ok and b_ok:
                if ca < cb:
                    take_a = True
                elif cb < ca:
                    take_a = False
                else:
                    take_a = (word & np.uint64(1)) == np.uint64(1)
                    word = word >> np.uint64(1)
                    if competitive_pairs and a[r, ia] == b[r, ib]:
                        pending = True
            elif a_ok:
                # B is spent. A's pick ends a non-competitive round only if A is behind
                # (B drafted first); later picks are uncontested and credited.
                take_a = True
                pending = pending and ca < cb
            elif b_ok:
                take_a = False
                pending = pending and cb < ca
            else:
                break
            if take_a:
                page[placed] = a[r, ia]
                team = 0
                ia += 1
                ca += 1
            else:
                page[placed] = b[r, ib]
                team = 1
                ib += 1
                cb += 1
            if pending:
                team = -1
                pending = ca != cb
            teams[r, placed] = team
            placed += 1


@njit(cache=True)
def balanced_rows(a: Any, b: Any, a_first: Any, docs: Any, teams: Any) -> None:
    """Balanced-merge every row into `docs`/`teams` (pre-filled with -1)."""
    n, k = docs.shape
    for r in range(n):
        # de-duplicate each list (first occurrence kept), as prepare_lists does
        la = 0
        aa = np.empty(a.shape[1], dtype=np.int64)
        for i in range(a.shape[1]):
            d = a[r, i]
            if d >= 0 and not _on_page(aa, la, d):
                aa[la] = d
                la += 1
        lb = 0
        bb = np.empty(b.shape[1], dtype=np.int64)
        for i in range(b.shape[1]):
            d = b[r, i]
            if d >= 0 and not _on_page(bb, lb, d):
                bb[lb] = d
                lb += 1
        page = docs[r]
        placed = 0
        ka = 0
        kb = 0
        first = a_first[r]
        while placed < k and (ka < la or kb < lb):
            if kb >= lb or (ka < la and (ka < kb or (ka == kb and first))):
                d = aa[ka]
                ka += 1
                team = 0
            else:
                d = bb[kb]
                kb += 1
                team = 1
            if not _on_page(page, placed, d):
                page[placed] = d
                teams[r, placed] = team
                placed += 1
