"""Relay a WebSocket session between a caller and a replica, message by message.

The handshake goes upstream first, with the caller's headers (less `Authorization`, the
handshake's own headers and hop-by-hop ones) and requested subprotocols; only once the replica
has accepted is the caller accepted, with the subprotocol the replica chose. Then messages flow
both ways until either side closes, and the close code is passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from starlette.websockets import WebSocket, WebSocketDisconnect
from yarl import URL

from api.gateway.proxy import forwarded_headers, upstream_path

log = logging.getLogger(__name__)

HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"})
# Close codes a peer may not send in a close frame; replaced by "going away".
RESERVED_CLOSE_CODES = frozenset({1005, 1006, 1015})


class UpstreamRefused(Exception):
    """The replica did not accept the WebSocket handshake."""


async def relay(
    websocket: WebSocket, client: aiohttp.ClientSession, address: str, path: str
) -> None:
    """Open the session upstream, accept the caller, relay until one side closes. Raises
    `UpstreamRefused` (the caller not yet accepted) when the replica does not accept."""
    headers = forwarded_headers(websocket, drop=HANDSHAKE)
    target = URL(f"http://{address}{upstream_path(websocket, path)}", encoded=True)
    try:
        upstream = await client.ws_connect(
            target,
            headers=headers,
            protocols=websocket.scope.get("subprotocols", []),
            autoping=True,
            autoclose=False,
        )
    except (aiohttp.ClientError, TimeoutError) as error:
        raise UpstreamRefused(type(error).__name__) from None
    async with upstream:
        await websocket.accept(subprotocol=upstream.protocol)
        to_replica = asyncio.create_task(_caller_to_replica(websocket, upstream))
        to_caller = asyncio.create_task(_replica_to_caller(websocket, upstream))
        done, pending = await asyncio.wait({to_replica, to_caller}, return_when="FIRST_COMPLETED")
        for task in pending:
            task.cancel()
        for task in done | pending:
            # A side that broke off (a reset connection) ends the session; nothing to report.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _caller_to_replica(
    websocket: WebSocket, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=_sendable(message.get("code", 1000)))
            return
        if message.get("text") is not None:
            await upstream.send_str(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send_bytes(message["bytes"])


async def _replica_to_caller(
    websocket: WebSocket, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    async for message in upstream:
        if message.type == aiohttp.WSMsgType.TEXT:
            await websocket.send_text(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await websocket.send_bytes(message.data)
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
            break
    code = _sendable(upstream.close_code or 1000)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the caller may be gone
        await websocket.close(code=code)


def _sendable(code: int) -> int:
    return 1001 if code in RESERVED_CLOSE_CODES else code
