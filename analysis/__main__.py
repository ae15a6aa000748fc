"""Command line of the analysis package.

    python -m analysis report LOGDIR --out DIR [--no-plots] [--seed N] [--alpha A]
                                             [--resamples B]

Only argument parsing lives here; the work is `analysis.report.run_report`, imported when a
command runs so that `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from interleave.cli import OneLineParser, bounded_int

__all__ = ["main"]


def _alpha(text: str) -> float:
    value = float(text)
    # Below 1e-12, 1 - alpha is too close to 1 for the quantiles the tests need.
    if not 1e-12 <= value < 1:
        raise argparse.ArgumentTypeError(f"alpha must lie in [1e-12, 1), got {text}")
    return value


_MAX_RESAMPLES = 1_000_000


def _out(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must name a directory")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m analysis",
        description="Statistics and reports over Braid experiment logs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = commands.add_parser(
        "report",
        help="analyse every experiment of a log directory and write an HTML report",
        description=(
            "Analyse every interleaving and A/B experiment of LOGDIR, write DIR/index.html "
            "with its figures, and print a short summary: the winner, its p-value, the "
            "queries each design needed and their ratio, and any warnings."
        ),
    )
    report.add_argument("logdir", metavar="LOGDIR", help="log directory (experiments.jsonl, ...)")
    report.add_argument(
        "--out", metavar="DIR", type=_out, required=True, help="where to write index.html"
    )
    report.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the figures and the clicks-by-position counts (faster)",
    )
    report.add_argument(
        "--seed", type=bounded_int(0), default=0, help="seed of every random draw (0)"
    )
    report.add_argument(
        "--alpha", type=_alpha, default=0.05, help="significance level of every test (0.05)"
    )
    report.add_argument(
        "--resamples",
        type=bounded_int(1, _MAX_RESAMPLES),
        default=1000,
        help="bootstrap resamples (1000)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "report":
        from analysis.report import ReportError, run_report

        try:
            text = run_report(
                args.logdir,
                args.out,
                alpha=args.alpha,
                seed=args.seed,
                resamples=args.resamples,
                plots=not args.no_plots,
            )
        except ReportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
