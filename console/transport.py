"""httpx onto the API app in this same process, with answers streamed as the app sends them.

The console calls the management API through the typed client, so every read and action is
authenticated, authorized and audited exactly like any other call. httpx's own ASGI transport
waits for an answer to end before returning it, which a followed log never does; this one
hands the body over chunk by chunk and tells the app when the reader has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
from starlette.types import ASGIApp, Message

log = logging.getLogger(__name__)

_END = b""  # the queue's end marker (the app never sends an empty chunk through it)


class InProcessTransport(httpx.AsyncBaseTransport):
    """Send requests to `app` as ASGI calls; `client` is the address the API sees (the
    browser's, so audit records name it)."""

    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": unquote(url.path),
            "raw_path": url.raw_path.split(b"?", 1)[0],
            "query_string": url.query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "client": self.client,
        }
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
        gone = asyncio.Event()
        request_sent = ended = False

        async def receive() -> Message:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                started.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await chunks.put(message["body"])
                if not message.get("more_body", False):
                    ended = True
                    await chunks.put(_END)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as error:
                if not started.done():
                    started.set_exception(error)
                    return
                log.exception("the API failed after it began to answer the console")
            finally:
                if not started.done():
                    started.set_exception(RuntimeError("the API ended without an answer"))
                elif not ended and not gone.is_set():
                    await chunks.put(_END)  # a body cut short still ends for the reader

        task = asyncio.create_task(run())
        try:
            status, headers = await started
        except BaseException:
            gone.set()
            await _finish(task)
            raise
        return httpx.Response(
            status, headers=headers, stream=_Body(chunks, task, gone), request=request
        )


async def _finish(task: asyncio.Task[None]) -> None:
    """Cancel the app's task if it still runs and wait for it, without taking its exception."""
    if not task.done():
        task.cancel()
    await asyncio.wait([task])


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes], task: asyncio.Task[None], gone: asyncio.Event):
        self._chunks = chunks
        self._task = task
        self._gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) != _END:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()  # the app's receive() answers http.disconnect
        # It did not stop by itself in time, or it failed: either way, it is done with.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=1)
        await _finish(self._task)
