"""Command-line helpers for Braid's commands: usage errors in one line, bounded integers.

Every package above this one uses them (`rankers`, a layer of its own, keeps its own copy).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

__all__ = ["OneLineParser", "bounded_int"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line naming the option (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def bounded_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from `minimum` to `maximum` (None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must lie in {minimum}..{maximum:,}, got {value}")
        return value

    return parse
