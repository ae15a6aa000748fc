"""The embedded defaults, for real: the emoji corpus, effnet-lite0 and effnet-lite2 over their
usearch indexes, and the team-draft experiment between them."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient
from serving_support import png_bytes

from rankers import cache
from rankers.embedder import ReplicatedEmbedder
from serving.app import create_app
from serving.config import default_config


@pytest.mark.slow
def test_embedded_defaults_search_click_and_figures(tmp_path: Path) -> None:
    if not (cache.data_dir() / "emoji").is_dir():
        pytest.skip(f"no fetched emoji corpus under {cache.data_dir()}: run `make data` first")
    config = default_config().with_overrides(log_dir=tmp_path / "logs")
    app = create_app(config)
    corpus = app.state.service.corpus
    pools = set()
    for name in ("lite0", "lite2"):  # two threads each: two one-thread sessions
        embedder = app.state.service.rankers[name].embedder
        assert isinstance(embedder, ReplicatedEmbedder)
        assert embedder.replicas == 2
        pools.add(embedder.pool)
    (pool,) = pools  # one pool of two workers runs both models
    assert pool is not None
    assert pool.workers == 2
    query = "google/1f600"  # grinning face
    with TestClient(app) as client:
        by_id = client.post("/search", json={"corpus_id": query, "unit_id": "real-1"})
        assert by_id.status_code == 200, by_id.text
        ids = [r["image_id"] for r in by_id.json()["results"]]
        assert len(ids) == 12
        assert query not in ids
        # Real rankers find related faces: a random page of 12 would hold a related image
        # (same subcategory or concept) about 12 * share times; the page holds far more.
        share = sum(corpus.grade(query, doc) >= 1 for doc in corpus.ids) / len(corpus)
        assert 12 * share < 1
        assert sum(corpus.grade(query, doc) >= 1 for doc in ids) >= 3
        upload = client.post(
            "/search",
            files={"image": ("face.png", png_bytes(corpus.image(query)), "image/png")},
            data={"unit_id": "real-1"},
        )
        assert upload.status_code == 200, upload.text
        found = [r["image_id"] for r in upload.json()["results"]]
        assert query in found[:3]  # the very image, re-encoded, ranks at the top
        click = client.post(
            "/clicks",
            json={"impression_id": by_id.json()["impression_id"], "position": 0, "click_id": "r1"},
        )
        assert click.status_code == 201
        detail = client.get("/experiments/lite0-vs-lite2").json()
        assert detail["rankers"] == ["lite0", "lite2"]
        figures = detail["figures"]
        assert figures["impressions"] == 2
        assert figures["clicks"] == 1
        (pref,) = figures["preferences"]
        assert pref["wins"] + pref["losses"] == 1
        metrics = client.get("/metrics").text
        assert 'braid_ranker_batch_size_count{ranker="lite2"}' in metrics
        # The id's first search read both rankers' neighbour tables: no index search.
        assert 'braid_ranker_table_reads_total{ranker="lite0"} 1.0' in metrics
        assert not pool.closed
    assert pool.closed  # shut down with the app
