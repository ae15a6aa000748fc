"""The registry of interleaving methods: a dict of names to factories.

`register()` refuses a duplicate name; registration is the only work done at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from interleave.base import Method
from interleave.errors import UnknownMethodError

__all__ = ["get", "names", "register"]

_FACTORIES: dict[str, Callable[..., Method]] = {}


def register(name: str, factory: Callable[..., Method]) -> None:
    """Make `factory(**options)` available as `get(name, **options)`."""
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty str")
    if name in _FACTORIES:
        raise ValueError(f"an interleaving method named {name!r} is already registered")
    _FACTORIES[name] = factory


def get(name: str, **options: Any) -> Method:
    """The method registered as `name`, configured with `options`."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownMethodError(
            f"no interleaving method named {name!r}; known: {', '.join(names())}"
        ) from None
    try:
        return factory(**options)
    except TypeError as exc:
        raise TypeError(f"bad options for {name!r}: {exc}") from None


def names() -> tuple[str, ...]:
    """Every registered method name, sorted."""
    return tuple(sorted(_FACTORIES))
