"""Pages, micro-batching and configuration: the pure and small parts of serving."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest
from serving_support import config_data, toml_of

import interleave
from analysis.schema import Design
from serving.api import SearchOut, SearchPage, SearchResult
from serving.batching import IDLE_HALF_LIFE, MicroBatcher
from serving.config import ADMIN_TOKEN_ENV, Limits, default_config, load_config, parse_config
from serving.errors import ConfigError
from serving.pages import PageMemo, interleaved_page, single_page

A = tuple(f"a{i}" for i in range(30))
B = tuple(f"b{i}" for i in range(15)) + A[:15]


# -- pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["team_draft", "balanced", "probabilistic", "optimized"])
def test_later_pages_continue_one_draft(name: str) -> None:
    method = interleave.get(name)
    pages = [
        interleaved_page(method, ("a", "b"), (A, B), seed=42, page=p, page_size=4, max_page=3)
        for p in (1, 2, 3)
    ]
    shown = [d for page in pages for d in page.doc_ids]
    assert len(shown) == len(set(shown)) == 12  # no page repeats another
    assert [p.page_start for p in pages] == [0, 4, 8]
    draft = method.interleave((A, B), k=12, rng=interleave.rng_from_seed(42))
    assert tuple(shown) == tuple(draft.docs[:12])
    assert pages[0].has_more
    assert pages[1].has_more
    assert not pages[2].has_more


def test_a_failed_ranker_leaves_the_survivors_list_marked() -> None:
    method = interleave.get("team_draft")
    page = interleaved_page(method, ("a", "b"), (None, B), seed=1, page=2, page_size=5, max_page=4)
    assert page.doc_ids == B[5:10]
    assert page.teams == (1,) * 5
    assert page.excluded == "ranker_failed:a"
    with pytest.raises(ValueError, match="every ranker failed"):
        interleaved_page(method, ("a", "b"), (None, None), seed=1, page=1, page_size=5, max_page=4)
    with pytest.raises(ValueError, match="page must lie"):
        interleaved_page(method, ("a", "b"), (A, B), seed=1, page=5, page_size=5, max_page=4)


@pytest.mark.parametrize(
    "method",
    [
        interleave.get("team_draft"),
        interleave.get("team_draft", neutral_prefix=True, competitive_pairs=True),
        interleave.get("balanced"),
        interleave.get("probabilistic"),
        interleave.get("optimized", max_pages=50),
    ],
    ids=lambda m: f"{m.name}{m.options() or ''}",
)
def test_a_memo_gives_every_seed_its_own_page(method: interleave.Method) -> None:
    # Kept pages are shared by the seeds whose coins fall alike: each must still be exactly
    # the page its logged seed stands for, on every page of the draft.
    memo = PageMemo(method, capacity=40)
    lists = (A[:20], B[:20])
    for seed in range(300):
        for page in (1, 2):
            args = {"seed": seed, "page": page, "page_size": 6, "max_page": 3}
            expected = interleaved_page(method, ("a", "b"), lists, **args)  # type: ignore[arg-type]
            kept = interleaved_page(method, ("a", "b"), lists, memo=memo, **args)  # type: ignore[arg-type]
            assert kept == expected, (seed, page)
    assert len(memo) <= 40
    if method.coin_bits(12) is None:
        assert memo.hits == memo.misses == 0  # nothing kept: every page drafted
    else:
        assert memo.hits > memo.misses  # 300 seeds, at most 2**6 outcomes of the coins a page
    failed = interleaved_page(
        method, ("a", "b"), (None, B), seed=1, page=1, page_size=6, max_page=3, memo=memo
    )
    assert failed.excluded == "ranker_failed:a"
    with pytest.raises(ValueError, match="page must lie"):
        interleaved_page(
            method, ("a", "b"), lists, seed=1, page=4, page_size=6, max_page=3, memo=memo
        )
    other = interleave.get("balanced" if method.name != "balanced" else "team_draft")
    with pytest.raises(ValueError, match="another method"):
        interleaved_page(
            other, ("a", "b"), lists, seed=1, page=1, page_size=6, max_page=3, memo=memo
        )
    with pytest.raises(ValueError, match="capacity"):
        PageMemo(method, capacity=-1)


def test_single_page_slices() -> None:
    page = single_page(A, 0, page=3, page_size=10, max_page=3)
    assert page.doc_ids == A[20:30]
    assert page.teams == (0,) * 10
    assert not page.has_more
    assert single_page(A, 0, page=1, page_size=10, max_page=3).has_more


# -- micro-batching -------------------------------------------------------------------------


def test_batcher_gathers_concurrent_items_and_isolates_failures() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def square(items: Sequence[int]) -> list[int]:
        with lock:
            calls.append(len(items))
        if 13 in items:
            raise ValueError("13 is unlucky")
        return [i * i for i in items]

    async def run() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[int, int] = MicroBatcher(
                square, executor=pool, max_batch=8, max_wait=0.02
            )
            return await asyncio.gather(
                *(batcher.submit(i) for i in range(20)), return_exceptions=True
            )

    results = asyncio.run(run())
    assert [r for i, r in enumerate(results) if i != 13] == [i * i for i in range(20) if i != 13]
    assert isinstance(results[13], ValueError)
    assert max(calls) <= 8
    # 20 items in batches of at most 8 (the batch holding 13 is retried item by item).
    assert len([c for c in calls if c > 1]) <= 3


def test_batcher_without_wait_runs_a_lone_item_at_once() -> None:
    async def run() -> int:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[int, int] = MicroBatcher(
                lambda xs: [x + 1 for x in xs], executor=pool, max_wait=0.0
            )
            result = await asyncio.wait_for(batcher.submit(1), 1.0)
            assert batcher.batches == 1
            return result

    assert asyncio.run(run()) == 2


def test_batcher_times_its_calls_per_item() -> None:
    """`item_seconds` follows the calls' wall time per item: a call of 4 items taking 40 ms
    gives about 10 ms an item, and later calls of 1 item taking 40 ms pull it towards 40."""

    def slow(items: Sequence[int]) -> list[int]:
        time.sleep(0.04)
        return list(items)

    async def run() -> tuple[float, float, float]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[int, int] = MicroBatcher(
                slow, executor=pool, max_batch=4, max_wait=0.05
            )
            before = batcher.item_seconds
            await asyncio.gather(*(batcher.submit(i) for i in range(4)))
            batched = batcher.item_seconds
            for i in range(10):
                await batcher.submit(i)
            return before, batched, batcher.item_seconds

    before, batched, alone = asyncio.run(run())
    assert before == 0.0
    assert 0.009 <= batched <= 0.03
    assert 0.03 <= alone <= 0.1  # 10 calls at weight 0.2: within 11% of 40 ms, plus slack


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _result_or_error(batcher: MicroBatcher[Any, Any], item: object) -> object:
    """The batcher's result for `item`, or the ValueError the model raised."""
    try:
        return await batcher.submit(item)
    except ValueError as error:
        return error


