"""``python -m serving``: run the search service (see `serving.server.run`)."""

from __future__ import annotations

import sys

from interleave.cli import OneLineParser
from rankers.errors import RankerError
from serving.errors import ExperimentError


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the server; return the exit status."""
    parser = OneLineParser(
        prog="python -m serving",
        description="Run the Braid search service: a search page and API that runs "
        "interleaving and A/B experiments and logs every event durably.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: the embedded defaults)"
    )
    parser.add_argument("--host", help="address to bind (default: from the config, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: from the config, 8000)")
    parser.add_argument(
        "--log-dir", metavar="DIR", help="log directory (default: from the config, logs/served)"
    )
    args = parser.parse_args(argv)
    from serving import server

    try:
        server.run(args.config, host=args.host, port=args.port, log_dir=args.log_dir)
    except (ExperimentError, RankerError, OSError) as error:
        print(f"python -m serving: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
