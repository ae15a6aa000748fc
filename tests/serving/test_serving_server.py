"""A real uvicorn server in a subprocess: killed with SIGKILL under load, restarted, and every
acknowledged event is in the log; the compacted log has the exact analysis schema."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
from serving_support import ROOT, config_data, free_port, make_corpus, server, toml_of

from analysis.schema import SCHEMAS, Kind, read_experiments, scan

IDS = make_corpus().ids


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_event(tmp_path: Path, corpus_dir: Path) -> None:
    data = config_data(tmp_path, corpus_dir)
    data["log"] = {"compact_seconds": 0.5}  # compaction runs while the load does, too
    config = tmp_path / "serving.toml"
    config.write_text(toml_of(data))
    logdir = tmp_path / "logs"
    port = free_port()
    acked_impressions: set[str] = set()
    acked_clicks: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def user(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for i in range(200):
                if stop.is_set():
                    return
                try:
                    body = http.post(
                        "/search", json={"corpus_id": IDS[i % len(IDS)], "unit_id": f"w{worker}"}
                    ).json()
                    with lock:
                        acked_impressions.add(body["impression_id"])
                    click_id = f"w{worker}-{i}"
                    response = http.post(
                        "/clicks",
                        json={
                            "impression_id": body["impression_id"],
                            "position": i % 5,
                            "click_id": click_id,
                        },
                    )
                    if response.status_code == 201:
                        with lock:
                            acked_clicks.add(click_id)
                except (httpx.TransportError, KeyError, ValueError):
                    return  # the server died under us: whatever was not acknowledged may be lost

    with server(config, port, tmp_path / "server.log") as process, ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(user, w) for w in range(12)]
        deadline = time.monotonic() + 20
        while len(acked_clicks) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)  # mid-flight: requests are still running
        process.wait()
        stop.set()
        for future in futures:
            future.result()
    assert len(acked_clicks) >= 150, (tmp_path / "server.log").read_text()

    # Restart on the same log directory: recovery compacts what the killed server left.
    with server(config, port, tmp_path / "server.log"):
        some_click = sorted(acked_clicks)[0]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            health = http.get("/health").json()
            assert health["uncompacted_records"] == 0
            # Clicks stay idempotent across the restart.
            row = scan(logdir, Kind.CLICKS).filter(pl.col("click_id") == some_click).collect()
            impression, position = row["impression_id"][0], row["position"][0]
            again = http.post(
                "/clicks",
                json={"impression_id": impression, "position": position, "click_id": some_click},
            )
            assert again.status_code == 200
            assert again.json()["duplicate"] is True
            figures = http.get("/experiments/ab-interleaved").json()["figures"]
            assert figures["impressions"] >= len(acked_impressions)

    impressions = scan(logdir, Kind.IMPRESSIONS).collect()
    clicks = scan(logdir, Kind.CLICKS).collect()
    assignments = scan(logdir, Kind.ASSIGNMENTS).collect()
    for frame, kind in (
        (impressions, Kind.IMPRESSIONS),
        (clicks, Kind.CLICKS),
        (assignments, Kind.ASSIGNMENTS),
    ):
        assert frame.schema == SCHEMAS[kind]
    assert acked_impressions <= set(impressions["impression_id"].to_list())
    assert acked_clicks <= set(clicks["click_id"].to_list())
    assert impressions["impression_id"].is_unique().all()
    assert clicks["click_id"].is_unique().all()
    assert assignments.select("experiment_id", "experiment_version", "unit_id").is_unique().all()
    assert [s.experiment_id for s in read_experiments(logdir)] == ["ab-interleaved"]
    assert not list((logdir / "journal").glob("segment-*.jsonl"))  # all compacted on shutdown


def test_cli_help_and_one_line_failures(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "serving"]
    shown = subprocess.run([*run, "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert shown.returncode == 0
    assert "--config" in shown.stdout
    assert "--log-dir" in shown.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[rankers]\n")
    failed = subprocess.run(
        [*run, "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0
    assert "at least one ranker" in failed.stderr


def test_a_second_server_on_one_log_directory_fails_in_one_line(
    tmp_path: Path, corpus_dir: Path
) -> None:
    import fcntl
    import os

    config = tmp_path / "serving.toml"
    config.write_text(toml_of(config_data(tmp_path, corpus_dir)))
    logdir = tmp_path / "logs"
    logdir.mkdir()
    held = os.open(logdir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a running server holds it
    try:
        failed = subprocess.run(
            [sys.executable, "-m", "serving", "--config", str(config), "--port", "0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(held)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"python -m serving: error: log directory {logdir} is in use by another server"
    ]


@pytest.mark.parametrize("broken", ["a file", "a corrupt spec", "an empty part"])
def test_a_log_directory_found_unusable_at_start_up_fails_in_one_line(
    tmp_path: Path, corpus_dir: Path, broken: str
) -> None:
    """Found only once the service opens the log (not before uvicorn starts): still one
    line and exit status 1, not Litestar's lifespan traceback."""
    logdir = tmp_path / "logs"
    if broken == "a file":
        logdir.write_text("not a directory")
        words = "cannot use log directory"
    elif broken == "a corrupt spec":
        logdir.mkdir()
        (logdir / "experiments.jsonl").write_text("garbage{\n")
        words = "experiments.jsonl: corrupt experiment spec"
    else:
        (logdir / "impressions").mkdir(parents=True)
        (logdir / "impressions" / "part-0.parquet").write_bytes(b"")
        words = "part-0.parquet is empty (0 bytes)"
    config = tmp_path / "serving.toml"
    config.write_text(toml_of(config_data(tmp_path, corpus_dir)))
    command = [sys.executable, "-m", "serving", "--config", str(config), "--port", "0"]
    failed = subprocess.run(
        [*command, "--log-dir", str(logdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert failed.returncode == 1
    output = failed.stdout + failed.stderr
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "ERROR" in line]
    assert "cannot start: " in line
    assert words in line