def test_batcher_times_failing_calls_caps_each_item_and_decays_while_idle() -> None:
    clock = FakeClock()
    running: list[float] = []

    def model(items: Sequence[int]) -> list[int]:
        running.append(batcher.item_seconds)  # read while this call runs: no decay
        clock.now += items[0]  # item i takes i seconds, then fails if odd
        if items[0] % 2:
            raise ValueError("odd")
        return list(items)

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            model, executor=pool, max_wait=0.0, max_item_seconds=2.0, clock=clock
        )
        assert isinstance(asyncio.run(_result_or_error(batcher, 1)), ValueError)
        assert batcher.item_seconds == 1.0  # the failing call was timed
        clock.now += IDLE_HALF_LIFE
        assert batcher.item_seconds == 0.5  # halved after one half-life idle
        clock.now += IDLE_HALF_LIFE
        assert batcher.item_seconds == 0.25
        assert asyncio.run(_result_or_error(batcher, 8)) == 8  # 8 s, counted as the 2 s cap
        assert running == [0.0, 0.25]
        assert batcher.item_seconds == pytest.approx(0.25 + 0.2 * (2.0 - 0.25))


def test_batcher_decays_toward_the_fastest_call_not_to_nothing() -> None:
    """A rest, however long, brings the estimate back to the model at its best (the fastest
    call that succeeded within the cap), never below: a burst after a quiet night is admitted
    as the model can serve it, not all at once."""
    clock = FakeClock()

    def model(items: Sequence[float]) -> list[float]:
        clock.now += abs(items[0])  # an item takes |item| seconds, and fails if negative
        if items[0] < 0:
            raise ValueError("negative")
        return list(items)

    with ThreadPoolExecutor(1) as pool:
        batcher: MicroBatcher[float, float] = MicroBatcher(
            model, executor=pool, max_wait=0.0, max_item_seconds=2.0, clock=clock
        )
        assert asyncio.run(_result_or_error(batcher, 0.5)) == 0.5
        failed = asyncio.run(_result_or_error(batcher, -3.0))  # 3 s, counted as 2
        assert isinstance(failed, ValueError)
        assert batcher.item_seconds == pytest.approx(0.5 + 0.2 * 1.5)
        clock.now += IDLE_HALF_LIFE
        assert batcher.item_seconds == pytest.approx(0.5 + 0.1 * 1.5)  # the excess halved
        clock.now += 1e6  # far past exp2's underflow
        assert batcher.item_seconds == 0.5
        assert asyncio.run(_result_or_error(batcher, 0.25)) == 0.25
        # A moving average still, not a restart:
        assert batcher.item_seconds == pytest.approx(0.5 + 0.2 * (0.25 - 0.5))
        clock.now += 1e6
        assert batcher.item_seconds == 0.25  # the new fastest


