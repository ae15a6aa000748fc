"""Every endpoint of the real app through Litestar's test client, and every class of bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.exceptions import InternalServerException
from litestar.testing import TestClient
from serving_support import (
    CORPUS_SIZE,
    ClientFactory,
    FailingRanker,
    SlowRanker,
    bomb_png,
    make_config,
    make_corpus,
    png_bytes,
)

import interleave
from analysis.schema import Kind, read_experiments, scan
from rankers.base import Query
from rankers.static import StaticRanker
from serving.app import UNIT_COOKIE, UNIT_HEADER, create_app
from serving.config import RankerConfig
from serving.eventlog import read_segment
from serving.loading import load_ranker
from serving.service import UploadedImage

AUTH = {"Authorization": "Bearer secret-token"}
IDS = make_corpus().ids


def search(client: TestClient[Litestar], **body: object) -> dict[str, object]:
    response = client.post("/search", json=body)
    assert response.status_code == 200, response.text
    out: dict[str, object] = response.json()
    return out


def result_ids(out: dict[str, object]) -> list[str]:
    results = out["results"]
    assert isinstance(results, list)
    return [r["image_id"] for r in results]


def journal_records(logdir: Path) -> list[object]:
    records: list[object] = []
    for segment in sorted((logdir / "journal").glob("segment-*.jsonl")):
        records.extend(read_segment(segment).records)
    return records


# -- search ---------------------------------------------------------------------------------


def test_many_unknown_form_fields_are_named_briefly(client: TestClient[Litestar]) -> None:
    fields = {f"field-{i:04d}": "1" for i in range(300)}
    response = client.post("/search", data={"corpus_id": IDS[0], **fields})  # urlencoded
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "'field-0000'" in detail
    assert "and 295 more" in detail
    assert len(detail) < 300
    image = {"image": ("q.png", png_bytes(size=16), "image/png")}
    parts = client.post("/search", data=fields, files=image)  # multipart: parts are limited
    assert parts.status_code == 413, parts.text
    assert "at most 16 parts" in parts.json()["detail"]


def test_search_by_corpus_id_returns_a_blind_page(client: TestClient[Litestar]) -> None:
    response = client.post("/search", json={"corpus_id": IDS[0], "unit_id": "u-1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.cookies[UNIT_COOKIE] == "u-1"
    body = response.json()
    assert set(body) == {
        "impression_id",
        "query_id",
        "unit_id",
        "page",
        "page_size",
        "has_more",
        "results",
    }
    assert body["page_size"] == 5
    assert len(body["results"]) == 5
    for rank, result in enumerate(body["results"], start=1):
        assert set(result) == {"image_id", "thumbnail_url", "image_url", "rank", "position"}
        assert result["rank"] == rank
        assert result["image_id"] in IDS
        assert result["thumbnail_url"] == f"/images/{result['image_id']}?thumb=1"
    assert IDS[0] not in result_ids(body)  # a corpus query leaves itself out
    # Which ranker produced a result is never shown (nor the experiment).
    text = response.text
    assert '"a"' not in text
    assert '"b"' not in text
    assert "team" not in text
    assert "ab-interleaved" not in text


def test_page_two_continues_the_draft_without_repeats(client: TestClient[Litestar]) -> None:
    first = search(client, corpus_id=IDS[3], unit_id="u-2")
    second = search(client, corpus_id=IDS[3], unit_id="u-2", page=2)
    again = search(client, corpus_id=IDS[3], unit_id="u-2")
    assert result_ids(first) == result_ids(again)  # same unit, same query: same draft
    assert not set(result_ids(first)) & set(result_ids(second))
    assert [r["rank"] for r in second["results"]] == [6, 7, 8, 9, 10]  # type: ignore[index]
    # The two pages are one team draft at depth 10, sliced; page 1's lists (depth 5) are a
    # prefix of page 2's (depth 10), so both pages come from one draft.
    records = journal_records(Path(client.app.state.service.logdir))
    pages = [r for r in records if getattr(r, "query_id", None) == IDS[3]]
    assert [p.page_start for p in pages] == [0, 5, 0]  # type: ignore[attr-defined]
    shallow, deep = pages[0].lists, pages[1].lists  # type: ignore[attr-defined]
    assert [len(x) for x in shallow] == [5, 5]
    assert [len(x) for x in deep] == [10, 10]
    assert all(d[:5] == s for s, d in zip(shallow, deep, strict=True))
    method = interleave.get("team_draft")
    full = method.interleave(deep, k=10, rng=interleave.rng_from_seed(pages[1].seed))  # type: ignore[attr-defined]
    assert list(full.docs) == result_ids(first) + result_ids(second)


def test_pages_kept_for_a_popular_query_are_each_units_own(client: TestClient[Litestar]) -> None:
    # Many units, one query: pages come from the kept drafts once the coins repeat, and each
    # logged impression must still be the page its own seed and lists draft.
    for i in range(80):
        search(client, corpus_id=IDS[4], unit_id=f"crowd-{i}")
    records = journal_records(Path(client.app.state.service.logdir))
    shown = [r for r in records if getattr(r, "query_id", None) == IDS[4]]
    assert len(shown) == 80
    method = interleave.get("team_draft")
    for record in shown:
        rebuilt = method.interleave(
            record.lists,  # type: ignore[attr-defined]
            k=len(record.doc_ids),  # type: ignore[attr-defined]
            rng=interleave.rng_from_seed(record.seed),  # type: ignore[attr-defined]
        )
        assert (rebuilt.docs, rebuilt.teams) == (record.doc_ids, record.teams)  # type: ignore[attr-defined]
    (memo,) = client.app.state.service._memos.values()
    assert memo.hits > 0  # 80 units, at most 2**3 outcomes of a 5-result page's coins
    text = client.get("/metrics").text
    assert f"braid_kept_pages_hits_total {float(memo.hits)}" in text
    assert f"braid_kept_pages_misses_total {float(memo.misses)}" in text
    assert f"braid_kept_pages_entries {float(len(memo))}" in text


def test_a_stopped_experiments_kept_pages_go_and_their_counts_stay(
    client: TestClient[Litestar],
) -> None:
    def figures() -> tuple[float, float, float]:
        lines = dict(
            line.rsplit(" ", 1)
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("braid_kept_pages_")
        )
        return tuple(  # type: ignore[return-value]
            float(lines[f"braid_kept_pages_{name}"])
            for name in ("hits_total", "misses_total", "entries")
        )

    for i in range(30):
        search(client, corpus_id=IDS[5], unit_id=f"stop-{i}")
    hits, misses, entries = figures()
    assert hits + misses == 30
    assert entries == misses > 0
    assert client.post("/experiments/ab-interleaved/stop", headers=AUTH).status_code == 200
    assert not client.app.state.service._memos  # no page of a stopped experiment is kept
    assert figures() == (hits, misses, 0.0)  # the totals never go down
    assert client.post("/experiments/ab-interleaved/start", headers=AUTH).status_code == 200
    search(client, corpus_id=IDS[5], unit_id="stop-0")  # drafted afresh: a miss
    assert figures() == (hits, misses + 1, 1.0)


def test_kept_pages_answer_as_drafted_ones(
    client: TestClient[Litestar], make_client: ClientFactory, tmp_path: Path, corpus_dir: Path
) -> None:
    # With nothing kept (drafted_pages = 0) every page is drafted and encoded afresh: the
    # answers must be the same, but for the impression id.
    limits = {"ranker_timeout": 1.0, "drafted_pages": 0}
    plain = make_client(make_config(tmp_path / "plain", corpus_dir, limits=limits))

    def answers(over: TestClient[Litestar]) -> list[dict[str, Any]]:
        out = []
        for i in range(40):
            for page in (1, 2):
                body = search(over, corpus_id=IDS[i % 6], unit_id=f"same-{i % 13}", page=page)
                body.pop("impression_id")
                out.append(body)
        return out

    assert answers(client) == answers(plain)
    assert not plain.app.state.service._encoded
    (memo,) = plain.app.state.service._memos.values()
    assert len(memo) == memo.hits == 0


def test_upload_search_and_continuing_it_by_query_id(client: TestClient[Litestar]) -> None:
    data = png_bytes(size=32)
    response = client.post(
        "/search", files={"image": ("q.png", data, "image/png")}, data={"unit_id": "u-3"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query_id"].startswith("upload:")
    second = search(client, query_id=body["query_id"], unit_id="u-3", page=2)
    assert not set(result_ids(body)) & set(result_ids(second))
    # The same pixels in another format are the same query.
    jpeg_free = png_bytes(size=32, fmt="BMP")
    third = client.post("/search", files={"image": ("q.bmp", jpeg_free, "image/bmp")})
    assert third.json()["query_id"] == body["query_id"]
    # An upload's pages are never kept: an upload rarely repeats.
    service = client.app.state.service
    assert all(len(memo) == 0 for memo in service._memos.values())
    assert not service._encoded


def test_unit_id_from_header_cookie_or_new(client: TestClient[Litestar]) -> None:
    fresh = client.post("/search", json={"corpus_id": IDS[1]})
    unit = fresh.json()["unit_id"]
    assert fresh.cookies[UNIT_COOKIE] == unit
    again = client.post("/search", json={"corpus_id": IDS[1]})  # the cookie is sent back
    assert again.json()["unit_id"] == unit
    header = client.post("/search", json={"corpus_id": IDS[1]}, headers={UNIT_HEADER: "hdr-1"})
    assert header.json()["unit_id"] == "hdr-1"


def test_assignment_is_logged_once_per_unit_and_version(client: TestClient[Litestar]) -> None:
    for _ in range(3):
        search(client, corpus_id=IDS[2], unit_id="u-once")
    records = journal_records(Path(client.app.state.service.logdir))
    kinds = [type(r).__name__ for r in records if getattr(r, "unit_id", "") == "u-once"]
    assert kinds.count("Assignment") == 1
    assert kinds.count("Impression") == 3


def test_ab_experiment_serves_the_arms_ranker(make_client: ClientFactory) -> None:
    client = make_client(
        experiments=[
            {"id": "ab", "design": "ab", "rankers": ["a", "b"], "weights": [1, 1], "page_size": 4}
        ]
    )
    arms = {}
    for i in range(40):
        body = search(client, corpus_id=IDS[0], unit_id=f"ab-{i}")
        arms[tuple(result_ids(body))] = True
    assert len(arms) == 2  # two arms, two different lists
    figures = client.get("/experiments/ab").json()["figures"]
    assert sum(arm["units"] for arm in figures["arms"]) == 40
    assert figures["srm"]["counts"].keys() == {"a", "b"}


def test_a_failing_ranker_still_gives_a_page_and_marks_the_impression(
    make_client: ClientFactory,
) -> None:
    client = make_client(rankers={"b": FailingRanker("b")})
    body = search(client, corpus_id=IDS[4], unit_id="u-fail")
    expected = load_ranker(RankerConfig("a", kind="static", seed=1), make_corpus())
    assert result_ids(body) == list(expected.rank(Query(corpus_id=IDS[4]), 5).ids)
    records = journal_records(Path(client.app.state.service.logdir))
    impression = next(r for r in records if type(r).__name__ == "Impression")
    assert impression.excluded == "ranker_failed:b"  # type: ignore[attr-defined]
    metrics = client.get("/metrics").text
    assert 'braid_ranker_failures_total{ranker="b",reason="RuntimeError"} 1.0' in metrics


def test_a_slow_ranker_times_out(make_client: ClientFactory, corpus_dir: Path) -> None:
    slow = SlowRanker(StaticRanker(list(IDS), name="b"), seconds=0.6)
    client = make_client(rankers={"b": slow}, limits={"ranker_timeout": 0.1})
    body = search(client, corpus_id=IDS[5], unit_id="u-slow")
    assert len(result_ids(body)) == 5
    assert 'reason="timeout"' in client.get("/metrics").text


def test_every_ranker_failing_is_503(make_client: ClientFactory) -> None:
    client = make_client(rankers={"a": FailingRanker("a"), "b": FailingRanker("b")})
    response = client.post("/search", json={"corpus_id": IDS[0]})
    assert response.status_code == 503
    assert "every ranker failed" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"


def test_units_in_no_experiment_get_the_default_ranker(make_client: ClientFactory) -> None:
    client = make_client(experiments=[])
    body = search(client, corpus_id=IDS[0], unit_id="nobody")
    assert len(result_ids(body)) == 12
    records = journal_records(Path(client.app.state.service.logdir))
    assert [getattr(r, "excluded", None) for r in records] == ["no_experiment"]


# -- clicks ---------------------------------------------------------------------------------


def test_clicks_are_logged_once_and_refused_clearly(client: TestClient[Litestar]) -> None:
    body = search(client, corpus_id=IDS[6], unit_id="u-click")
    impression = body["impression_id"]
    click = {"impression_id": impression, "position": 2, "click_id": "k-1"}
    first = client.post("/clicks", json=click)
    assert first.status_code == 201
    assert first.json()["image_id"] == result_ids(body)[2]
    repeat = client.post("/clicks", json=click)
    assert repeat.status_code == 200
    assert repeat.json()["duplicate"] is True
    reused = client.post("/clicks", json={**click, "position": 3})
    assert reused.status_code == 409
    unknown = client.post("/clicks", json={**click, "impression_id": "nope", "click_id": "k-2"})
    assert unknown.status_code == 404
    assert "no impression" in unknown.json()["detail"]
    unshown = client.post("/clicks", json={**click, "position": 5, "click_id": "k-3"})
    assert unshown.status_code == 400
    assert "not shown" in unshown.json()["detail"]
    missing = client.post("/clicks", json={"impression_id": impression})
    assert missing.status_code == 400
    metrics = client.get("/metrics").text
    assert 'braid_refused_total{reason="unknown_impression"} 1.0' in metrics
    assert 'braid_refused_total{reason="position_not_shown"} 1.0' in metrics
    assert 'braid_refused_total{reason="click_id_reused"} 1.0' in metrics
    # Each refusal counted once, by its reason, not a second time by its class.
    assert "UnknownImpressionError" not in metrics
    assert "ConflictError" not in metrics
    records = journal_records(Path(client.app.state.service.logdir))
    assert sum(type(r).__name__ == "Click" for r in records) == 1


def test_figures_follow_the_clicks(client: TestClient[Litestar]) -> None:
    for i in range(8):
        body = search(client, corpus_id=IDS[i], unit_id=f"fig-{i}")
        client.post(
            "/clicks",
            json={"impression_id": body["impression_id"], "position": 0, "click_id": f"f-{i}"},
        )
    figures = client.get("/experiments/ab-interleaved").json()["figures"]
    assert figures["impressions"] == 8
    assert figures["clicks"] == 8
    assert figures["units"] == 8
    (pref,) = figures["preferences"]
    assert (pref["a"], pref["b"]) == ("a", "b")
    assert pref["wins"] + pref["losses"] + pref["ties"] == 8
    assert pref["wins"] + pref["losses"] == 8  # one click on a team position decides
    assert pref["ci_low"] <= pref["delta"] <= pref["ci_high"]
    assert 0 <= pref["p_sequential"] <= 1
    wins = {w["ranker"]: w["wins"] for w in figures["rankers"]}
    assert wins == {"a": pref["wins"], "b": pref["losses"]}


# -- experiments ----------------------------------------------------------------------------


def test_experiment_admin_needs_the_token(client: TestClient[Litestar]) -> None:
    new = {"id": "x2", "rankers": ["a", "c"], "layer": "other"}
    assert client.post("/experiments", json=new).status_code == 401
    wrong = client.post("/experiments", json=new, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    created = client.post("/experiments", json=new, headers=AUTH)
    assert created.status_code == 201
    assert created.json()["running"] is True
    listed = client.get("/experiments").json()
    assert [e["id"] for e in listed] == ["ab-interleaved", "x2"]
    assert client.post("/experiments", json=new, headers=AUTH).status_code == 409
    full = client.post("/experiments", json={**new, "id": "x3"}, headers=AUTH)
    assert full.status_code == 409
    assert "traffic free" in full.json()["detail"]
    stopped = client.post("/experiments/x2/stop", headers=AUTH)
    assert stopped.status_code == 200
    assert stopped.json()["running"] is False
    assert client.post("/experiments/x3/start", headers=AUTH).status_code == 404
    started = client.post("/experiments/x2/start", headers=AUTH)
    assert started.json()["running"] is True


def test_bodies_are_read_strictly_and_deep_nesting_is_400(client: TestClient[Litestar]) -> None:
    impression = search(client, corpus_id=IDS[0], unit_id="u-strict")["impression_id"]
    click = {"impression_id": impression, "position": "1", "click_id": "k-strict"}
    lenient = client.post("/clicks", json=click)
    assert lenient.status_code == 400, lenient.text  # "1" is no position, as in /search
    assert "Expected `int`, got `str`" in lenient.json()["detail"]
    new = {"id": "x9", "rankers": ["a", "c"], "layer": "l9", "traffic": "0.5"}
    assert client.post("/experiments", json=new, headers=AUTH).status_code == 400
    patched = client.patch("/experiments/ab-interleaved", json={"page_size": "7"}, headers=AUTH)
    assert patched.status_code == 400
    deep = b'{"impression_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for path, headers in (("/clicks", {}), ("/experiments", AUTH)):
        response = client.post(
            path, content=deep, headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text)
        assert "nests too deeply" in response.json()["detail"]
    records = journal_records(Path(client.app.state.service.logdir))
    assert sum(type(r).__name__ == "Click" for r in records) == 0


def test_an_unexpected_error_is_a_logged_500(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(client.app.state.service, "click", broken)
    with caplog.at_level("ERROR", logger="serving.app"):
        response = client.post(
            "/clicks", json={"impression_id": "i", "position": 0, "click_id": "k"}
        )
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "internal server error"}
    assert "unexpected error on POST /clicks" in caplog.text
    assert "RuntimeError: a bug" in caplog.text  # with its traceback

    async def gone(**_: object) -> None:
        raise InternalServerException("client disconnected prematurely")  # as Litestar does

    caplog.clear()
    monkeypatch.setattr(client.app.state.service, "click", gone)
    with caplog.at_level("ERROR", logger="serving.app"):
        response = client.post(
            "/clicks", json={"impression_id": "i", "position": 0, "click_id": "k"}
        )
    assert response.status_code == 500
    assert response.json()["detail"] == "Internal Server Error"  # as Litestar answers it
    assert "unexpected error" not in caplog.text  # Litestar's own: no traceback


def test_a_bearer_token_beyond_ascii_is_401(client: TestClient[Litestar]) -> None:
    headers = {"Authorization": "Bearer \u00e9\u00e9".encode()}  # raw bytes on the wire
    response = client.post("/experiments/ab-interleaved/stop", headers=headers)
    assert response.status_code == 401


def test_a_token_beyond_ascii_is_compared_as_its_utf8_bytes(make_client: ClientFactory) -> None:
    client = make_client(token="cl\u00e9-secr\u00e8te")
    right = {"Authorization": "Bearer cl\u00e9-secr\u00e8te".encode()}
    assert client.post("/experiments/ab-interleaved/stop", headers=right).status_code == 200
    wrong = {"Authorization": "Bearer cl\u00e9-secr\u00e8tf".encode()}
    assert client.post("/experiments/ab-interleaved/start", headers=wrong).status_code == 401


def test_text_answers_carry_one_charset(client: TestClient[Litestar]) -> None:
    for path in ("/metrics", "/static/app.js", "/static/style.css"):
        media = client.get(path).headers["content-type"]
        assert media.count("charset=") == 1, (path, media)
    assert client.get("/metrics").headers["content-type"] == (
        "text/plain; version=1.0.0; charset=utf-8"
    )


def test_admin_is_disabled_without_a_token(make_client: ClientFactory) -> None:
    client = make_client(token=None)
    response = client.post("/experiments/ab-interleaved/stop", headers=AUTH)
    assert response.status_code == 403
    assert "BRAID_ADMIN_TOKEN" in response.json()["detail"]


def test_new_weights_make_a_new_version_with_a_new_salt(make_client: ClientFactory) -> None:
    client = make_client(
        experiments=[{"id": "w", "design": "ab", "rankers": ["a", "b"], "weights": [1, 1]}]
    )
    search(client, corpus_id=IDS[0], unit_id="w-1")
    patched = client.patch("/experiments/w", json={"weights": [3, 1]}, headers=AUTH)
    assert patched.status_code == 200
    body = patched.json()
    assert body["version"] == 2
    salts = [v["salt"] for v in body["versions"]]
    assert len(set(salts)) == 2
    same = client.patch("/experiments/w", json={"page_size": 7}, headers=AUTH).json()
    assert same["version"] == 2
    assert same["page_size"] == 7
    search(client, corpus_id=IDS[0], unit_id="w-1")
    logdir = Path(client.app.state.service.logdir)
    assert [(s.version, s.weights) for s in read_experiments(logdir)] == [
        (1, (1.0, 1.0)),
        (2, (3.0, 1.0)),
    ]
    records = journal_records(logdir)
    assigned = [r.experiment_version for r in records if type(r).__name__ == "Assignment"]  # type: ignore[attr-defined]
    assert assigned == [1, 2]
    old = client.get("/experiments/w", params={"version": 1}).json()["figures"]
    assert old["version"] == 1
    assert old["units"] == 1
    assert client.get("/experiments/w", params={"version": 9}).status_code == 404


def test_unknown_experiment_is_404(client: TestClient[Litestar]) -> None:
    response = client.get("/experiments/nope")
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "no experiment 'nope'"}


def test_bad_experiment_definitions_are_400(client: TestClient[Litestar]) -> None:
    bad = [
        {"id": "z", "rankers": ["a", "zzz"], "layer": "l2"},
        {"id": "z", "rankers": ["a", "b"], "method": "no-such-method", "layer": "l2"},
        {"id": "z", "rankers": ["a", "b"], "design": "ab", "weights": [1], "layer": "l2"},
        {"id": "z", "rankers": ["a", "b"], "design": "sideways", "layer": "l2"},
        {"id": "bad id", "rankers": ["a", "b"], "layer": "l2"},
        {"id": "z", "rankers": ["a"], "layer": "l2"},
        {"id": "z\n", "rankers": ["a", "b"], "layer": "l2"},
        {"id": "z", "rankers": ["a", "b"], "layer": "l2\n"},
        # Options a method accepted once, then failed on every search with a 500.
        {
            "id": "z",
            "rankers": ["a", "b"],
            "method": "probabilistic",
            "options": {"tau": 1e308},
            "layer": "l2",
        },
        {
            "id": "z",
            "rankers": ["a", "b"],
            "method": "optimized",
            "options": {"max_pages": 1.5},
            "layer": "l2",
        },
    ]
    for data in bad:
        response = client.post("/experiments", json=data, headers=AUTH)
        assert response.status_code == 400, (data, response.text)
        assert response.json()["detail"]


# -- images, page, health, metrics, schema --------------------------------------------------


def test_images_and_thumbnails(client: TestClient[Litestar]) -> None:
    full = client.get(f"/images/{IDS[0]}")
    assert full.status_code == 200
    assert full.headers["content-type"] == "image/png"
    assert full.content.startswith(b"\x89PNG")
    thumb = client.get(f"/images/{IDS[0]}", params={"thumb": 1})
    assert thumb.status_code == 200
    assert thumb.content.startswith(b"\x89PNG")
    missing = client.get("/images/nope/x")
    assert missing.status_code == 404
    assert "nope/x" in missing.json()["detail"]


def test_page_samples_health_metrics_and_schema(client: TestClient[Litestar]) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert '<input type="file"' in page.text
    assert "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/nope.js").status_code == 404
    samples = client.get("/samples", params={"count": 4, "seed": 1}).json()
    assert len(samples) == 4
    assert all(s["image_id"] in IDS for s in samples)
    assert client.get("/samples", params={"count": 0}).status_code == 400
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["experiments_running"] == 1
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "braid_requests_total" in metrics.text
    schema = client.get("/schema/openapi.json").json()
    assert {"/search", "/clicks", "/experiments/{experiment_id}"} <= set(schema["paths"])
    body = schema["paths"]["/search"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    answer = schema["paths"]["/search"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/SearchOut"}


# -- bad input: every class is a clear JSON 4xx, never a 500 --------------------------------


@pytest.mark.parametrize(
    ("files", "status", "words"),
    [
        ({"image": ("x.png", b"definitely not an image", "image/png")}, 415, "not an image"),
        ({"image": ("x.png", png_bytes(size=64)[:80], "image/png")}, 422, "truncated"),
        ({"image": ("x.png", bomb_png(), "image/png")}, 422, "decompression bomb"),
        (
            {"image": ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")},
            415,
            "not an image",
        ),
        ({"image": ("x.ico", png_bytes(size=16, fmt="ICO"), "image/x-icon")}, 415, "not an image"),
        ({"image": ("x.png", b"", "image/png")}, 422, "empty"),
    ],
)
def test_bad_uploads(
    client: TestClient[Litestar], files: dict[str, tuple[str, bytes, str]], status: int, words: str
) -> None:
    response = client.post("/search", files=files)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    assert words in body["detail"]


def test_oversized_uploads_are_413(make_client: ClientFactory) -> None:
    client = make_client(limits={"max_upload_bytes": 4096})
    big = png_bytes(size=80)  # about 19 kB of noise
    assert len(big) > 4096
    response = client.post("/search", files={"image": ("x.png", big, "image/png")})
    assert response.status_code == 413
    huge = b"\0" * 200_000  # over the whole-body limit: refused while it streams in
    response = client.post("/search", files={"image": ("x.png", huge, "image/png")})
    assert response.status_code == 413
    assert response.json()["detail"] == "Request Entity Too Large"  # not about a form's parts


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {}}, 400, "exactly one query"),
        ({"json": {"corpus_id": IDS[0], "query_id": "x"}}, 400, "exactly one query"),
        ({"json": {"corpus_id": "nope/none"}}, 404, "no image"),
        ({"json": {"query_id": "upload:feed"}}, 404, "search with the image again"),
        ({"json": {"corpus_id": IDS[0], "page": 99}}, 400, "page must lie in"),
        ({"json": {"corpus_id": IDS[0], "page": 0}}, 400, ">= 1 - at `$.page`"),
        ({"json": {"corpus_id": IDS[0], "colour": "red"}}, 400, "colour"),
        ({"json": {"corpus_id": IDS[0], "unit_id": "has space"}}, 400, "unit id"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "content type"),
        ({"json": {"corpus_id": IDS[0], "pad": "x" * 70_000}}, 413, "JSON search is over"),
        ({"data": {"corpus_id": IDS[0], "page": "two"}}, 400, "integer"),
        ({"data": {"image": "not a file"}}, 400, "file upload"),
        ({"data": {"corpus_id": IDS[0], "extra": "1"}}, 400, "unknown fields"),
        ({"data": {"corpus_id": "x" * 129}}, 400, "over 128 characters"),
        # "$" matches before a final newline: the id would reach the Set-Cookie header.
        ({"json": {"corpus_id": IDS[0], "unit_id": "u-1\n"}}, 400, "unit id"),
        ({"data": {"corpus_id": IDS[0], "unit_id": "u-1\n"}}, 400, "unit id"),
        ({"headers": {UNIT_HEADER: "u-1\n"}, "json": {"corpus_id": IDS[0]}}, 400, "unit id"),
        (
            {
                "content": b'--b\r\nContent-Disposition: form-data; name="corpus_id"\r\n\r\n'
                b"\xff\xfe\r\n--b--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=b"},
            },
            400,
            "cannot be decoded",
        ),
        (
            {
                "content": b'--b\r\nContent-Disposition: form-data; name="corpus_id"\r\n'
                b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nx\r\n--b--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=b"},
            },
            400,
            "cannot be decoded",
        ),
        (
            {
                "files": [
                    ("image", ("a.png", png_bytes(size=16), "image/png")),
                    ("image", ("b.png", png_bytes(size=16), "image/png")),
                ]
            },
            400,
            "more than once",
        ),
    ],
)
def test_bad_searches(
    client: TestClient[Litestar], kwargs: dict[str, object], status: int, words: str
) -> None:
    response = client.post("/search", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert words.lower() in json.dumps(response.json()).lower()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_search_takes_only_post(client: TestClient[Litestar], method: str) -> None:
    response = client.request(method, "/search")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.json()["status_code"] == 405


def test_search_answers_options(client: TestClient[Litestar]) -> None:
    response = client.options("/search")
    assert response.status_code == 204
    assert response.headers["allow"] == "POST, OPTIONS"


def test_page_past_the_last_result(make_client: ClientFactory) -> None:
    client = make_client(
        experiments=[{"id": "deep", "rankers": ["a", "b"], "page_size": 40}],
        limits={"max_page": 3},
    )
    assert client.post("/search", json={"corpus_id": IDS[0], "page": 2}).status_code == 200
    response = client.post("/search", json={"corpus_id": IDS[0], "page": 3})
    assert response.status_code == 400
    assert "past the last result" in response.json()["detail"]
    assert CORPUS_SIZE - 1 < 3 * 40


# -- concurrency: micro-batching of uploads --------------------------------------------------


def test_concurrent_uploads_are_micro_batched(tmp_path: Path, corpus_dir: Path) -> None:
    from rankers.embedder import PixelEmbedder
    from rankers.embedding_ranker import EmbeddingRanker
    from rankers.index import VectorIndex
    from rankers.indexing import build

    corpus = make_corpus()
    embedder = PixelEmbedder(8)
    build(embedder, corpus, tmp_path / "index")
    ranker = EmbeddingRanker(embedder, VectorIndex.open(tmp_path / "index"), corpus, name="a")
    config = make_config(tmp_path, corpus_dir, limits={"batch_wait_ms": 50.0, "batch_size": 8})
    app = create_app(config, rankers={"a": ranker})
    uploads = [png_bytes(size=12 + i) for i in range(16)]

    service = app.state.service

    async def run() -> list[int]:
        # Concurrent searches on one event loop, as uvicorn runs them (the test client
        # would serialise requests).
        await service.open()
        try:
            pages = await asyncio.gather(
                *(
                    service.search(unit_id=f"m-{i}", upload=UploadedImage(data))
                    for i, data in enumerate(uploads)
                )
            )
        finally:
            await service.close()
        return [len(page.out().results) for page in pages]

    assert asyncio.run(run()) == [5] * 16
    batcher = service._batchers[("a", True)]
    assert batcher.items == 16
    assert batcher.batches <= 4  # 16 uploads in batches of up to 8, not 16 calls


def test_uploads_past_the_wait_limit_are_refused_before_any_work(
    tmp_path: Path, corpus_dir: Path
) -> None:
    """With both models at 0.1 s an image, a burst of 12 uploads would keep the last waiting
    1.1 s, past the 1 s ranker timeout: one model's list only. The service admits the uploads
    whose expected wait (those in flight times the recent seconds per image) is within
    `max_upload_wait` and refuses the rest at once; every admitted page has both lists."""
    from rankers.errors import ImageError
    from serving.errors import OverloadedError

    rankers = {
        name: SlowRanker(StaticRanker(list(IDS), name=name), seconds=0.1) for name in ("a", "b")
    }
    limits = {"ranker_timeout": 1.0, "max_upload_wait": 0.45, "batch_size": 1, "batch_wait_ms": 0}
    config = make_config(tmp_path, corpus_dir, limits=limits)
    service = create_app(config, rankers=rankers).state.service

    async def run() -> tuple[float, list[object]]:
        await service.open()
        try:
            await service.search(unit_id="warm", upload=UploadedImage(png_bytes(size=9)))
            per_image = max(b.item_seconds for (_, up), b in service._batchers.items() if up)
            burst = await asyncio.gather(
                *(
                    service.search(unit_id=f"o-{i}", upload=UploadedImage(png_bytes(size=10 + i)))
                    for i in range(12)
                ),
                return_exceptions=True,
            )
            assert service.upload_wait() == 0.0  # none in flight once answered
            with pytest.raises(ImageError):
                await service.search(unit_id="bad", upload=UploadedImage(b"not an image"))
            assert service.upload_wait() == 0.0  # a failed upload is no longer counted
            burst.append(
                await service.search(unit_id="after", upload=UploadedImage(png_bytes(size=30)))
            )
        finally:
            await service.close()
        return per_image, burst

    per_image, burst = asyncio.run(run())
    assert 0.09 <= per_image <= 0.3
    refused = [r for r in burst if isinstance(r, OverloadedError)]
    served = [r for r in burst if not isinstance(r, BaseException)]
    assert len(served) + len(refused) == len(burst)
    # The k-th of the burst (from 0) expects k x per_image: admitted while within 0.45 s.
    admitted = sum(k * per_image <= 0.45 for k in range(12))
    assert len(served) == admitted + 1  # and the upload after the burst
    assert 2 <= admitted < 12
    assert all("too busy" in str(error) and error.retry_after == 1 for error in refused)
    impressions = scan(Path(service.logdir), Kind.IMPRESSIONS).collect()  # compacted on close
    assert impressions.height == 1 + len(served)  # nothing logged for a refused upload
    assert impressions["excluded"].null_count() == impressions.height  # no ranker timed out


def test_an_overloaded_upload_is_503_with_retry_after(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(limits={"ranker_timeout": 5.0})
    service = client.app.state.service
    monkeypatch.setattr(service, "upload_wait", lambda: 3.2)
    response = client.post("/search", files={"image": ("x.png", png_bytes(), "image/png")})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "4"
    assert "would wait about 3.2 s" in response.json()["detail"]
    # Retry-After is at most the ranker timeout: by then every upload in flight is done.
    monkeypatch.setattr(service, "upload_wait", lambda: 30.0)
    response = client.post("/search", files={"image": ("x.png", png_bytes(), "image/png")})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert 'braid_refused_total{reason="OverloadedError"} 2.0' in client.get("/metrics").text
    assert client.post("/search", json={"corpus_id": IDS[0]}).status_code == 200  # ids go on


def test_logs_compact_into_the_analysis_schema(client: TestClient[Litestar]) -> None:
    body = search(client, corpus_id=IDS[7], unit_id="u-compact")
    client.post(
        "/clicks", json={"impression_id": body["impression_id"], "position": 0, "click_id": "z"}
    )
    service = client.app.state.service
    client.blocking_portal.call(service.compact_now)
    logdir = Path(service.logdir)
    assert scan(logdir, Kind.IMPRESSIONS).collect().height == 1
    assert scan(logdir, Kind.CLICKS).collect()["click_id"].to_list() == ["z"]
    assert scan(logdir, Kind.ASSIGNMENTS).collect().height == 1


def test_a_cancelled_compaction_waits_for_its_process(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling `compact_now` (as shutting down does) returns only once the compactor it
    started has exited, so that no second compaction runs beside it."""
    import subprocess

    import serving.service as service_module

    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def spying(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real(*args, **kwargs)
        if "serving._compactor" in args[0]:
            started.append(child)
        return child

    monkeypatch.setattr(service_module.subprocess, "Popen", spying)
    service = create_app(make_config(tmp_path, corpus_dir)).state.service

    async def run() -> None:
        await service.open()
        try:
            await service.search(unit_id="u-cancel", corpus_id=IDS[3])
            compacting = asyncio.ensure_future(service.compact_now())
            while not started:
                await asyncio.sleep(0.001)
            compacting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await compacting
            assert started[0].returncode == 0  # waited for, and it finished its turn
        finally:
            await service.close()

    asyncio.run(run())
    assert scan(Path(service.logdir), Kind.IMPRESSIONS).collect().height == 1


def test_figures_of_one_user_have_no_interval_and_no_test(client: TestClient[Litestar]) -> None:
    """One user has no spread to measure: the interval and the t-test are null (and the
    schema says they may be), not an interval of width zero or a non-number."""
    for i in range(3):
        body = search(client, corpus_id=IDS[i], unit_id="only-one")
        click = {"impression_id": body["impression_id"], "position": 0, "click_id": f"o-{i}"}
        assert client.post("/clicks", json=click).status_code == 201
    (pref,) = client.get("/experiments/ab-interleaved").json()["figures"]["preferences"]
    assert pref["users"] == 1
    assert pref["wins"] + pref["losses"] == 3
    assert (pref["ci_low"], pref["ci_high"], pref["p_value"]) == (None, None, None)
    assert pref["winner"] is None
    body = search(client, corpus_id=IDS[3], unit_id="another-one")
    click = {"impression_id": body["impression_id"], "position": 1, "click_id": "o-3"}
    assert client.post("/clicks", json=click).status_code == 201
    (pref,) = client.get("/experiments/ab-interleaved").json()["figures"]["preferences"]
    assert pref["users"] == 2
    assert pref["ci_low"] <= pref["delta"] <= pref["ci_high"]
    assert 0 <= pref["p_value"] <= 1
    component = client.get("/schema/openapi.json").json()["components"]["schemas"]
    fields = component["PreferenceFigures"]["properties"]
    for name in ("ci_low", "ci_high", "p_value"):
        assert {"type": "null"} in fields[name]["oneOf"], fields[name]


def test_live_figures_match_the_analysis_of_the_served_log(client: TestClient[Litestar]) -> None:
    outcomes = pytest.importorskip("analysis.outcomes")
    from analysis.preference import preference

    for i in range(12):
        body = search(client, corpus_id=IDS[i], unit_id=f"cross-{i % 5}")
        for position in range(i % 3):
            client.post(
                "/clicks",
                json={
                    "impression_id": body["impression_id"],
                    "position": position * 2,
                    "click_id": f"x-{i}-{position}",
                },
            )
    live = client.get("/experiments/ab-interleaved").json()["figures"]["preferences"][0]
    service = client.app.state.service
    client.blocking_portal.call(service.compact_now)
    (spec,) = read_experiments(service.logdir)
    frame = outcomes.interleaving_outcomes(service.logdir, spec)
    offline = preference(frame, "a", "b", rng=np.random.default_rng(0))
    assert (live["impressions"], live["users"]) == (offline.impressions, offline.users)
    assert (live["wins"], live["losses"], live["ties"]) == (
        offline.wins,
        offline.losses,
        offline.ties,
    )
    assert live["delta"] == pytest.approx(offline.delta)
    assert live["p_value"] == pytest.approx(offline.p_t, nan_ok=True)


def test_a_restart_restores_experiments_figures_and_idempotency(
    tmp_path: Path, corpus_dir: Path
) -> None:
    config = make_config(
        tmp_path,
        corpus_dir,
        experiments=[
            {"id": "keep", "rankers": ["a", "b"], "page_size": 5, "layer": "l1"},
            {"id": "halt", "rankers": ["a", "c"], "page_size": 5, "layer": "l2"},
        ],
    )
    with TestClient(create_app(config)) as client:
        body = search(client, corpus_id=IDS[0], unit_id="r-1")
        click = {"impression_id": body["impression_id"], "position": 1, "click_id": "rk"}
        assert client.post("/clicks", json=click).status_code == 201
        assert client.post("/experiments/halt/stop", headers=AUTH).status_code == 200
        client.patch("/experiments/keep", json={"page_size": 4}, headers=AUTH)
        before = client.get("/experiments/keep").json()
    with TestClient(create_app(config)) as client:
        after = client.get("/experiments/keep").json()
        assert after == before  # same version, settings and live figures
        assert client.get("/experiments/halt").json()["running"] is False
        assert client.post("/clicks", json=click).json()["duplicate"] is True
        assert len(result_ids(search(client, corpus_id=IDS[0], unit_id="r-1"))) == 4
    logdir = tmp_path / "logs"
    assert scan(logdir, Kind.CLICKS).collect().height == 1
    assert scan(logdir, Kind.ASSIGNMENTS).collect().height == 1  # r-1 exposed once, in v1


def test_one_server_per_log_directory(tmp_path: Path, corpus_dir: Path) -> None:
    from serving.errors import ConflictError

    config = make_config(tmp_path, corpus_dir)
    first, second = create_app(config), create_app(config)

    async def run() -> None:
        await first.state.service.open()
        try:
            with pytest.raises(ConflictError, match="in use by another server"):
                await second.state.service.open()
        finally:
            await first.state.service.close()

    asyncio.run(run())


def test_ab_figures_count_clicks_per_arm(make_client: ClientFactory) -> None:
    client = make_client(
        experiments=[{"id": "ab", "design": "ab", "rankers": ["a", "b"], "weights": [1, 1]}]
    )
    for i in range(10):
        body = search(client, corpus_id=IDS[i], unit_id=f"arm-{i}")
        if i % 2:
            for position, click_id in ((0, f"p-{i}"), (1, f"q-{i}")):
                client.post(
                    "/clicks",
                    json={
                        "impression_id": body["impression_id"],
                        "position": position,
                        "click_id": click_id,
                    },
                )
    figures = client.get("/experiments/ab").json()["figures"]
    arms = {arm["arm"]: arm for arm in figures["arms"]}
    assert sum(a["impressions"] for a in arms.values()) == 10
    assert sum(a["clicks"] for a in arms.values()) == 10
    assert sum(a["clicked_impressions"] for a in arms.values()) == 5
    for arm in arms.values():
        if arm["impressions"]:
            assert arm["ctr"] == arm["clicked_impressions"] / arm["impressions"]
    assert figures["preferences"] == []
    assert figures["srm"]["p_value"] > 0


def test_a_lost_fsync_process_is_started_again_then_a_failed_log_refuses_searches(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    assert client.post("/search", json={"corpus_id": IDS[0]}).status_code == 200
    service = client.app.state.service
    for lost in range(1, 5):
        syncer = service.journal._syncer
        syncer.kill()  # the fsync process dies (the OOM killer, say)
        syncer.wait()
        answer = client.post("/search", json={"corpus_id": IDS[lost]})
        if lost < 4:  # started again: the search is logged and acknowledged
            assert answer.status_code == 200, answer.text
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            assert health.json()["fsync_restarts"] == lost
            assert f"braid_journal_fsync_restarts {float(lost)}" in client.get("/metrics").text
    # Lost a fourth time within a minute: the log is failed, and says so.
    assert answer.status_code == 503
    assert "fsync process is gone" in answer.json()["detail"]
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"].startswith("event log failed")
    assert client.post("/search", json={"corpus_id": IDS[5]}).status_code == 503
