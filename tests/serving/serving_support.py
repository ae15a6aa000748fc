"""Helpers for the serving tests: a tiny corpus on disk, configs, images, and odd rankers."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from litestar import Litestar
from litestar.testing import TestClient
from PIL import Image

from rankers.base import Query, Ranking
from rankers.corpus import Corpus, write
from serving.config import Config, parse_config

CORPUS_SIZE = 60
ClientFactory = Callable[..., TestClient[Litestar]]
"""Builds a started test client (the `make_client` fixture)."""
ROOT = Path(__file__).resolve().parents[2]


def make_corpus(size: int = CORPUS_SIZE) -> Corpus:
    """`size` random 16 x 16 images with ids like ``ink/c07`` (ids hold a slash, as emoji's do)."""
    rng = np.random.default_rng(11)
    ids = [f"{'ink' if i % 2 else 'paint'}/c{i:02d}" for i in range(size)]
    images = rng.integers(0, 256, size=(size, 16, 16, 3), dtype=np.uint8)
    return Corpus.from_arrays(
        "serving-tiny",
        ids,
        images,
        styles=[i.split("/")[0] for i in ids],
        concepts=[f"c{i % (size // 2):02d}" for i in range(size)],
        subcategories=[f"g{i % 4}" for i in range(size)],
    )


def write_corpus(directory: Path) -> Path:
    """Write the tiny corpus to `directory` (a corpus folder) and return it."""
    return write(make_corpus(), directory)


def config_data(
    tmp: Path,
    corpus_dir: Path,
    *,
    experiments: list[dict[str, Any]] | None = None,
    rankers: dict[str, dict[str, Any]] | None = None,
    limits: dict[str, Any] | None = None,
    token: str | None = "secret-token",
) -> dict[str, Any]:
    """A config mapping over static rankers `a`, `b` and `c` and one team-draft experiment."""
    server: dict[str, Any] = {"log_dir": str(tmp / "logs")}
    if token is not None:
        server["admin_token"] = token
    return {
        "server": server,
        "corpus": {"path": str(corpus_dir)},
        "log": {"compact_seconds": 3600.0},
        "limits": limits or {"ranker_timeout": 1.0},
        "rankers": rankers
        or {
            "a": {"kind": "static", "seed": 1},
            "b": {"kind": "static", "seed": 2},
            "c": {"kind": "static", "seed": 3},
        },
        "experiments": [{"id": "ab-interleaved", "rankers": ["a", "b"], "page_size": 5}]
        if experiments is None
        else experiments,
    }


def make_config(tmp: Path, corpus_dir: Path, **kwargs: Any) -> Config:
    """`config_data` parsed (the environment's admin token, if any, is not consulted here)."""
    return parse_config(config_data(tmp, corpus_dir, **kwargs))


def toml_of(data: Mapping[str, Any]) -> str:
    """A minimal TOML writer for the config mappings above (tables, arrays of tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(type(v))

    lines: list[str] = []

    def table(name: str, body: Mapping[str, Any], header: str) -> None:
        lines.append(header.format(name))
        nested = {}
        for key, v in body.items():
            if isinstance(v, Mapping):
                nested[key] = v
            else:
                lines.append(f"{key} = {value(v)}")
        for key, v in nested.items():
            table(f"{name}.{key}", v, "[{}]")

    for key, v in data.items():
        if isinstance(v, list) and v and isinstance(v[0], Mapping):
            for item in v:
                table(key, item, "[[{}]]")
        elif isinstance(v, Mapping):
            table(key, v, "[{}]")
    return "\n".join(lines) + "\n"


def png_bytes(pixels: np.ndarray | None = None, *, size: int = 20, fmt: str = "PNG") -> bytes:
    """An encoded image (random pixels unless given)."""
    if pixels is None:
        pixels = np.random.default_rng(5).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG that claims `width` x `height` pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\0" * (width + 1) * 4)  # a few rows; the rest is "missing"
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


class FailingRanker:
    """A ranker that always raises."""

    def __init__(self, name: str) -> None:
        self.name = name

    def rank(self, query: Query, k: int) -> Ranking:
        raise RuntimeError(f"{self.name} is down")


class SlowRanker:
    """Wraps a ranker and sleeps first (to trip the timeout), counting calls."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.name = inner.name
        self.calls = 0
        self._lock = threading.Lock()

    def rank(self, query: Query, k: int) -> Ranking:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        result: Ranking = self.inner.rank(query, k)
        return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start `python -m serving`; yield once /health answers; SIGTERM it at the end if alive."""
    env = {k: v for k, v in os.environ.items() if k != "BRAID_ADMIN_TOKEN"}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "--config", str(config), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
