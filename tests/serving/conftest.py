"""Fixtures for the serving tests: a tiny corpus on disk and a configured app under TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from serving_support import ClientFactory, make_config, write_corpus

from serving.app import create_app
from serving.config import ADMIN_TOKEN_ENV, Config


@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin token comes from the configs the tests write, never from the environment."""
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus, written once."""
    return write_corpus(tmp_path_factory.mktemp("corpus") / "serving-tiny")


@pytest.fixture
def config(tmp_path: Path, corpus_dir: Path) -> Config:
    """Static rankers a, b, c and one team-draft experiment between a and b."""
    return make_config(tmp_path, corpus_dir)


@pytest.fixture
def make_client(tmp_path: Path, corpus_dir: Path) -> Iterator[ClientFactory]:
    """Build clients over custom configs and injected rankers; closes them at the end."""
    opened: list[TestClient[Litestar]] = []

    def build(
        config: Config | None = None, *, rankers: dict[str, Any] | None = None, **kwargs: Any
    ) -> TestClient[Litestar]:
        chosen = config or make_config(tmp_path, corpus_dir, **kwargs)
        client = TestClient(create_app(chosen, rankers=rankers))
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient[Litestar]:
    """A started app over the default test config."""
    return make_client()
