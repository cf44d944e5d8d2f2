"""Shared fixtures: catalogs on SQLite and PostgreSQL, the API app and authenticated clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.app import create_app
from catalog import database
from config.settings import Settings
from tests.support import catalogs
from tests.support.postgres import postgres_server

# Session fixtures for real containers (Podman) live in a plugin module of their own.
pytest_plugins = ["tests.support.fixtures_podman", "tests.support.fixtures_temporal"]

ADMIN_KEY = "wapi_test-admin-key-0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        catalogs.create_template(url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test that uses the catalog runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    url = await catalogs.create_database(server)
    yield url
    await catalogs.drop_database(server, url)


@pytest.fixture
async def catalog_engine(catalog_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated catalog, for tests below the API."""
    engine = database.create_engine(catalog_url)
    await database.migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def settings(catalog_url: str, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        database_url=catalog_url,
        bootstrap_admin_key=ADMIN_KEY,
    )


@pytest.fixture
async def unreachable_temporal() -> Client:
    """For API tests that need no workflow: readiness reports Temporal as unreachable."""
    return await Client.connect("127.0.0.1:1", lazy=True, data_converter=pydantic_data_converter)


@pytest.fixture
async def app(settings: Settings, unreachable_temporal: Client) -> AsyncIterator[FastAPI]:
    app = create_app(settings, temporal_client=unreachable_temporal)
    async with app.router.lifespan_context(app):
        yield app


class _GatewayRouting(httpx.AsyncBaseTransport):
    """Invoke paths to the gateway (a real socket), everything else to the app in process."""

    def __init__(self, app: FastAPI, gateway: str) -> None:
        self.app = httpx.ASGITransport(app=app)
        self.gateway = httpx.AsyncHTTPTransport()
        self.gateway_url = httpx.URL(gateway)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith("/api/v2/endpoints/"):
            return await self.app.handle_async_request(request)
        request.url = request.url.copy_with(
            scheme=self.gateway_url.scheme, host=self.gateway_url.host, port=self.gateway_url.port
        )
        request.headers["Host"] = request.url.netloc.decode()
        return await self.gateway.handle_async_request(request)

    async def aclose(self) -> None:
        await self.gateway.aclose()
        await self.app.aclose()


def client_for(app: FastAPI, key: str | None, *, gateway: str | None = None) -> httpx.AsyncClient:
    """The API in process; with `gateway`, invoke calls go to that gateway's URL."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport: httpx.AsyncBaseTransport = (
        _GatewayRouting(app, gateway) if gateway else httpx.ASGITransport(app=app)
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the admin key."""
    async with client_for(app, ADMIN_KEY) as client:
        yield client
