"""``python -m rankers``: fetch the corpus, list models and indexes, build indexes, check models.

Parsing only: each subcommand is a function of `rankers.commands` (``check`` is
`rankers.checks.run`). Failures print one line on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _between(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer from `minimum` to `maximum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must lie in {minimum}..{maximum:,}, got {value}")
        return value

    return parse


_positive = _between(1, 4096)  # batch sizes and threads
_depth = _between(0, 1000)  # a neighbour table 1,000 deep is 8 kB an image


def _run_check(args: argparse.Namespace) -> int:
    from rankers import checks

    return checks.run(args)


def build_parser(*, with_check_options: bool = False) -> argparse.ArgumentParser:
    """The argument parser; ``check``'s own options are added only when asked (they import more)."""
    from rankers import commands

    parser = _Parser(
        prog="python -m rankers",
        description="Image rankers for Braid: corpus, embedding models, indexes and model checks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = sub.add_parser("fetch", help="download a corpus (default emoji) into the cache, once")
    fetch.add_argument(
        "--corpus",
        choices=tuple(commands.FETCHERS),
        default="emoji",
        help="the corpus to fetch (default: %(default)s; fashion-mnist needs root to install)",
    )
    fetch.add_argument("--force", action="store_true", help="rebuild the corpus from the downloads")
    fetch.set_defaults(handler=commands.fetch)

    listing = sub.add_parser("list", help="list models, corpora and built indexes")
    listing.set_defaults(handler=commands.list_all)

    index = sub.add_parser(
        "index",
        help="embed a corpus with a model and build its index (resumes after an interruption)",
    )
    index.add_argument("--model", required=True, help="a model name (see `list`)")
    index.add_argument("--corpus", required=True, help="a corpus name (see `list`)")
    index.add_argument("--batch-size", type=_positive, default=32, help="images per batch (32)")
    index.add_argument("--threads", type=_positive, default=None, help="onnxruntime threads (all)")
    index.add_argument(
        "--neighbours",
        type=_depth,
        default=100,
        help="precompute each image's nearest neighbours to this depth, so a search by corpus "
        "id is a lookup (100; 0: none; at most 1,000)",
    )
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.set_defaults(handler=commands.index)

    check = sub.add_parser("check", help="run the embedding checks on a model (exit 1 if it fails)")
    if with_check_options:
        try:
            from rankers import checks
        except ImportError as error:
            parser.error(f"the check command is unavailable: {error}")
        checks.add_arguments(check)
    check.set_defaults(handler=_run_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from rankers.errors import RankerError

    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in arguments if not word.startswith("-")), None)
    parser = build_parser(with_check_options=command == "check")
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Command = args.handler
    try:
        return handler(args)
    except RankerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a cache or output path that cannot be written
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: finished work is kept; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
