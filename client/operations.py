"""Routes declared once, called synchronously or asynchronously.

A resource class declares each route of the API as a stub method decorated with `route`,
`listing`, `streaming` or `invoking`. The stub's signature is the method's signature and its
return annotation is the type the answer is parsed into (the server's own pydantic models).
Leading parameters fill the path's placeholders in order, `body` is the JSON body, parameters
named in `headers=` become headers, and every other parameter is a query parameter (camelCase,
left out when None). On a `Resource[Sync]` a route returns its value; on a `Resource[Async]` it
returns an awaitable. Adding a route to the client is adding one stub. Routes whose answer is
not a model (streamed lines, invoke calls) are in `client/raw_routes.py`.

A relative route path is under the resource's `path`, and `{id}` in it stands for the
resource's own id placeholder (`id_name`), so one mixin (sharing, say) serves every resource.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, get_type_hints, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter
from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python

from client.transport import AsyncTransport, Request, SyncTransport
from models.common import Page

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_UNSET: Any = object()


class Sync:
    """Marker: routes return their values."""


class Async:
    """Marker: routes return awaitables."""


Mode = TypeVar("Mode", Sync, Async)


class Resource(Generic[Mode]):
    """A group of routes sharing a path; instances are bound to one client."""

    path: ClassVar[str] = "/"
    id_name: ClassVar[str] = ""

    def __init__(
        self,
        transport: SyncTransport | AsyncTransport,
        gateway: SyncTransport | AsyncTransport | None = None,
    ) -> None:
        self._transport = transport
        self._gateway = gateway or transport

    @classmethod
    def declared(cls) -> dict[str, _Declared]:
        """The routes by method name."""
        found = {name: inspect.getattr_static(cls, name) for name in dir(cls)}
        return {name: route for name, route in found.items() if isinstance(route, _Declared)}

    @classmethod
    def routes(cls) -> list[tuple[str, str]]:
        """Every (method, path) this resource calls, paths as the OpenAPI document writes them."""
        return sorted(
            {(m, route.full_path(cls)) for route in cls.declared().values() for m in route.methods}
        )


def _jsonable(value: Any) -> Any:
    """JSON for a request body; secret values are sent (that is what a secret body is for)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_unset=True)
    return to_jsonable_python(
        value, fallback=lambda v: v.get_secret_value() if isinstance(v, SecretStr) else str(v)
    )


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


class _Declared:
    """What every kind of route shares: its method(s), path and the stub's signature."""

    def __init__(
        self,
        methods: tuple[str, ...],
        path: str,
        stub: Callable[..., Any],
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = _UNSET,
        ok: Iterable[int] = (),
    ) -> None:
        self.methods = methods
        self.path = path
        self.stub = stub
        self.signature = inspect.signature(stub)
        self.headers = dict(headers or {})
        self.fixed_body = body
        self.ok_statuses = frozenset(ok)
        self.__doc__ = stub.__doc__

    @property
    def sends_body(self) -> bool:
        return self.fixed_body is not _UNSET or "body" in self.signature.parameters

    def full_path(self, owner: type[Resource[Any]]) -> str:
        path = self.path if self.path.startswith("/") else owner.path + self.path
        return path.replace("{id}", "{" + owner.id_name + "}")

    def parameter_names(self, owner: type[Resource[Any]]) -> tuple[list[str], list[str]]:
        """The query parameters (camelCase) and headers this route sends."""
        names = list(self.signature.parameters)[1:]  # without `self`
        names = names[len(_PLACEHOLDER.findall(self.full_path(owner))) :]
        query = [to_camel(n) for n in names if n != "body" and n not in self.headers]
        return query, list(self.headers.values())

    def request(self, owner: type[Resource[Any]], args: Any, kwargs: Any) -> Request:
        bound = self.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop(next(iter(self.signature.parameters)))  # the stub's `self`
        path = self.full_path(owner)
        for placeholder, name in zip(_PLACEHOLDER.findall(path), list(values), strict=False):
            path = path.replace("{" + placeholder + "}", quote(str(values.pop(name)), safe=""))
        body = values.pop("body", None) if self.fixed_body is _UNSET else self.fixed_body
        headers = {
            header: str(values.pop(name))
            for name, header in self.headers.items()
            if values.get(name) is not None
        }
        for name in self.headers:
            values.pop(name, None)
        params = [
            (to_camel(name), _query_value(item))
            for name, value in values.items()
            if value is not None
            for item in (value if isinstance(value, list | tuple) else [value])
        ]
        return Request(
            self.methods[0],
            path,
            params=params,
            json=None if body is None else _jsonable(body),
            headers=headers,
            ok_statuses=self.ok_statuses,
        )

    @cached_property
    def returns(self) -> Any:
        return get_type_hints(self.stub)["return"]

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.returns)

    def decode(self, response: httpx.Response) -> Any:
        if self.returns is type(None) or response.status_code == 204:
            return None
        if self.returns is str:
            return response.text
        return self._adapter.validate_python(response.json())


