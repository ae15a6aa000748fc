"""Errors raised by `rankers`.

Hierarchy::

    RankerError                  base of every error this package raises on purpose
    ├── ImageError               bytes that are not a usable image (corrupt, truncated, bomb, ...)
    ├── ManifestError            a model or index whose files do not match its manifest
    └── UnknownItemError         a corpus id, model or ranker name that does not exist

Bad arguments raise `ValueError`/`TypeError` naming the parameter instead.
"""

from __future__ import annotations

__all__ = ["ImageError", "ManifestError", "RankerError", "UnknownItemError"]


class RankerError(Exception):
    """Base of every error `rankers` raises on purpose."""


class ImageError(RankerError):
    """The bytes given are not an image this package can use."""


class ManifestError(RankerError):
    """A model or index does not match its manifest (checksum, model, dimension)."""


class UnknownItemError(RankerError, KeyError):
    """A corpus id, model or ranker name that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
