"""What each ``python -m rankers`` subcommand does, given its parsed arguments (see ``__main__``).

Each function returns the process exit status and raises `RankerError` for failures the user can
fix; ``__main__`` turns those into a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Final

__all__ = ["FETCHERS", "fetch", "index", "list_all"]

FETCHERS: Final = {
    "emoji": "rankers.emoji",
    "animal-mnist": "rankers.animal",
    "fashion-mnist": "rankers.fashion",
}
"""The corpora ``rankers fetch`` builds, each by the ``fetch(force=...)`` of a module."""


def fetch(args: argparse.Namespace) -> int:
    """``rankers fetch``: download and build a corpus (once); the emoji corpus by default."""
    module = importlib.import_module(FETCHERS[args.corpus])
    directory = module.fetch(force=args.force)
    print(f"{args.corpus} corpus ready in {directory}")
    return 0


def list_all(args: argparse.Namespace) -> int:
    """``rankers list``: the registered models and corpora, and the built indexes."""
    from rich.console import Console
    from rich.table import Table

    from rankers import corpus, indexing, models
    from rankers.errors import RankerError

    del args
    console = Console() if sys.stdout.isatty() else Console(width=120)  # pipes: no truncation
    table = Table("model", "version", "dim", "source", title="models")
    for name in models.names():
        if name in models.bundled():
            try:
                manifest = models.manifest(name)
            except RankerError as error:
                table.add_row(name, "?", "?", f"[red]{error}[/]")
                continue
            source = f"{manifest.source_package} {manifest.source_version}"
            table.add_row(name, manifest.version, str(manifest.embedding_dim), source)
        else:
            table.add_row(name, "", "", "built in")
    console.print(table)
    console.print(f"corpora: {', '.join(corpus.names())}")
    built = Table(
        "model", "version", "corpus", "vectors", "graph", "neighbours", "built", title="indexes"
    )
    for _, index in indexing.installed_indexes():
        width = index.settings.reduce if index.projection_bytes else index.dim
        rescored = f", top {index.rescore}k rescored" if index.rescore else ""
        depth = index.settings.neighbours if index.neighbours_bytes else 0
        built.add_row(
            index.model,
            index.model_version,
            index.corpus,
            f"{index.count:,}",
            f"{width}-d {index.settings.dtype}{rescored}",
            str(depth) if depth else "none",
            index.built_at,
        )
    console.print(built if built.row_count else "indexes: none built yet (python -m rankers index)")
    return 0


def index(args: argparse.Namespace) -> int:
    """``rankers index``: embed a corpus with a model (resuming) and write its index."""
    from rankers import indexing
    from rankers.index import IndexSettings

    report = indexing.index_model(
        args.model,
        args.corpus,
        batch_size=args.batch_size,
        threads=args.threads,
        progress=not args.no_progress and sys.stderr.isatty(),
        settings=IndexSettings(neighbours=args.neighbours),
    )
    print(
        f"indexed {args.corpus} with {args.model} into {report.directory}: "
        f"{report.batches} batches, {report.resumed} resumed, {report.embedded} embedded "
        f"({report.images_per_second:,.1f} images/s), sample recall@10 {report.recall_at_10:.3f}"
    )
    return 0
