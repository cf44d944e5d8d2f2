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
_CHUNK = 64 * 1024
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


def _line(stream: Stream, raw: bytes, cut: int) -> RawLine:
    stamp, text = parse_timestamp(raw.decode(errors="replace").rstrip("\r"))
    if cut:
        text += f"... ({cut} more bytes)"
    return RawLine(stream, stamp, text)


class _LineBuffer:
    """The unterminated rest of one stream, kept up to `limit` bytes; the excess is counted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = b""
        self.cut = 0

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """Complete lines in `chunk` (with what was cut of each); the rest stays buffered."""
        lines = []
        *complete, rest = chunk.split(b"\n")
        for part in complete:
            lines.append(self._take(part))
        self._append(rest)
        return lines

    def flush(self) -> tuple[bytes, int] | None:
        return self._take(b"") if self.data or self.cut else None

    def _append(self, part: bytes) -> None:
        room = self.limit - len(self.data)
        self.data += part[:room]
        self.cut += max(0, len(part) - room)

    def _take(self, part: bytes) -> tuple[bytes, int]:
        self._append(part)
        line, self.data, cut, self.cut = self.data, b"", self.cut, 0
        return line, cut


async def demultiplex(content: _Reader, *, max_line_bytes: int) -> AsyncIterator[RawLine]:
    """Yield complete lines from a multiplexed log stream, then any unterminated rests. A line
    longer than `max_line_bytes` is cut there (the engine's timestamp included), and never
    held in memory whole: frames are read in chunks."""
    buffers: dict[Stream, _LineBuffer] = {
        "stdout": _LineBuffer(max_line_bytes),
        "stderr": _LineBuffer(max_line_bytes),
    }
    while True:
        try:
            header = await content.readexactly(_HEADER.size)
            kind, length = _HEADER.unpack(header)
            stream = _STREAMS.get(kind, "stdout")
            while length:
                chunk = await content.readexactly(min(length, _CHUNK))
                length -= len(chunk)
                for raw, cut in buffers[stream].feed(chunk):
                    yield _line(stream, raw, cut)
        except EOFError:  # asyncio.IncompleteReadError: the stream ended
            break
    for name, buffer in buffers.items():
        if rest := buffer.flush():
            yield _line(name, *rest)
