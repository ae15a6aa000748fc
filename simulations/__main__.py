"""`python -m simulations`: simulate experiments into a log directory, or run the demo."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from interleave.cli import OneLineParser, bounded_int

DEFAULT_DEMO_OUT = Path("out/demo")
_MAX_USERS = 10_000_000
"""A bound on --users and --ab-users: far more would not fit in memory, and should say so."""


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m simulations",
        description="Simulated users query real images: A/B tests and interleaving on the same "
        "rankers, logged in the schema the server writes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "simulate a scenario into LOGDIR"),
        ("demo", "simulate the default scenario, then write and summarise its report"),
    ):
        p = sub.add_parser(name, help=help_text)
        if name == "run":
            p.add_argument("logdir", type=Path, help="log directory to create (must be empty)")
            p.add_argument(
                "--pair",
                action="append",
                metavar="A,B",
                help="rankers to compare (repeatable); a model name, optionally +noise=S or "
                "+tail=K; default: the demo's four pairs",
            )
        else:
            p.add_argument(
                "--out", type=Path, default=DEFAULT_DEMO_OUT, help="folder for logs and report"
            )
        p.add_argument(
            "--users",
            type=bounded_int(1, _MAX_USERS),
            help=f"users per interleaving experiment (at most {_MAX_USERS:,})",
        )
        p.add_argument(
            "--ab-users",
            type=bounded_int(1, _MAX_USERS),
            help=f"users per A/B experiment (at most {_MAX_USERS:,})",
        )
        p.add_argument("--click-model", help="cascade, pbm, dcm or dbn (default dbn)")
        p.add_argument(
            "--seed", type=bounded_int(0), default=0, help="random seed, >= 0 (default 0)"
        )
        p.add_argument(
            "--threads", type=bounded_int(1, 4096), help="onnxruntime threads for index building"
        )
        p.add_argument("--force", action="store_true", help="replace an existing log directory")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except (ValueError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the one-line reason, for errors from the layers below
        from rankers.errors import RankerError

        if isinstance(exc, RankerError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _run(args: argparse.Namespace) -> int:
    from simulations.scenario import Scenario, simulate

    options: dict[str, object] = {"seed": args.seed}
    if args.users is not None:
        options["users"] = args.users
    if args.ab_users is not None:
        options["ab_users"] = args.ab_users
    if args.click_model is not None:
        options["click_model"] = args.click_model
    if args.command == "run" and args.pair:
        pairs = []
        for text in args.pair:
            a, sep, b = text.partition(",")
            if not sep or not a or not b:
                raise ValueError(f"--pair takes A,B, got {text!r}")
            pairs.append((a.strip(), b.strip()))
        options["pairs"] = tuple(pairs)
    scenario = Scenario(**options)  # type: ignore[arg-type]
    logdir = args.logdir if args.command == "run" else args.out / "logs"
    if args.force and logdir.exists():
        shutil.rmtree(logdir)
    if args.command == "demo" and logdir.exists():
        shutil.rmtree(logdir)  # the demo always starts afresh
    result = simulate(scenario, logdir, progress=not args.quiet, threads=args.threads)
    print(
        f"simulated {result.impressions:,} impressions in {len(result.experiments)} experiments "
        f"in {result.seconds:.0f} s -> {result.logdir}"
    )
    if args.command == "demo":
        from analysis.report import build_report, summary, write_html

        report = build_report(logdir, seed=args.seed)
        index = write_html(report, args.out / "report")
        print(summary(report))
        print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
