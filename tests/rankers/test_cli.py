"""``python -m rankers``: help, one-line failures, listing, and an index build that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankers import cache
from rankers.cache import CACHE_ENV
from rankers.corpus import Corpus
from rankers.index import MANIFEST_FILE, NEIGHBOURS_FILE


def run(*arguments: str, cache_root: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if cache_root is not None:
        env[CACHE_ENV] = str(cache_root)
    return subprocess.run(
        [sys.executable, "-m", "rankers", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("fetch", "list", "index", "check"):
        assert command in result.stdout


def test_check_is_wired_to_the_checks_module() -> None:
    result = run("check", "--help")
    assert result.returncode == 0, result.stderr
    assert "--model" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("index", "--model", "pixels-16"), "required: --corpus"),
        (
            ("index", "--model", "pixels-16", "--corpus", "emoji", "--batch-size", "0"),
            "must lie in 1..4,096, got 0",
        ),
        (("nonsense",), "invalid choice"),
        ((), "required: COMMAND"),
    ],
)
def test_usage_errors_are_one_line(arguments: tuple[str, ...], message: str) -> None:
    result = run(*arguments)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_failures_are_one_line(tmp_path: Path) -> None:
    unknown = run("index", "--model", "nope", "--corpus", "emoji", cache_root=tmp_path)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: no model named 'nope' (known: effnet-lite0, effnet-lite0-int8, effnet-lite2, "
        "pixels-16)"
    ]
    missing = run("index", "--model", "pixels-16", "--corpus", "emoji", cache_root=tmp_path)
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "make data" in missing.stderr


def test_list_shows_models_and_corpora(tmp_path: Path) -> None:
    result = run("list", cache_root=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "effnet-lite0" in result.stdout
    assert "pixels-16" in result.stdout
    assert "corpora: animal-mnist, emoji, fashion-mnist" in result.stdout


def test_index_resumes_after_an_interruption(tmp_path: Path, emoji: Corpus) -> None:
    """Interrupt a real build with Ctrl-C, run it again: finished batches are not redone."""
    (tmp_path / "data").symlink_to(cache.data_dir().resolve(), target_is_directory=True)
    env = {**os.environ, CACHE_ENV: str(tmp_path)}
    command = [sys.executable, "-m", "rankers", "index", "--model", "pixels-16", "--corpus"]
    command += ["emoji", "--batch-size", "1", "--no-progress"]
    chunks = tmp_path / "indexes" / "pixels-16__emoji" / "chunks"
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(list(chunks.glob("0*.npy"))) < 20 and process.poll() is None:
        assert time.monotonic() < deadline, "no chunks appeared"
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == [
        "interrupted: finished work is kept; run the same command again to resume"
    ]
    saved = len(list(chunks.glob("0*.npy")))
    assert 20 <= saved < len(emoji)

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    report = finished.stdout
    assert f"{len(emoji)} batches, {saved} resumed, {len(emoji) - saved} embedded" in report
    assert (chunks.parent / MANIFEST_FILE).is_file()
    assert not chunks.exists()
    assert json.loads((chunks.parent / MANIFEST_FILE).read_text())["settings"]["neighbours"] == 100
    assert (chunks.parent / NEIGHBOURS_FILE).is_file()


def test_index_without_a_neighbour_table(tmp_path: Path, emoji: Corpus) -> None:
    (tmp_path / "data").symlink_to(cache.data_dir().resolve(), target_is_directory=True)
    built = run(
        "index", "--model", "pixels-16", "--corpus", "emoji", "--neighbours", "0",
        "--no-progress", cache_root=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    folder = tmp_path / "indexes" / "pixels-16__emoji"
    assert json.loads((folder / MANIFEST_FILE).read_text())["settings"]["neighbours"] == 0
    assert not (folder / NEIGHBOURS_FILE).exists()
    listed = run("list", cache_root=tmp_path)
    assert "none" in listed.stdout.split("pixels-16", 2)[-1]
    negative = run("index", "--model", "pixels-16", "--corpus", "emoji", "--neighbours", "-1")
    assert negative.returncode == 2
    assert "must lie in 0..1,000, got -1" in negative.stderr
