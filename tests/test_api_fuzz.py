"""Property-based run over the OpenAPI document: no generated input may cause a 5xx,
and every response must match the documented schema, status codes and content types."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from api.app import create_app
from config.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.support import catalogs
from tests.support.live_server import serve

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_api(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # PostgreSQL is the stricter backend (types, NUL bytes, integer ranges), so fuzz against it.
    database_url = asyncio.run(catalogs.create_database(postgres_url))
    state: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(
            state_dir=state,
            database_url=database_url,
            bootstrap_admin_key=ADMIN_KEY,
            temporal_address="127.0.0.1:1",
        )
    )
    with serve(app) as url:
        yield url


def test_no_input_causes_a_server_error(live_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result}"
        operation = result.ok()
        if operation.path == "/readyz":
            continue  # 503 by design here: this server has no Temporal (see test_health.py)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=live_api, headers=HEADERS, checks=CHECKS)

        try:
            exercise()
        except Exception as failure:  # collect all operations' failures, then report them together
            failures[operation.label] = str(failure)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
