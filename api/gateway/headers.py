"""Header hygiene and message framing, on raw bytes.

Everything here works on the `(name, value)` byte pairs httptools hands over, so no header is
ever decoded to `str` on the hot path. Names keep the caller's spelling; comparisons use the
lowercased name.

Rules:
  * hop-by-hop headers (RFC 9110 7.6.1) and every header named in `Connection` are dropped,
    both ways;
  * `Authorization` is consumed by the gateway and never forwarded; `Host` becomes the
    replica's address; `Expect` is answered by the gateway itself (see exchange.py);
  * the caller's `Forwarded`, `X-Forwarded-*`, `X-Real-IP` and `X-Request-ID` are dropped
    and replaced with the gateway's own (`forwarded_lines`): a caller cannot tell the workload
    it comes from another address;
  * `Content-Length` / `Transfer-Encoding` are never copied: the gateway writes the framing
    it actually uses (a chunked request stays chunked, a sized one keeps its size).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

Headers = list[tuple[bytes, bytes]]
Headers3 = list[tuple[bytes, bytes, bytes]]  # (name as sent, value, lowercased name)

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Dropped from requests on top of hop-by-hop ones; the gateway writes its own versions.
REQUEST_DROP: Final = HOP_BY_HOP | {
    b"authorization",
    b"host",
    b"expect",
    b"content-length",
    b"forwarded",
    b"x-real-ip",
    b"x-request-id",
}
# Dropped from responses on top of hop-by-hop ones (framing is rewritten by the gateway).
RESPONSE_DROP: Final = HOP_BY_HOP | {b"content-length"}

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_TARGET_BYTES: Final = 8 * 1024

REASONS: Final = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"


_PLAIN: Final = frozenset(
    {b"keep-alive", b"close", b"Keep-Alive", b"Close", b"upgrade", b"Upgrade"}
)
_NONE: Final[frozenset[bytes]] = frozenset()
# Connection options that name no extra header to drop (or one dropped anyway).
_NOT_NAMES: Final = frozenset({b"", b"close", b"keep-alive", b"upgrade", b"te", b"trailer"})


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """The header names listed in a `Connection` value (`close`, `keep-alive`, `X-Foo`...).
    The usual values name only headers that are dropped anyway: answered without parsing."""
    if value in _PLAIN:
        return _NONE
    tokens = frozenset(token.strip().lower() for token in value.split(b",")) - _NOT_NAMES
    return tokens or _NONE


def forwarded_lines(ip: str) -> bytes:
    """The gateway's own `Forwarded`, `X-Forwarded-For`, `X-Real-IP` and
    `X-Forwarded-Proto` lines for a caller at `ip` (the host follows per request)."""
    node = f'"[{ip}]"' if ":" in ip else ip  # RFC 7239: IPv6 addresses quoted, in brackets
    return (
        f"Forwarded: for={node};proto=http\r\nX-Forwarded-For: {ip}\r\n"
        f"X-Real-IP: {ip}\r\nX-Forwarded-Proto: http\r\n"
    ).encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of `Transfer-Encoding: chunked`."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def request_head(
    method: bytes,
    target: bytes,
    headers: Headers3,
    *,
    host: bytes,
    forwarded: bytes,
    framing: bytes,
    named_in_connection: frozenset[bytes],
    websocket: bool,
) -> bytes:
    """The request line and headers sent to a replica.

    `forwarded` holds the gateway's own `X-Forwarded-*`/`X-Real-IP`/`X-Request-ID` lines
    (CRLF-terminated), `framing` a `Content-Length`/`Transfer-Encoding` line or b"".
    """
    parts = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    append = parts.append
    for name, value, lname in headers:
        if (
            lname in REQUEST_DROP
            or lname.startswith(b"x-forwarded-")
            or (named_in_connection and lname in named_in_connection)
        ):
            # The WebSocket handshake keeps its Sec-WebSocket-* headers (not dropped here),
            # and gets `Connection`/`Upgrade` back below.
            continue
        append(name)
        append(b": ")
        append(value)
        append(b"\r\n")
    if websocket:
        append(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
    append(forwarded)
    append(framing)
    append(b"\r\n")
    return b"".join(parts)


# Response heads are handled as one block of bytes, after llhttp has validated them: one
# substring search per header the gateway reads, one regex removes the lines it drops. Each header
# line in `block[line_end:]` starts with CRLF; continuation lines (obs-fold) go with theirs.
_DROP_RE: Final = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-authenticate|proxy-authorization|proxy-connection|te"
    rb"|trailer|transfer-encoding|upgrade|content-length)[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    reason: bytes
    headers: bytes  # the kept header lines, each preceded by CRLF
    length: bytes | None  # Content-Length as sent
    chunked: bool
    has_request_id: bool


_SCANNED: dict[bytes, ResponseHead] = {}
_SCANNED_MAX: Final = 512  # heads remembered, of at most _SCANNED_BYTES each
_SCANNED_BYTES: Final = 2048


def scanned_response_head(block: bytes) -> ResponseHead:
    """`scan_response_head`, remembered: a replica sends the same head for every call of the
    same kind, the `Date` line changing once a second, so most heads were scanned already."""
    head = _SCANNED.get(block)
    if head is None:
        if len(block) > _SCANNED_BYTES:
            return scan_response_head(block)
        if len(_SCANNED) >= _SCANNED_MAX:
            _SCANNED.clear()
        head = _SCANNED[block] = scan_response_head(block)
    return head


def scan_response_head(block: bytes) -> ResponseHead:
    """Split a validated response head (status line + header lines, no final CRLFCRLF)."""
    line_end = block.find(b"\r\n")
    if line_end < 0:
        line_end = len(block)
    parts = block[:line_end].split(b" ", 2)
    reason = parts[2] if len(parts) == 3 else b""
    fields = block[line_end:]
    # Substring searches on a lowercased copy (same offsets): llhttp has rejected heads with
    # whitespace before a colon, so "\r\nname:" is the only spelling left to find.
    low = fields.lower()
    length: bytes | None = None
    at = low.find(b"\r\ncontent-length:")
    if at >= 0:
        length = fields[at + 17 : _line_end(low, at)].strip()
    at = low.find(b"\r\ntransfer-encoding:")
    chunked = at >= 0 and b"chunked" in low[at : _line_end(low, at)]
    named: frozenset[bytes] = frozenset()
    at = low.find(b"\r\nconnection:")
    while at >= 0:
        end = _line_end(low, at)
        named = named | connection_tokens(fields[at + 13 : end].strip())
        at = low.find(b"\r\nconnection:", end)
    has_request_id = b"\r\nx-request-id:" in low
    fields = _DROP_RE.sub(b"", fields)
    if named:  # rare: `Connection: X-Foo` names a header to drop as well
        names = b"|".join(re.escape(name) for name in named)
        fields = re.sub(
            rb"\r\n(?:" + names + rb")[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*",
            b"",
            fields,
            flags=re.IGNORECASE,
        )
    return ResponseHead(reason, fields, length, chunked, has_request_id)


def _line_end(low: bytes, at: int) -> int:
    end = low.find(b"\r\n", at + 2)
    return end if end >= 0 else len(low)


def response_head(status: int, head: ResponseHead, *, framing: bytes, extra: bytes) -> bytes:
    """The status line and headers sent to the caller: the replica's kept headers, plus
    `framing` and `extra` (CRLF-terminated lines)."""
    return b"HTTP/1.1 %d %s%s\r\n%s%s\r\n" % (
        status,
        head.reason or REASONS.get(status, b"Unknown"),
        head.headers,
        framing,
        extra,
    )


def simple_response(
    status: int, body: bytes, *, content_type: bytes, extra: bytes = b"", close: bool = False
) -> bytes:
    """A complete response generated by the gateway itself (errors, /metrics)."""
    return b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\nContent-Length: %d\r\n%b%b\r\n%b" % (
        status,
        REASONS.get(status, b"Unknown"),
        content_type,
        len(body),
        extra,
        b"Connection: close\r\n" if close else b"",
        body,
    )
