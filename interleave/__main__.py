"""`python -m interleave`: list the methods, or run a toy interleaving session."""

from __future__ import annotations

import sys

from interleave.cli import OneLineParser, bounded_int
from interleave.demo import toy_session
from interleave.registry import get, names


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m interleave", description="Interleaving methods for comparing rankers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered interleaving methods")
    demo = sub.add_parser("demo", help="interleave a good and a worse toy ranker")
    demo.add_argument(
        "--impressions",
        type=bounded_int(1, 10_000_000),
        default=2_000,
        help="queries to simulate (1..10,000,000)",
    )
    demo.add_argument("--seed", type=bounded_int(0), default=0, help="random seed (>= 0)")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in names():
            doc = (type(get(name)).__doc__ or "").strip().splitlines()[0]
            print(f"{name:<24} {doc}")
        return 0
    print(f"Toy session: {args.impressions} queries, ranker 0 is better than ranker 1.")
    print(f"{'method':<16} {'wins':>6} {'losses':>7} {'ties':>6} {'delta':>7} {'p':>10}")
    for r in toy_session(impressions=args.impressions, seed=args.seed):
        print(
            f"{r.method:<16} {r.wins:>6} {r.losses:>7} {r.ties:>6} {r.delta:>+7.3f} "
            f"{r.p_value:>10.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
