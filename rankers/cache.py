"""Where `rankers` keeps fetched data and built indexes.

The cache root is the `BRAID_CACHE` environment variable if set, else `.cache` under the current
directory. It holds `data/` (the fetched corpora) and `indexes/` (one folder per model and corpus).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

__all__ = ["CACHE_ENV", "cache_root", "data_dir", "file_sha256", "index_root"]

CACHE_ENV: Final = "BRAID_CACHE"
"""The environment variable that overrides the cache root."""


def cache_root() -> Path:
    """The cache root: `$BRAID_CACHE`, else `.cache` under the current directory."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured) if configured else Path.cwd() / ".cache"


def data_dir() -> Path:
    """Where fetched corpora live: `<cache root>/data`."""
    return cache_root() / "data"


def index_root() -> Path:
    """Where built indexes live: `<cache root>/indexes`."""
    return cache_root() / "indexes"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, as hex (read in blocks: files may be gigabytes)."""
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
