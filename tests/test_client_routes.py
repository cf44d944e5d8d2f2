"""The typed client covers the API: every route of the app's OpenAPI document has a client
method, with the document's query parameters, headers, body model and answer model.

The route list comes from the app itself at test time, so a route added to the server fails
here until the client declares it (one stub in `client/`).
"""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from api.app import create_app
from client import AsyncClient, Client
from client.client import resources
from client.operations import Resource, _Declared
from client.raw_routes import INVOKE_METHODS, InvokeRoute


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    spec: dict[str, Any] = create_app().openapi()
    return spec


Declaration = tuple[type[Resource[Any]], str, _Declared]


@pytest.fixture(scope="module")
def declared() -> dict[tuple[str, str], list[Declaration]]:
    """Client methods by the route they call (logs has two: a snapshot and a stream)."""
    with Client("http://127.0.0.1:9") as client:
        found: dict[tuple[str, str], list[Declaration]] = {}
        for resource in resources(client).values():
            for name, route in resource.declared().items():
                for method in route.methods:
                    key = (method, route.full_path(resource))
                    found.setdefault(key, []).append((resource, name, route))
        return found


def api_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def test_every_route_of_the_api_has_a_client_method(
    document: dict[str, Any], declared: dict[tuple[str, str], Any]
) -> None:
    missing = sorted(api_routes(document) - set(declared))
    assert missing == [], f"routes without a client method (declare them in client/): {missing}"


def test_the_client_calls_only_routes_the_api_has(
    document: dict[str, Any], declared: dict[tuple[str, str], Any]
) -> None:
    assert sorted(set(declared) - api_routes(document)) == []


def test_both_clients_expose_the_same_routes() -> None:
    with Client("http://127.0.0.1:9") as blocking:
        sync = {name: cls.routes() for name, cls in resources(blocking).items()}
    asynchronous = AsyncClient("http://127.0.0.1:9")
    assert {name: cls.routes() for name, cls in resources(asynchronous).items()} == sync


def test_the_invoke_routes_take_every_method(document: dict[str, Any]) -> None:
    invoke_paths = {p for p in document["paths"] if p.startswith("/api/v2/endpoints/")}
    for path in invoke_paths:
        assert {m.upper() for m in document["paths"][path]} == set(INVOKE_METHODS)


def _schema_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref") or next(
        (s["$ref"] for s in schema.get("anyOf", []) if "$ref" in s), None
    )
    if ref is None and "items" in schema:
        inner = _schema_name(schema["items"])
        return f"list[{inner}]" if inner else None
    return ref.rsplit("/", 1)[-1] if ref else None


def _type_name(annotation: Any) -> str:
    """`Page[WorkloadPublic]` -> `Page_WorkloadPublic_`, as FastAPI names the schema."""
    args = get_args(annotation)
    origin = getattr(annotation, "__pydantic_generic_metadata__", {}).get("origin")
    if origin is not None:
        inner = annotation.__pydantic_generic_metadata__["args"]
        return f"{origin.__name__}_{'_'.join(a.__name__ for a in inner)}_"
    if args and getattr(annotation, "__origin__", None) is list:
        return f"list[{_type_name(args[0])}]"
    return str(getattr(annotation, "__name__", annotation))


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]


def test_parameters_match_the_document(
    document: dict[str, Any], declared: dict[tuple[str, str], list[Declaration]]
) -> None:
    for method, path, op in operations(document):
        params = op.get("parameters", [])
        documented = {p["name"] for p in params if p["in"] == "query"}
        headers = {p["name"].lower() for p in params if p["in"] == "header"}
        sent: set[str] = set()
        for resource, name, route in declared[(method, path)]:
            if isinstance(route, InvokeRoute):
                sent = documented
                continue
            query, header_names = route.parameter_names(resource)
            assert set(query) <= documented, (
                f"{name}() sends undocumented {set(query) - documented}"
            )
            assert {h.lower() for h in header_names} == headers, (method, path)
            sent |= set(query)
        assert sent == documented, f"{method} {path}: no client method sends {documented - sent}"
        placeholders = re.findall(r"\{(\w+)\}", path)
        assert placeholders == [p["name"] for p in params if p["in"] == "path"], (method, path)


def test_body_and_answer_models_match_the_document(
    document: dict[str, Any], declared: dict[tuple[str, str], list[Declaration]]
) -> None:
    for method, path, op in operations(document):
        request = op.get("requestBody", {}).get("content", {}).get("application/json")
        answer: dict[str, Any] = next(
            (r for code, r in op["responses"].items() if code.startswith("2")), {}
        )
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        for _, name, route in declared[(method, path)]:
            if isinstance(route, InvokeRoute) or route.returns is str:
                continue
            assert route.sends_body == (request is not None), f"{name}(): body or not"
            if "body" in route.signature.parameters:
                hint = route.stub.__annotations__["body"]
                assert _schema_name(request["schema"]) in hint, (method, path, hint)
            expected = _schema_name(schema) if schema else None
            if expected not in (None, "Health"):  # Health: the app's own, answered as a dict
                assert _type_name(route.returns) == expected, (method, path, route.returns)
