"""Errors raised by `interleave`.

Hierarchy::

    InterleaveError              base of every error this package raises on purpose
    ├── UnknownMethodError       `interleave.get()` was given a name nobody registered
    │                            (also ValueError)
    └── PageMismatchError        a page handed to the credit rule of a method that did not make it
                                 (also ValueError)

Bad arguments (k <= 0, unhashable ids, clicks outside the page, a wrong rng) raise plain
`ValueError`/`TypeError` naming the parameter.
"""

from __future__ import annotations

__all__ = ["InterleaveError", "PageMismatchError", "UnknownMethodError"]


class InterleaveError(Exception):
    """Base of every error `interleave` raises on purpose."""


class UnknownMethodError(InterleaveError, ValueError):
    """No interleaving method is registered under that name."""


class PageMismatchError(InterleaveError, ValueError):
    """A page was given to the credit rule of another method."""