class Route(_Declared, Generic[P, R]):
    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Route[P, R]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, R]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, Awaitable[R]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        transport, owner_type = obj._transport, type(obj)
        if isinstance(transport, SyncTransport):
            sync = transport

            def call(*args: Any, **kwargs: Any) -> Any:
                return self.decode(sync.send(self.request(owner_type, args, kwargs)))

            return call

        async def acall(*args: Any, **kwargs: Any) -> Any:
            return self.decode(await transport.send(self.request(owner_type, args, kwargs)))

        return acall


class SyncList(Generic[P, T]):
    """A list route: call it for one page, or `.all(...)` to iterate over every item."""

    def __init__(self, route: ListRoute[P, T], owner: type[Resource[Any]], t: SyncTransport):
        self._route, self._owner, self._transport = route, owner, t

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Page[T]:
        request = self._route.request(self._owner, args, kwargs)
        page: Page[T] = self._route.decode(self._transport.send(request))
        return page

    def all(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        options: dict[str, Any] = {"limit": 100, **kwargs}
        offset = int(options.pop("offset", None) or 0)
        while True:
            page = self(*args, **options, offset=offset)  # type: ignore[arg-type]
            yield from page.data
            if page.next is None or not page.data:
                return
            offset += len(page.data)


class AsyncList(Generic[P, T]):
    def __init__(self, route: ListRoute[P, T], owner: type[Resource[Any]], t: AsyncTransport):
        self._route, self._owner, self._transport = route, owner, t

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Page[T]:
        request = self._route.request(self._owner, args, kwargs)
        page: Page[T] = self._route.decode(await self._transport.send(request))
        return page

    async def all(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        options: dict[str, Any] = {"limit": 100, **kwargs}
        offset = int(options.pop("offset", None) or 0)
        while True:
            page = await self(*args, **options, offset=offset)  # type: ignore[arg-type]
            for item in page.data:
                yield item
            if page.next is None or not page.data:
                return
            offset += len(page.data)


class ListRoute(_Declared, Generic[P, T]):
    @overload
    def __get__(self, obj: None, owner: type[Any]) -> ListRoute[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> SyncList[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> AsyncList[P, T]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        if isinstance(obj._transport, SyncTransport):
            return SyncList(self, type(obj), obj._transport)
        return AsyncList(self, type(obj), obj._transport)


def route(
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: Any = _UNSET,
    ok: Iterable[int] = (),
) -> Callable[[Callable[Concatenate[Any, P], R]], Route[P, R]]:
    """Declare a route; `body` fixes the JSON body, `ok` lists error statuses read as data."""

    def declare(stub: Callable[Concatenate[Any, P], R]) -> Route[P, R]:
        return Route((method,), path, stub, headers=headers, body=body, ok=ok)

    return declare


def listing(
    method: str, path: str
) -> Callable[[Callable[Concatenate[Any, P], Page[T]]], ListRoute[P, T]]:
    """Declare a paginated list route (the stub takes `offset` and `limit`)."""

    def declare(stub: Callable[Concatenate[Any, P], Page[T]]) -> ListRoute[P, T]:
        return ListRoute((method,), path, stub)

    return declare
