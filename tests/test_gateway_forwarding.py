"""The gateway's data plane against real upstream servers on loopback: what reaches the
replica, what comes back, and how each upstream failure is answered. Raw-socket clients where
the bytes on the wire matter; httpx and aiohttp clients where a real client's view does.

Why one module of this length: one catalog and one kind of set-up serve every case of the
forwarding contract, grouped by what they check (routing, credentials, headers, bodies,
responses, connections)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select

from catalog.tables import AuditEvent
from tests.support.gateway_world import (
    World,
    body_of,
    echo_upstream,
    exchange,
    raw_upstream,
    read_chunks,
    read_request,
    read_response,
    request,
    sqlite_world,
)
from tests.support.ports import free_port
from tests.support.upstream import aiohttp_server, answering

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with sqlite_world(tmp_path_factory.mktemp("gateway")) as built:
        yield built


def get(world: World, rest: str = "/", secret: str | None = "token", extra: bytes = b"") -> bytes:
    return request(
        "GET", world.path(rest=rest), world.token if secret == "token" else secret, extra
    )


# ---- routing and the path ------------------------------------------------------------------


async def test_path_and_query_forwarded_exactly_with_the_prefix_stripped(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        d1 = world.d1
        for sent, expected in [
            (
                f"/api/v2/endpoints/deployments/{d1}/a%2Fb/c%20d?x=1&y=%2F&z",
                "/a%2Fb/c%20d?x=1&y=%2F&z",
            ),
            (
                f"/api/v2/endpoints/deployments/{d1}/a%20b/%C3%BC?x=a%20b&y=%26",
                "/a%20b/%C3%BC?x=a%20b&y=%26",
            ),
            (f"/api/v2/endpoints/deployments/{d1}/", "/"),
            (f"/api/v2/endpoints/deployments/{d1}?q=1", "/?q=1"),
            (f"/api/v2/endpoints/deployments/{d1}//double//slash", "//double//slash"),
        ]:
            response = await exchange(gw.port, request("GET", sent, world.token))
            assert response.startswith(b"HTTP/1.1 200"), response
            assert body_of(response)["line"] == f"GET {expected} HTTP/1.1"
        response = await exchange(
            gw.port, request("GET", world.path("workloads", "w1", "/x?y"), world.alice)
        )
        assert body_of(response)["line"] == "GET /x?y HTTP/1.1"


async def test_encoded_ids_are_decoded_once_and_never_an_error(world: World) -> None:
    """A deployment id with its last character percent-encoded reaches the deployment (it once
    answered 500, unaudited); a doubly encoded one, or an encoded '/', is just not found."""
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        d1 = world.d1
        last = f"%{ord(d1[-1]):02X}"
        for path, status in [
            (f"/api/v2/endpoints/deployments/{d1[:-1]}{last}/x", 200),
            (f"/api/v2/%65ndpoints/deployments/{d1}/x", 200),
            (f"/api/v2/endpoints/deployments/{d1[:-1]}%25{last[1:]}/x", 404),
            (f"/api/v2/endpoints/deployments/{d1}%2Fx/y", 404),
            (f"/api/v2/endpoints/deployments/{d1}%00/y", 404),
            ("/api/v2/endpoints/deployments/%FF%FE/y", 404),
        ]:
            response = await exchange(gw.port, request("GET", path, world.admin))
            assert response.startswith(b"HTTP/1.1 %d" % status), (path, response)
            if status == 200:
                assert body_of(response)["line"] == "GET /x HTTP/1.1"


async def test_any_method_and_unknown_routes(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        for method in ("DELETE", "PATCH", "OPTIONS", "PROPFIND"):
            raw = request(method, world.path(rest="/m"), world.token)
            assert body_of(await exchange(gw.port, raw))["line"] == f"{method} /m HTTP/1.1"
        for path in (
            "/api/v2/other",
            "/api/v2/endpoints/nothing/x/",
            "/api/v2/endpoints/deployments//x",
        ):
            response = await exchange(gw.port, request("GET", path, world.token))
            assert response.startswith(b"HTTP/1.1 404") and body_of(response)["code"] == "not_found"


# ---- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "secret", "status"),
    [
        ("deployments", "d1", None, 401),
        ("deployments", "d1", "wdt_nope", 401),
        ("deployments", "d1", "wapi_nope", 401),
        ("deployments", "d1", "token2", 403),
        ("deployments", "d1", "bob", 403),
        ("deployments", "d1", "alice", 200),
        ("deployments", "d1", "admin", 200),
        ("deployments", "d1", "token", 200),
        ("deployments", "nope", "admin", 404),
        ("deployments", "empty", "admin", 503),
        # A workload takes keys of users with a role on it, or owner/user of a deployment in
        # front of it (alice is user of d1, which routes to w1); a role is checked first.
        ("workloads", "w1", "bob", 403),
        ("workloads", "w1", "alice", 200),
        ("workloads", "w1", "token", 401),
        ("workloads", "nope", "alice", 403),
        ("workloads", "nope", "admin", 404),
        ("workloads", "empty", "admin", 503),
    ],
)
async def test_credentials(
    world: World, kind: str, name: str, secret: str | None, status: int
) -> None:
    known = {"token": world.token, "token2": world.token2, "alice": world.alice,
             "bob": world.bob, "admin": world.admin}  # fmt: skip
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        raw = request("GET", world.path(kind, name), known.get(secret or "", secret))
        response = await exchange(gw.port, raw)
        assert response.startswith(b"HTTP/1.1 %d" % status), response
        if status == 401:
            assert b"WWW-Authenticate: Bearer" in response
        if status == 503:
            assert b"Retry-After: 2" in response
        if status != 200:
            assert body_of(response)["requestId"]


async def test_a_refused_call_keeps_the_connection_when_no_body_is_pending(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(get(world, secret=None))
        assert (await read_response(reader)).startswith(b"HTTP/1.1 401")
        writer.write(get(world))
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        writer.close()


# ---- headers -------------------------------------------------------------------------------


async def test_header_hygiene_both_ways(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        extra = (
            b"Connection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: 5\r\n"
            b"TE: trailers\r\nProxy-Authorization: x\r\nUpgrade: h2c\r\n"
            b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
            b"X-Forwarded-Port: 1\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"
            b"X-Custom: kept\r\nCookie: a=1\r\n"
        )
        response = await exchange(gw.port, get(world, extra=extra))
        seen = body_of(response)["headers"]
        for dropped in ("connection", "x-drop-me", "keep-alive", "te", "proxy-authorization",
                        "upgrade", "authorization", "expect", "x-forwarded-port"):  # fmt: skip
            assert dropped not in seen, dropped
        assert seen["forwarded"] == "for=127.0.0.1;proto=http"
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-real-ip"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == "gw.example"
        assert seen["host"] == address
        assert seen["x-custom"] == "kept" and seen["cookie"] == "a=1"
        assert len(seen["x-request-id"]) == 16
        head = response.split(b"\r\n\r\n")[0].lower()
        assert b"x-secret" not in head and b"keep-alive" not in head  # Connection-named, hop
        assert b"x-request-id: " + seen["x-request-id"].encode() in head


async def test_repeated_headers_are_kept(world: World) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    async with raw_upstream(handle) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world))
        assert response.count(b"Set-Cookie") == 2


async def test_repeated_request_headers_reach_the_replica_as_sent(world: World) -> None:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    repeated = [b"X-Custom: one", b"Cookie: a=1", b"X-Custom: two, three", b"Cookie: b=2"]
    async with raw_upstream(handle) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world, extra=b"\r\n".join(repeated) + b"\r\n"))
    assert response.startswith(b"HTTP/1.1 204"), response
    # Each line as sent, in the order sent: not merged, not reordered, none dropped.
    lines = [
        line
        for line in heads[0].split(b"\r\n")
        if line.lower().startswith((b"x-custom", b"cookie"))
    ]
    assert lines == repeated, heads[0]


async def test_a_callers_request_id_is_kept(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world, extra=b"X-Request-ID: abc-123\r\n"))
        assert body_of(response)["headers"]["x-request-id"] == "abc-123"
        bad = await exchange(gw.port, get(world, extra=b"X-Request-ID: " + b"x" * 65 + b"\r\n"))
        assert len(body_of(bad)["headers"]["x-request-id"]) == 16


async def test_a_real_client_sees_what_it_sent_arrive(world: World) -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        answer = web.json_response(
            {
                "target": request.raw_path,
                "headers": [[name.lower(), value] for name, value in request.headers.items()],
                "body": body.decode(),
            }
        )
        answer.headers.add("Set-Cookie", "a=1")
        answer.headers.add("Set-Cookie", "b=2")
        return answer

    async with (
        aiohttp_server(answering(echo)) as address,
        world.gateway(w1=[address]) as gw,
        httpx.AsyncClient(base_url=gw.url) as client,
    ):
        response = await client.post(
            world.path(rest="/a%20b?x=%26"),
            content=b"hello",
            headers={"Authorization": f"Bearer {world.token}", "X-Custom": "1"},
        )
    assert response.status_code == 200
    seen = response.json()
    headers = dict(seen["headers"])
    assert seen["target"] == "/a%20b?x=%26" and seen["body"] == "hello"
    assert "authorization" not in headers and headers["content-length"] == "5"
    # Only what the caller sent: nothing of an HTTP client of the gateway's own.
    assert headers["user-agent"].startswith("python-httpx") and "content-type" not in headers
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["x-request-id"] == headers["x-request-id"]


async def test_no_cookies_are_kept_between_callers(world: World) -> None:
    """The replica sets cookies on every answer; a later caller must not send them back."""
    record: list[Any] = []
    async with (
        echo_upstream(record) as address,
        world.gateway(w1=[address.replace("127.0.0.1", "localhost")]) as gw,
    ):
        for _ in range(2):
            async with httpx.AsyncClient(base_url=gw.url) as client:
                await client.get(world.path(), headers={"Authorization": f"Bearer {world.token}"})
    assert len(record) == 2 and all(b"cookie" not in headers for _, headers, _ in record)


# ---- bodies --------------------------------------------------------------------------------


async def test_request_bodies_keep_their_framing(world: World) -> None:
    record: list[Any] = []
    async with echo_upstream(record) as address, world.gateway(w1=[address]) as gw:
        sized = request("POST", world.path(rest="/p"), world.token, body=b"hello")
        assert body_of(await exchange(gw.port, sized))["body"] == "hello"
        chunked = (
            request("POST", world.path(rest="/p"), world.token, b"Transfer-Encoding: chunked\r\n")
            + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await exchange(gw.port, chunked)
    assert record[0][1][b"content-length"] == b"5"
    assert record[1][1][b"transfer-encoding"] == b"chunked"
    assert record[1][2] == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"


async def test_large_bodies_stream_both_ways(world: World) -> None:
    """8 MiB up (chunked, from aiohttp) and back (the replica echoes it as it reads)."""

    async def echo(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in request.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response

    payload = bytes(range(256)) * (8 * 4096)

    async def produce() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    async with (
        aiohttp_server(answering(echo)) as address,
        world.gateway(w1=[address]) as gw,
        aiohttp.ClientSession() as client,
        client.post(
            gw.url + world.path(rest="/echo"),
            data=produce(),
            headers={"Authorization": f"Bearer {world.token}"},
        ) as response,
    ):
        assert response.status == 200
        got = await response.read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


async def test_a_request_body_streams_to_the_replica(world: World) -> None:
    """The replica sees the first chunk before the caller sends the last: the caller waits
    for it, so a gateway that buffered the body would never forward it. The call is audited."""
    first_seen, rest = asyncio.Event(), list[bytes]()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        assert await reader.readexactly(size + 2) == b"first\r\n"
        first_seen.set()
        rest.append(await read_chunks(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with world.sessions() as session:
        before = await session.scalar(select(func.max(AuditEvent.seq))) or 0
    async with raw_upstream(handle) as address, world.gateway(w1=[address]) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        head = request(
            "POST", world.path(rest="/up"), world.token, b"Transfer-Encoding: chunked\r\n"
        )
        writer.write(head + b"5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.wait_for(first_seen.wait(), 30)  # generous; never, if buffered
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(read_response(reader), 30)
        writer.close()
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"ok"), response
    assert rest == [b"4\r\nlast\r\n0\r\n\r\n"]
    async with world.sessions() as session:  # the gateway flushes its audit when it stops
        records = list(await session.scalars(select(AuditEvent).where(AuditEvent.seq > before)))
    assert [(r.action, r.resource_id, r.status_code) for r in records] == [
        ("deployment.invoke", world.d1, 200)
    ]


async def test_compressed_bodies_pass_through_untouched(world: World) -> None:
    packed = gzip.compress(b"compressed as sent")

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=packed, headers={"Content-Encoding": "gzip"})

    async with aiohttp_server(answering(gzipped)) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world, extra=b"Accept-Encoding: gzip\r\n"))
    head, body = response.split(b"\r\n\r\n", 1)
    assert b"Content-Encoding: gzip" in head and body == packed


async def test_bodies_over_the_limit_are_refused_before_they_are_read(world: World) -> None:
    record: list[Any] = []
    async with (
        echo_upstream(record) as address,
        world.gateway(w1=[address], gateway_max_body_bytes=10) as gw,
    ):
        # Declared: refused at once, without reading a byte of it, and the connection closed.
        raw = request("POST", world.path(rest="/p"), world.token, b"Content-Length: 104857600\r\n")
        response = await exchange(gw.port, raw, until_close=True)
        assert response.startswith(b"HTTP/1.1 413") and b"Connection: close" in response
        assert body_of(response)["code"] == "payload_too_large"
        # Chunked: refused when it grows past the limit; the replica never sees its end.
        chunked = request(
            "POST", world.path(rest="/p"), world.token, b"Transfer-Encoding: chunked\r\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(chunked + b"8\r\n12345678\r\n")
        await asyncio.sleep(0.1)
        writer.write(b"8\r\n12345678\r\n")
        response = await asyncio.wait_for(reader.read(), 5)
        assert response.startswith(b"HTTP/1.1 413")
        writer.close()
        # Within the limit: forwarded.
        small = request("POST", world.path(rest="/p"), world.token, body=b"0123456789")
        assert body_of(await exchange(gw.port, small))["body"] == "0123456789"
    assert [line for line, _, _ in record] == [b"POST /p HTTP/1.1"]
    failures = gw.gateway.metrics.failures
    assert failures["body_too_large"] == 2


async def test_a_deployment_sets_its_own_body_limit(world: World) -> None:
    from catalog.tables import Deployment

    async with world.sessions() as session, session.begin():
        row = await session.get(Deployment, world.d1)
        assert row is not None
        row.max_body_bytes = 4
    try:
        async with echo_upstream() as address, world.gateway(w1=[address], w2=[address]) as gw:
            over = request("POST", world.path(rest="/p"), world.token, body=b"12345")
            assert (await exchange(gw.port, over)).startswith(b"HTTP/1.1 413")
            other = request("POST", world.path(name="d2", rest="/p"), world.token2, body=b"12345")
            assert body_of(await exchange(gw.port, other))["body"] == "12345"
    finally:
        async with world.sessions() as session, session.begin():
            row = await session.get(Deployment, world.d1)
            assert row is not None
            row.max_body_bytes = None


async def test_expect_100_continue_is_answered_by_the_gateway(world: World) -> None:
    """A replica that ignores `Expect` (as busybox httpd does) must still get the body."""
    record: list[Any] = []
    async with echo_upstream(record) as address, world.gateway(w1=[address]) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(
            request(
                "PUT",
                world.path(rest="/u"),
                world.token,
                b"Content-Length: 4\r\nExpect: 100-continue\r\n",
            )
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        response = await asyncio.wait_for(read_response(reader), 5)
        assert body_of(response)["body"] == "data"
        writer.close()
    assert b"expect" not in record[0][1]


async def test_expect_100_continue_refused_without_reading_the_body(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        raw = request(
            "PUT", world.path(rest="/u"), None, b"Content-Length: 4\r\nExpect: 100-continue\r\n"
        )
        response = await exchange(gw.port, raw, until_close=True)
        assert response.startswith(b"HTTP/1.1 401") and b"Connection: close" in response
        assert b"100 Continue" not in response


# ---- responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_responses_without_length_are_chunked_to_the_caller(
    world: World, framing: str
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"6\r\n world\r\n0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nhello")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b" world")
        await writer.drain()
        writer.close()

    async with raw_upstream(handle) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world))
        head, body = response.split(b"\r\n\r\n", 1)
        assert b"Transfer-Encoding: chunked" in head
        assert body.endswith(b"0\r\n\r\n")
        assert b"".join(body.split(b"\r\n")[1::2]) == b"hello world"


async def test_heads_with_bare_line_feeds_are_passed_on(world: World) -> None:
    """busybox httpd writes its status line and then a CGI script's own header lines, which
    end with LF only; the caller gets CRLF."""

    async def cgi(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\nX-A: 1\n\n{}")
        await writer.drain()
        writer.close()

    async with raw_upstream(cgi) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world))
    head, body = response.split(b"\r\n\r\n", 1)
    assert b"\r\nContent-Type: application/json\r\nX-A: 1\r\n" in head
    assert body == b"2\r\n{}\r\n0\r\n\r\n"  # its end was the close; the caller gets chunks


async def test_answers_stream_through_as_they_come(world: World) -> None:
    """The first chunk arrives while the replica is still writing the rest."""

    last_written = asyncio.Event()

    async def slow_stream(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        await stream.prepare(request)
        for index in range(3):
            if index == 2:
                last_written.set()
            await stream.write(f"chunk {index}\n".encode())
            await asyncio.sleep(0.4)
        await stream.write_eof()
        return stream

    # Order, not speed: was the last chunk already written when each line arrived?
    arrivals: list[tuple[str, bool]] = []
    headers = {"Authorization": f"Bearer {world.token}"}
    async with (
        aiohttp_server(answering(slow_stream)) as address,
        world.gateway(w1=[address]) as gw,
        httpx.AsyncClient(base_url=gw.url) as client,
        client.stream("GET", world.path(rest="/stream"), headers=headers) as response,
    ):
        async for line in response.aiter_lines():
            arrivals.append((line, last_written.is_set()))
    assert [line for line, _ in arrivals] == ["chunk 0", "chunk 1", "chunk 2"]
    assert arrivals[0] == ("chunk 0", False), "the first chunk waited for the last one"


async def test_head_204_304_have_no_body_and_keep_the_connection(world: World) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                line, _, _ = await read_request(reader)
                if line.startswith(b"HEAD"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
                elif b"/204" in line:
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n")
                await writer.drain()

    async with raw_upstream(handle) as address, world.gateway(w1=[address]) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        for _ in range(2):  # twice: the upstream connection is reused after a HEAD
            writer.write(request("HEAD", world.path(rest="/h"), world.token))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1234" in head
            writer.write(get(world, "/204"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 204") and b"chunked" not in head
            writer.write(get(world, "/304"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 304") and b"chunked" not in head
        writer.close()
        assert gw.gateway.metrics.connections["upstream"] == 1


async def test_interim_responses_are_not_relayed(world: World) -> None:
    async def early_hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok")
        await writer.drain()

    async with raw_upstream(early_hints) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world))
        assert response.startswith(b"HTTP/1.1 200") and b"X-Final: 1" in response
        assert b"Link" not in response


# ---- connections ---------------------------------------------------------------------------


async def test_keep_alive_and_pipelining(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(get(world, "/one") + get(world, "/two"))
        first = await asyncio.wait_for(read_response(reader), 5)
        second = await asyncio.wait_for(read_response(reader), 5)
        assert body_of(first)["line"] == "GET /one HTTP/1.1"
        assert body_of(second)["line"] == "GET /two HTTP/1.1"
        for index in range(5):
            writer.write(get(world, f"/{index}"))
            assert body_of(await read_response(reader))["line"] == f"GET /{index} HTTP/1.1"
        writer.close()
        assert gw.gateway.metrics.connections["upstream"] == 1  # one pooled connection


async def test_http10_caller_and_half_close(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        raw = get(world).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        response = await exchange(gw.port, raw, until_close=True)
        assert response.startswith(b"HTTP/1.1 200") and b"Connection: close" in response
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(get(world))
        writer.write_eof()  # half-closed: the answer must still come
        response = await asyncio.wait_for(reader.read(), 5)
        assert response.startswith(b"HTTP/1.1 200")
        writer.close()


async def test_next_replica_on_connection_refused(world: World) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with echo_upstream() as address, world.gateway(w1=[dead, address]) as gw:
        for _ in range(4):  # round robin: both orders
            response = await exchange(gw.port, get(world))
            assert response.startswith(b"HTTP/1.1 200"), response
        assert gw.gateway.metrics.failures.get("refused", 0) >= 1
    async with world.gateway(w1=[dead, f"127.0.0.1:{free_port()}"]) as gw:
        response = await exchange(gw.port, get(world))
        assert response.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in response


async def test_a_stale_pooled_connection_is_retried_for_idempotent_calls(world: World) -> None:
    """The replica closes each connection right after answering (a short keep-alive)."""
    async with echo_upstream(keep=False) as address, world.gateway(w1=[address]) as gw:
        for _ in range(3):
            response = await exchange(gw.port, get(world))
            assert response.startswith(b"HTTP/1.1 200"), response
            await asyncio.sleep(0)  # the close may or may not be seen before the next call


async def test_upstream_failures_have_their_own_status(world: World) -> None:
    async def close_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    # A body cannot be sent twice: a replica that hangs up on a POST is a bad gateway.
    async with raw_upstream(close_early) as address, world.gateway(w1=[address]) as gw:
        raw = request("POST", world.path(), world.token, body=b"x")
        assert (await exchange(gw.port, raw)).startswith(b"HTTP/1.1 502")
        # A GET is tried again on another connection, then answered 502 too.
        assert (await exchange(gw.port, get(world))).startswith(b"HTTP/1.1 502")

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()

    async with raw_upstream(garbage) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world))
        assert response.startswith(b"HTTP/1.1 502") and body_of(response)["message"]

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with (
        raw_upstream(silent) as address,
        world.gateway(w1=[address], gateway_timeout_seconds=0.3) as gw,
    ):
        response = await exchange(gw.port, get(world), read_timeout=10)
        assert response.startswith(b"HTTP/1.1 504"), response
        assert body_of(response)["code"] == "upstream_timeout"


async def test_a_stream_cut_by_the_replica_is_cut_for_the_caller(world: World) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        writer.transport.abort()

    async with raw_upstream(cut) as address, world.gateway(w1=[address]) as gw:
        response = await exchange(gw.port, get(world), until_close=True)
        assert response.startswith(b"HTTP/1.1 200")
        assert not response.endswith(b"0\r\n\r\n")  # no last chunk: the caller sees the cut


async def test_slow_caller_pauses_the_replica(world: World) -> None:
    """Backpressure: a caller that does not read makes the gateway stop reading the replica,
    so the gateway holds at most about one socket buffer per direction."""
    sent = 0

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
        block = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(1024):
                writer.write(block)
                await writer.drain()
                sent += len(block)

    async with raw_upstream(firehose) as address, world.gateway(w1=[address]) as gw:
        _reader, writer = await asyncio.open_connection("127.0.0.1", gw.port, limit=1024)
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        writer.write(get(world))
        await asyncio.sleep(1.0)
        client = next(iter(gw.gateway.clients))
        assert client.transport is not None
        buffered = client.transport.get_write_buffer_size()
        assert buffered < 2 << 20, buffered  # bounded: not the 64 MiB the replica offers
        assert sent < 16 << 20, sent
        writer.close()


async def test_other_upgrades_are_answered_as_plain_requests(world: World) -> None:
    async with echo_upstream() as address, world.gateway(w1=[address]) as gw:
        raw = get(world, extra=b"Connection: Upgrade\r\nUpgrade: h2c\r\n")
        response = await exchange(gw.port, raw, until_close=True)
        assert response.startswith(b"HTTP/1.1 200") and b"Connection: close" in response
        assert "upgrade" not in body_of(response)["headers"]


async def test_malformed_requests_are_a_400_not_an_error(world: World) -> None:
    async with world.gateway() as gw:
        for raw in (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"\x16\x03\x01 junk\r\n\r\n",
        ):
            response = await exchange(gw.port, raw, until_close=True)
            assert response.startswith(b"HTTP/1.1 400"), response
        huge = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
        assert (await exchange(gw.port, huge, until_close=True)).startswith(b"HTTP/1.1 414")
