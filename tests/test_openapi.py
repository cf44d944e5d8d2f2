"""The OpenAPI document is part of the product: complete, and pinned by a snapshot.

After an intended API change: `WAPI_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_openapi.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    spec: dict[str, Any] = create_app().openapi()
    return spec


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]


def test_snapshot(document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if os.environ.get("WAPI_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.read_text() == text, "the API changed; review it and update the snapshot"


def test_every_operation_is_described(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        assert op.get("summary"), f"{method} {path} has no summary"
        assert op.get("description"), f"{method} {path} has no description (docstring)"
        assert op.get("tags"), f"{method} {path} has no tag"


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for method, path, op in operations(document):
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        ref = content["schema"].get("$ref") or next(
            (s["$ref"] for s in content["schema"].get("anyOf", []) if "$ref" in s), None
        )
        schema = schemas[ref.split("/")[-1]] if ref else {}
        has_example = "examples" in content or any(
            "examples" in field for field in schema.get("properties", {}).values()
        )
        assert has_example, f"{method} {path} has no request example"


def test_management_routes_declare_bearer_auth_and_errors(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        if not path.startswith("/api/v2/"):
            continue
        assert op.get("security") == [{"ApiKey": []}], f"{method} {path} does not declare auth"
        for status in ("401", "403", "422"):
            assert status in op["responses"], f"{method} {path} does not document {status}"