def test_batcher_rejects_bad_settings() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(list, executor=pool, max_batch=0)


# -- configuration --------------------------------------------------------------------------


def test_embedded_defaults() -> None:
    config = default_config()
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    assert config.log.directory == Path("logs/served")
    assert config.limits.max_upload_bytes == 10 * 1024 * 1024
    assert {n: r.model for n, r in config.rankers.items()} == {
        "lite0": "effnet-lite0",
        "lite2": "effnet-lite2",
    }
    (experiment,) = config.experiments
    assert experiment.design is Design.INTERLEAVING
    assert experiment.method == "team_draft"
    assert experiment.running
    assert config.admin_token is None


def test_a_config_file_round_trips(tmp_path: Path, corpus_dir: Path) -> None:
    path = tmp_path / "serving.toml"
    path.write_text(toml_of(config_data(tmp_path, corpus_dir)))
    config = load_config(path)
    assert set(config.rankers) == {"a", "b", "c"}
    assert config.experiments[0].page_size == 5
    assert config.admin_token == "secret-token"
    moved = config.with_overrides(host="127.0.0.2", port=9000, log_dir=tmp_path / "elsewhere")
    assert (moved.host, moved.port, moved.log.directory) == (
        "127.0.0.2",
        9000,
        tmp_path / "elsewhere",
    )


def test_empty_command_line_overrides_are_refused() -> None:
    config = default_config()
    with pytest.raises(ConfigError, match="--host must be a non-empty string"):
        config.with_overrides(host="")  # would listen on every interface
    with pytest.raises(ConfigError, match="--log-dir must be a non-empty string"):
        config.with_overrides(log_dir="")  # would log into the working directory


def test_the_upload_wait_defaults_to_half_the_ranker_timeout(
    tmp_path: Path, corpus_dir: Path
) -> None:
    data = config_data(tmp_path, corpus_dir, limits={"ranker_timeout": 0.5})
    assert parse_config(data).limits.upload_wait == 0.25
    data["limits"]["max_upload_wait"] = 0.5
    assert parse_config(data).limits.upload_wait == 0.5


