"""`Client` (blocking) and `AsyncClient`: one attribute per resource of the API.

with Client("http://127.0.0.1:8080", api_key) as wapi:
    workload = wapi.workloads.create({"name": "hello", "artifactId": artifact.id})
    wapi.workloads.wait_until(workload.id, "running")
    for event in wapi.workloads.events.all(workload.id): ...
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from client.admin import ApiKeys, Audit, Bundles, Secrets, Service
from client.contexts import Connection, api_root, resolve
from client.lifecycle import AsyncDeployments, AsyncWorkloads, SyncDeployments, SyncWorkloads
from client.operations import Async, Resource, Sync
from client.registry import Artifacts, Collections
from client.transport import AsyncTransport, RetryPolicy, SyncTransport

USER_AGENT = "wapi-client/0.1"


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def resources(client: Client | AsyncClient) -> dict[str, type[Resource[Any]]]:
    """The resource attributes of a client and their classes (the route coverage test reads it)."""
    return {name: type(v) for name, v in vars(client).items() if isinstance(v, Resource)}


class Client:
    """A blocking client. `transport` is for tests (an `httpx.MockTransport`, say)."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        gateway_url: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=api_root(api_url),
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        api = SyncTransport(self._http, retry)
        gateway = api
        if gateway_url:
            self._gateway_http: httpx.Client | None = httpx.Client(
                base_url=api_root(gateway_url), headers=_headers(api_key), timeout=timeout
            )
            gateway = SyncTransport(self._gateway_http, retry)
        else:
            self._gateway_http = None
        self.artifacts = Artifacts[Sync](api)
        self.collections = Collections[Sync](api)
        self.workloads = SyncWorkloads(api, gateway)
        self.deployments = SyncDeployments(api, gateway)
        self.secrets = Secrets[Sync](api)
        self.bundles = Bundles[Sync](api)
        self.api_keys = ApiKeys[Sync](api)
        self.audit = Audit[Sync](api)
        self.service = Service[Sync](api)

    @classmethod
    def from_context(cls, context: str | None = None, **options: object) -> Client:
        """Connect as `wapi` would: flags, contexts, `WAPI_API_URL`/`WAPI_API_KEY`, local stack."""
        return cls.connect(resolve(context), **options)

    @classmethod
    def connect(cls, connection: Connection, **options: object) -> Client:
        return cls(
            connection.api_url,
            connection.api_key,
            gateway_url=connection.gateway_url,
            **options,  # type: ignore[arg-type]
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()
        if self._gateway_http is not None:
            self._gateway_http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The same routes as `Client`, each returning an awaitable."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        gateway_url: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=api_root(api_url),
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        api = AsyncTransport(self._http, retry)
        gateway = api
        if gateway_url:
            self._gateway_http: httpx.AsyncClient | None = httpx.AsyncClient(
                base_url=api_root(gateway_url), headers=_headers(api_key), timeout=timeout
            )
            gateway = AsyncTransport(self._gateway_http, retry)
        else:
            self._gateway_http = None
        self.artifacts = Artifacts[Async](api)
        self.collections = Collections[Async](api)
        self.workloads = AsyncWorkloads(api, gateway)
        self.deployments = AsyncDeployments(api, gateway)
        self.secrets = Secrets[Async](api)
        self.bundles = Bundles[Async](api)
        self.api_keys = ApiKeys[Async](api)
        self.audit = Audit[Async](api)
        self.service = Service[Async](api)

    @classmethod
    def from_context(cls, context: str | None = None, **options: object) -> AsyncClient:
        return cls.connect(resolve(context), **options)

    @classmethod
    def connect(cls, connection: Connection, **options: object) -> AsyncClient:
        return cls(
            connection.api_url,
            connection.api_key,
            gateway_url=connection.gateway_url,
            **options,  # type: ignore[arg-type]
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._gateway_http is not None:
            await self._gateway_http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
