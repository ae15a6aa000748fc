"""A bounded schemathesis run against the OpenAPI schema of a real server: whatever a client
sends, the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from serving_support import config_data, free_port, server, toml_of  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    config = tmp / "serving.toml"
    config.write_text(toml_of(config_data(tmp, corpus_dir)))
    port = free_port()
    with server(config, port, tmp / "server.log"):
        yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/schema/openapi.json")


def test_no_input_makes_a_server_error(api_schema: Any) -> None:
    # Each operation gets its own bounded hypothesis run (schemathesis's pytest plugin
    # predates pytest 9, so the operations are driven here).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(
                checks=[not_a_server_error],
                headers={"Authorization": "Bearer secret-token"},
                timeout=10,
            )
            statuses.append(response.status_code)

        run()
    assert len(statuses) >= 100  # the run really sent requests
    assert any(400 <= s < 500 for s in statuses)
    assert any(s < 300 for s in statuses)
