"""A real HTTP (and WebSocket) server on loopback standing in for a replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.ports import free_port


@asynccontextmanager
async def aiohttp_server(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port; yield its `host:port`."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def answering(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], *, method: str = "*"
) -> web.Application:
    """An app that sends every path to `handler`."""
    app = web.Application()
    app.router.add_route(method, "/{tail:.*}", handler)
    return app
