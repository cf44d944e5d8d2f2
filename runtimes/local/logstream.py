"""Decoding of the Docker log stream: stdout and stderr frames, split into timestamped lines.

Without a TTY the engine multiplexes both streams: each frame is an 8-byte header (stream
type, three zero bytes, big-endian length) and a payload. A frame may hold part of a line or
several lines, so each stream keeps its own buffer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

Stream = Literal["stdout", "stderr"]
_STREAMS: dict[int, Stream] = {0: "stdout", 1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">BxxxL")
# RFC 3339 with optional fraction: Docker sends nanoseconds, Podman's compat API whole seconds.
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


class _Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


@dataclass(frozen=True)
class RawLine:
    stream: Stream
    timestamp: datetime | None
    text: str


def parse_time(value: str) -> datetime | None:
    """An engine time (RFC 3339, any precision); None if absent or Go's zero time."""
    match = _TIME.match(value)
    if not match or value.startswith("0001-"):
        return None
    base, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    stamp = datetime.fromisoformat(f"{base}.{micros}{'+00:00' if zone == 'Z' else zone}")
    return stamp.astimezone(UTC)


def parse_timestamp(line: str) -> tuple[datetime | None, str]:
    """Split the engine's timestamp prefix off a log line."""
    head, _, text = line.partition(" ")
    stamp = parse_time(head)
    return (stamp, text) if stamp else (None, line)


def _line(stream: Stream, raw: bytes) -> RawLine:
    stamp, text = parse_timestamp(raw.decode(errors="replace").rstrip("\r"))
    return RawLine(stream, stamp, text)


async def demultiplex(content: _Reader) -> AsyncIterator[RawLine]:
    """Yield complete lines from a multiplexed log stream, then any unterminated rests."""
    buffers: dict[Stream, bytes] = {"stdout": b"", "stderr": b""}
    while True:
        try:
            header = await content.readexactly(_HEADER.size)
            kind, length = _HEADER.unpack(header)
            payload = await content.readexactly(length) if length else b""
        except EOFError:  # asyncio.IncompleteReadError: the stream ended
            break
        stream = _STREAMS.get(kind, "stdout")
        *lines, rest = (buffers[stream] + payload).split(b"\n")
        buffers[stream] = rest
        for raw in lines:
            yield _line(stream, raw)
    for stream, rest in buffers.items():
        if rest:
            yield _line(stream, rest)
