"""The gateway's forwarding (`ReplicaProxy`) against real upstream servers on loopback: what
reaches the replica, what comes back, and how each upstream failure is answered."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI, Request, Response

from api.errors import install_error_handlers
from api.gateway.proxy import ReplicaProxy, client_session
from tests.support.live_server import serve
from tests.support.postgres import free_port
from tests.support.upstream import aiohttp_server, answering

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(request: web.Request) -> web.StreamResponse:
    if request.path.endswith("/stream"):
        stream = web.StreamResponse()
        await stream.prepare(request)
        for index in range(3):
            await stream.write(f"chunk {index}\n".encode())
            await asyncio.sleep(0.4)
        await stream.write_eof()
        return stream
    body = await request.read()
    if request.path.endswith("/empty"):
        return web.Response(status=204)
    if request.path.endswith("/gzip"):
        packed = gzip.compress(b"compressed as sent")
        return web.Response(body=packed, headers={"Content-Encoding": "gzip"})
    answer = web.json_response(
        {
            "method": request.method,
            "target": request.raw_path,
            "headers": [[name.lower(), value] for name, value in request.headers.items()],
            "body": body.decode(),
        }
    )
    answer.headers.add("Set-Cookie", "a=1")
    answer.headers.add("Set-Cookie", "b=2")
    return answer


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async with aiohttp_server(answering(echo)) as address:
        yield address


async def raw_upstream(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def gateway(addresses: list[str], timeout: float = 5.0) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client_session(timeout) as client:
            app.state.proxy = ReplicaProxy(client)
            yield

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)

    @app.api_route("/gw/{wid}/{path:path}", methods=["GET", "HEAD", "POST", "PUT"])
    async def forward(request: Request, path: str) -> Response:
        request.state.request_id = "req-1"
        proxy: ReplicaProxy = app.state.proxy
        return await proxy.forward(request, addresses, path, target="workload 'w'")

    return app


async def call(app: FastAPI, method: str, url: str, **kwargs: object) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


async def test_request_goes_upstream_as_sent(upstream: str) -> None:
    response = await call(
        gateway([upstream]),
        "POST",
        "/gw/w1/a%20b/c%2Fd/%C3%BC?x=a%20b&y=%26&z",
        content=b"hello",
        headers={"Authorization": "Bearer secret", "X-Custom": "1", "X-Forwarded-For": "1.2.3.4"},
    )
    assert response.status_code == 200
    seen = response.json()
    headers = dict(seen["headers"])
    assert seen["method"] == "POST" and seen["body"] == "hello"
    assert seen["target"] == "/a%20b/c%2Fd/%C3%BC?x=a%20b&y=%26&z"
    assert "authorization" not in headers
    assert headers["x-custom"] == "1" and headers["content-length"] == "5"
    assert headers["x-forwarded-for"] == "1.2.3.4, 10.0.0.9"
    assert headers["x-forwarded-host"] == "gw.test" and headers["x-request-id"] == "req-1"
    assert headers["host"] == upstream
    # Only what the caller sent: no defaults of the gateway's own HTTP client.
    assert headers["user-agent"].startswith("python-httpx") and "content-type" not in headers
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_a_streamed_request_body_arrives_whole(upstream: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"one ", b"two ", b"three"):
            yield part

    response = await call(gateway([upstream]), "PUT", "/gw/w1/up", content=chunks())
    assert response.json()["body"] == "one two three"


async def test_compressed_bodies_pass_through_untouched(upstream: str) -> None:
    app = gateway([upstream])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            response = await client.get("/gw/w1/gzip")
            assert response.headers["content-encoding"] == "gzip"
            assert response.content == b"compressed as sent"  # httpx decoded what came through


async def test_a_refused_replica_is_skipped(upstream: str) -> None:
    closed = f"127.0.0.1:{free_port()}"
    for _ in range(2):  # round robin: both orders
        response = await call(gateway([closed, upstream]), "GET", "/gw/w1/x")
        assert response.status_code == 200
    refused = await call(gateway([closed]), "GET", "/gw/w1/x")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"


async def test_upstream_failures_have_their_own_status() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    for handler, status in ((silent, 504), (garbage, 502), (hang_up, 503)):
        server, address = await raw_upstream(handler)
        async with server:
            response = await call(gateway([address], timeout=0.5), "GET", "/gw/w1/x")
        assert response.status_code == status, (handler.__name__, response.text)
        assert json.loads(response.text)["message"]
    # A body cannot be sent twice: a replica that hangs up on a POST is a bad gateway.
    server, address = await raw_upstream(hang_up)
    async with server:
        response = await call(gateway([address]), "POST", "/gw/w1/x", content=b"once")
    assert response.status_code == 502


async def test_answers_stream_through_as_they_come(upstream: str) -> None:
    """Over a real socket (an in-process transport would buffer): the first chunk arrives
    while the replica is still writing the rest."""
    with serve(gateway([upstream])) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            started = time.monotonic()
            arrivals = []
            async with client.stream("GET", "/gw/w1/stream") as response:
                async for line in response.aiter_lines():
                    arrivals.append((line, time.monotonic() - started))
    assert [line for line, _ in arrivals] == ["chunk 0", "chunk 1", "chunk 2"]
    assert arrivals[0][1] < 0.35 and arrivals[-1][1] >= 0.8


async def test_answers_without_a_body(upstream: str) -> None:
    app = gateway([upstream])
    head = await call(app, "HEAD", "/gw/w1/anything")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0  # what a GET would have sent
    empty = await call(app, "GET", "/gw/w1/empty")
    assert empty.status_code == 204 and empty.content == b""


async def test_expect_continue_is_settled_here_not_upstream() -> None:
    """The server in front of the gateway answers `Expect: 100-continue`; a replica that
    ignores the header (as busybox httpd does) must still get the body at once."""

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        body = await reader.readexactly(length)
        expect = b"expect" in head.encode()
        answer = b"%d %d" % (len(body), expect)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()
        writer.close()

    server, address = await raw_upstream(plain)
    async with server, asyncio.timeout(10):
        response = await call(
            gateway([address], timeout=3),
            "POST",
            "/gw/w1/upload",
            content=b"x" * 4096,
            headers={"Expect": "100-continue"},
        )
    assert (response.status_code, response.text) == (200, "4096 0")


async def test_no_cookies_are_kept_between_callers(upstream: str) -> None:
    """The replica sets cookies on every answer; a later caller must not send them back.
    (By a host name: a cookie jar ignores cookies from bare IP addresses.)"""
    app = gateway([upstream.replace("127.0.0.1", "localhost")])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        for _ in range(2):
            # A fresh client each time: the caller keeps no cookies either.
            async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
                seen = (await client.get("/gw/w1/x")).json()
                assert "cookie" not in dict(seen["headers"])
