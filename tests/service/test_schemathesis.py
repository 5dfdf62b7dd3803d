"""Property-based API testing: schemathesis sends what the OpenAPI schema allows (and what it does
not) to every operation of a real server, as the administrator; nothing may answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from service_helpers import LiveServer, live_server, make_config, sim_pipeline, static_app

SCHEMA = schemathesis.openapi.from_dict(static_app().openapi())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = make_config(tmp_path_factory.mktemp("schemathesis"), jwt_secret=None)
    with live_server(config, ingest=True, pipeline=sim_pipeline(rate=5)) as running:
        yield running


@SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_operation_answers_with_a_server_error(case: Any, server: LiveServer) -> None:
    case.call_and_validate(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        checks=[not_a_server_error],
        timeout=30,
    )
