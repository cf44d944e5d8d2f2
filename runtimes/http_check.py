"""One bounded HTTP GET, for probes and deployment health checks.

The timeout is a deadline for the whole exchange (connect, send, and the answer's status
line), not per read, so a server that trickles bytes cannot hold a check past it. Only the
status line is read, at most a few KiB, as a kubelet decides a probe by the status code: a
huge or endless body costs nothing. A new connection per check, as a kubelet makes.

Why not an HTTP client library: a probe needs none of their features (pools, redirects,
cookies, body decoding), and at a thousand workloads their per-request cost is most of what
an idle worker spends.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

# The status line must arrive within this many bytes.
STATUS_LINE_BYTES = 4096
# Printable ASCII but space: what may stay as it is in a request target.
_PATH_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    seconds: float


class HttpCheckError(Exception):
    """No HTTP answer: refused, reset, timed out, or not HTTP. The message completes a
    sentence about the request: "timed out after 2s", "failed: Connection refused"."""


def _tls() -> ssl.SSLContext:
    # Probes skip certificate checks, as a kubelet does.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS: ssl.SSLContext | None = None


def _request(host: str, port: int, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"GET {quote(path, safe=_PATH_SAFE)} HTTP/1.1",
        f"Host: {host}:{port}",
        "User-Agent: wapi-probe/1",
        "Accept: */*",
        "Connection: close",
    ]
    # Header names are validated with the artifact; values must not end the header early.
    lines += [f"{name}: {' '.join(value.splitlines())}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


async def http_get(
    host: str,
    port: int,
    path: str,
    *,
    within: float,
    scheme: str = "http",
    headers: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """GET `path` at `host:port`: its status within `within` seconds, or `HttpCheckError`."""
    global _TLS
    if scheme.lower() == "https" and _TLS is None:
        _TLS = _tls()
    context = _TLS if scheme.lower() == "https" else None
    started = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, limit=STATUS_LINE_BYTES
            )
            writer.write(_request(host, port, path, headers or {}))
            await writer.drain()
            line = await reader.readuntil(b"\n")
    except TimeoutError:
        raise HttpCheckError(f"timed out after {within:g}s") from None
    except asyncio.IncompleteReadError:
        raise HttpCheckError("failed: the connection closed before an answer") from None
    except asyncio.LimitOverrunError:
        raise HttpCheckError("failed: the answer is not HTTP (no status line)") from None
    except (OSError, ssl.SSLError) as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise HttpCheckError(f"failed: {reason}") from None
    finally:
        if writer is not None:
            writer.close()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise HttpCheckError("failed: the answer is not HTTP (no status line)")
    return HttpAnswer(status=int(parts[1]), seconds=time.perf_counter() - started)
