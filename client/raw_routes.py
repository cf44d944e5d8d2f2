"""Routes whose answer is not a model: lines as they stream (logs with `follow`), and calls
through the invoke gateway, whose answer is the workload's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, overload
from urllib.parse import quote

import httpx

from client.operations import Async, Resource, Sync, _Declared
from client.transport import Request, SyncTransport

P = ParamSpec("P")
INVOKE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class StreamRoute(_Declared, Generic[P]):
    """A route answering lines as they come (logs with `follow`); closing the iterator closes
    the connection."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> StreamRoute[P]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, Iterator[str]]: ...
    @overload
    def __get__(
        self, obj: Resource[Async], owner: type[Any]
    ) -> Callable[P, AsyncIterator[str]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        transport, owner_type = obj._transport, type(obj)
        if isinstance(transport, SyncTransport):
            sync = transport

            def lines(*args: Any, **kwargs: Any) -> Iterator[str]:
                request = self.request(owner_type, args, kwargs)
                with sync.stream(_unbounded(request)) as response:
                    yield from response.iter_lines()

            return lines

        async def alines(*args: Any, **kwargs: Any) -> AsyncIterator[str]:
            request = self.request(owner_type, args, kwargs)
            async with transport.stream(_unbounded(request)) as response:
                async for line in response.aiter_lines():
                    yield line

        return alines


def _unbounded(request: Request) -> Request:
    """A stream may stay quiet for as long as the container does."""
    return Request(
        request.method, request.path, request.params, headers=request.headers, timeout=None
    )


class InvokeRoute(_Declared):
    """Any method and path to a workload or deployment through the invoke gateway. The answer
    is the workload's own: returned as is, whatever its status, never retried."""

    def invoke_request(
        self,
        owner: type[Resource[Any]],
        resource_id: str,
        path: str,
        method: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | str | None,
        json: Any,
        timeout: float | None,
    ) -> Request:
        if method.upper() not in INVOKE_METHODS:
            raise ValueError(f"method must be one of {', '.join(INVOKE_METHODS)}")
        prefix = self.full_path(owner).split("{")[0]
        target = f"{prefix}{quote(resource_id, safe='')}/{quote(path.lstrip('/'), safe='/?=&%:@')}"
        return Request(
            method.upper(),
            target,
            params=list((params or {}).items()),
            json=json,
            content=content.encode() if isinstance(content, str) else content,
            headers=dict(headers or {}),
            raw=True,
            timeout=timeout,
        )

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> InvokeRoute: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Invoke: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> AsyncInvoke: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        gateway, owner_type = obj._gateway, type(obj)
        if isinstance(gateway, SyncTransport):
            sync = gateway

            def call(resource_id: str, path: str = "", **options: Any) -> httpx.Response:
                request = self.invoke_request(owner_type, resource_id, path, **_options(options))
                response = sync.send(request)
                response.read()
                return response

            return call

        async def acall(resource_id: str, path: str = "", **options: Any) -> httpx.Response:
            request = self.invoke_request(owner_type, resource_id, path, **_options(options))
            response = await gateway.send(request)
            await response.aread()
            return response

        return acall


def _options(options: dict[str, Any]) -> dict[str, Any]:
    defaults = {"method": "GET", "params": None, "headers": None, "content": None, "json": None}
    unknown = set(options) - {*defaults, "timeout"}
    if unknown:
        raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
    return {**defaults, "timeout": None, **options}


class Invoke:
    """Typing of a bound invoke route (sync)."""

    def __call__(
        self,
        resource_id: str,
        path: str = "",
        *,
        method: str = "GET",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        raise NotImplementedError


class AsyncInvoke:
    """Typing of a bound invoke route (async)."""

    async def __call__(
        self,
        resource_id: str,
        path: str = "",
        *,
        method: str = "GET",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        raise NotImplementedError


def streaming(
    path: str,
) -> Callable[[Callable[Concatenate[Any, P], Iterator[str]]], StreamRoute[P]]:
    """Declare a `GET` route whose answer is read line by line as it streams."""

    def declare(stub: Callable[Concatenate[Any, P], Iterator[str]]) -> StreamRoute[P]:
        return StreamRoute(("GET",), path, stub)

    return declare


def invoking(path: str) -> InvokeRoute:
    """Declare the invoke route under `path` (which ends with `{path}`), for every method."""

    def stub(self: Any, resource_id: str, path: str = "") -> httpx.Response:
        raise NotImplementedError

    return InvokeRoute(INVOKE_METHODS, path, stub)
