"""`RankingCache`: a bounded LRU cache of rankers' lists for corpus-image queries.

A search by corpus id ("more like this") asks each ranker of the unit's route for the ids
nearest one corpus image, at the depth of the page. While a server runs, its corpus and its
rankers' indexes never change (they are loaded once at start-up; a new model or index needs a
restart), so a ranker's list for (ranker, corpus id, depth) is a pure function of that key and
may be kept and served again: the page, the draft and the logged impression are then exactly
what ranking afresh would give. Only lists of a ranker that answered are kept; a failure or
timeout is never cached, so the next request asks the ranker again.

Uploads are not cached here: their lists are held by query id for later pages only.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["RankingCache", "RankingKey"]

RankingKey = tuple[str, str, int]
"""(ranker name, corpus id, depth)."""

_MISSING: Final = object()


class RankingCache:
    """At most `capacity` lists, least recently used evicted first, with hit counters.

    Only the event loop's thread uses it, so it takes no lock.
    """

    __slots__ = ("_entries", "capacity", "evictions", "hits", "misses")

    def __init__(self, capacity: int) -> None:
        """An empty cache.

        Args:
            capacity: Most lists held (0: nothing is held and every lookup misses).

        Raises:
            ValueError: `capacity` is negative or not an integer.
        """
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative integer, got {capacity!r}")
        self.capacity = capacity
        self._entries: OrderedDict[RankingKey, tuple[str, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups so far (0.0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def get(self, key: RankingKey) -> tuple[str, ...] | None:
        """The list held for `key` (now the most recently used), or None; counts the lookup."""
        found = self._entries.get(key, _MISSING)
        if found is _MISSING:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found  # type: ignore[return-value]

    def hit(self, key: RankingKey) -> tuple[str, ...] | None:
        """The list held for `key` (now the most recently used, counted as a hit), or None.

        A miss is not counted: the caller looks elsewhere first, and counts what it finds.
        """
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
        return found

    def __contains__(self, key: object) -> bool:
        """Whether a list is held for `key` (neither counted as a lookup nor marked as used)."""
        return key in self._entries

    def put(self, key: RankingKey, ids: tuple[str, ...]) -> None:
        """Hold `ids` for `key`, evicting the least recently used lists beyond capacity."""
        if self.capacity == 0:
            return
        self._entries[key] = ids
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evictions += 1