def test_the_environment_token_wins(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "from-env")
    assert parse_config(config_data(tmp_path, corpus_dir)).admin_token == "from-env"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"colour": "red"}, "unknown keys ['colour']"),
        ({"server": {"port": "80"}}, "server.port"),
        ({"server": {"prot": 80}}, "unknown keys ['prot']"),
        ({"rankers": {}}, "at least one ranker"),
        ({"rankers": {"a": {"kind": "magic"}}}, "kind must be"),
        ({"rankers": {"a": {"kind": "embedding"}}}, "model is required"),
        ({"limits": {"max_upload_bytes": 0}}, "limits.max_upload_bytes"),
        ({"limits": {"ranker_timeout": -1.0}}, "limits.ranker_timeout"),
        ({"limits": {"ranker_timeout": 1.0, "max_upload_wait": 1.5}}, "must not exceed"),
        ({"limits": {"max_upload_wait": 0}}, "limits.max_upload_wait"),
        ({"log": {"sync_timeout": 0}}, "log.sync_timeout"),
        ({"experiments": [{"id": "e", "rankers": ["a", "zz"]}]}, "unknown rankers"),
        (
            {"experiments": [{"id": "e", "rankers": ["a", "b"], "method": "nope"}]},
            "no interleaving method",
        ),
        ({"experiments": [{"id": "e", "rankers": ["a", "b", "c"]}]}, "exactly 2"),
        (
            {"experiments": [{"id": "e", "design": "ab", "rankers": ["a", "b"], "weights": [1]}]},
            "one share per arm",
        ),
        (
            {
                "experiments": [
                    {"id": "e", "design": "ab", "rankers": ["a", "b"], "weights": [1, -1]}
                ]
            },
            "positive",
        ),
        (
            {"experiments": [{"id": "e", "rankers": ["a", "b"], "options": {"bogus": 1}}]},
            "bad options",
        ),
        (
            {
                "experiments": [
                    {"id": "e", "rankers": ["a", "b"]},
                    {"id": "e", "rankers": ["a", "c"]},
                ]
            },
            "used twice",
        ),
        (
            {
                "experiments": [
                    {"id": "e", "rankers": ["a", "b"], "traffic": 0.7},
                    {"id": "f", "rankers": ["a", "c"], "traffic": 0.7},
                ]
            },
            "more than 1",
        ),
        ({"experiments": [{"rankers": ["a", "b"]}]}, ".id is required"),
        (
            {"experiments": [{"id": "e", "design": "mixed", "rankers": ["a", "b"]}]},
            "design must be",
        ),
    ],
)
def test_invalid_configs_name_the_key(
    tmp_path: Path, corpus_dir: Path, change: dict[str, object], words: str
) -> None:
    data = config_data(tmp_path, corpus_dir)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key == "server":
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_config(data, source="test.toml")


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize("unit_id", ["bench-1", "x:y~z|!", 'a;b"c', "a,b", "back\\slash", "[=]"])
def test_the_unit_cookie_is_what_litestar_renders(unit_id: str) -> None:
    from litestar.datastructures import Cookie

    from serving.app import _unit_cookie

    cookie = Cookie(
        key="braid_unit", value=unit_id, max_age=365 * 24 * 3600, httponly=True, samesite="lax"
    )
    assert _unit_cookie(unit_id) == cookie.to_header(header="")


def test_a_search_page_encodes_as_its_search_out() -> None:
    results = [
        SearchResult(f"d{i}", f"/images/d{i}?thumb=1", f"/images/d{i}", i + 1, i) for i in range(3)
    ]
    out = SearchOut("imp", "q", "u", 1, 3, True, results)
    page = SearchPage("imp", "q", "u", 1, 3, True, msgspec.Raw(msgspec.json.encode(results)))
    assert msgspec.json.encode(page) == msgspec.json.encode(out)
    assert page.out() == out


def test_limits_built_in_python_are_checked_like_a_file() -> None:
    with pytest.raises(ConfigError, match="must not exceed"):
        Limits(ranker_timeout=0.5, max_upload_wait=0.6)
    assert Limits(ranker_timeout=0.5, max_upload_wait=0.5).upload_wait == 0.5
    assert Limits(ranker_timeout=0.5).upload_wait == 0.25  # left out: half, as in a file
    assert Limits().upload_wait == 1.0
    for bad in (-1.0, 0.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match=r"limits\.max_upload_wait"):
            Limits(max_upload_wait=bad)
        with pytest.raises(ConfigError, match=r"limits\.ranker_timeout"):
            Limits(ranker_timeout=bad)
