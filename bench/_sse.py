"""Server-sent events for bench/gateway.py: a replica that streams, and a client that holds many
streams and measures how long each event takes to arrive. Each runs as a process of its own:

  python bench/_sse.py backend PORT [--interval 0.1]
  python bench/_sse.py client URL [--streams 2000] [--seconds 10] [--auth TOKEN]

The backend writes one event per stream every `--interval` seconds, each carrying the time
(ns, CLOCK_REALTIME, one clock for every process on the machine) at which it was written;
streams are spread over phases 5 ms apart, as independent streams would be, so that 2,000 of
them do not all fire in the same millisecond (a burst of hundreds of events makes every hop
queue them, and measures the burst rather than the hop). The client prints one JSON line:
streams open, events, latency percentiles. Comparing the latency through a proxy with the
latency straight to the backend gives what the proxy adds per chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import uvloop

TICK = 0.005  # seconds between two phases
EVENT = re.compile(rb"data: (\d+) (\d+)")


class Stream(asyncio.Protocol):
    phases: ClassVar[list[set[Stream]]] = []
    next_phase = 0

    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = b""
        self.seq = 0
        self.phase = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.phase < 0 and b"\r\n\r\n" in self.buffer:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            self.phase = Stream.next_phase
            Stream.next_phase = (Stream.next_phase + 1) % len(Stream.phases)
            Stream.phases[self.phase].add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.phase >= 0:
            Stream.phases[self.phase].discard(self)

    def emit(self) -> None:
        self.seq += 1
        event = b"data: %d %d\n\n" % (self.seq, time.time_ns())
        self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))


async def backend(port: int, interval: float) -> None:
    phases = max(1, round(interval / TICK))
    Stream.phases = [set() for _ in range(phases)]
    loop = asyncio.get_running_loop()
    await loop.create_server(Stream, "127.0.0.1", port, backlog=4096, reuse_address=True)
    tick, phase, next_at = interval / phases, 0, loop.time()
    while True:
        for stream in list(Stream.phases[phase]):
            if not stream.transport.is_closing():
                stream.emit()
        phase = (phase + 1) % phases
        next_at += tick
        await asyncio.sleep(max(0.0, next_at - loop.time()))


class Reader(asyncio.Protocol):
    latencies: ClassVar[list[int]] = []
    recording = False
    opened = 0
    failed = 0

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: Any = None
        self.tail = b""
        self.ok = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if not self.ok:
            if not data.startswith(b"HTTP/1.1 200"):
                Reader.failed += 1
                self.transport.close()
                return
            self.ok = True
            Reader.opened += 1
        buffer = self.tail + data
        last = 0
        for match in EVENT.finditer(buffer):
            last = match.end()
            if Reader.recording:
                Reader.latencies.append(now - int(match.group(2)))
        self.tail = buffer[last:][-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ok:
            Reader.opened -= 1


async def client(url: str, streams: int, seconds: float, auth: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    header = f"Authorization: Bearer {auth}\r\n" if auth else ""
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Accept: text/event-stream\r\n{header}\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    transports = []
    for index in range(streams):
        transport, _ = await loop.create_connection(lambda: Reader(request), host, port)
        transports.append(transport)
        if index % 100 == 99:
            await asyncio.sleep(0.02)  # a ramp, not a SYN flood
    await asyncio.sleep(2)  # settled
    held = Reader.opened
    print(json.dumps({"held": held}), flush=True)  # the bench samples memory now
    Reader.recording = True
    await asyncio.sleep(seconds)
    Reader.recording = False
    values = sorted(Reader.latencies)

    def ms(fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))] / 1e6 if values else -1

    print(
        json.dumps(
            {
                "held": held,
                "open_at_end": Reader.opened,
                "failed": Reader.failed,
                "events": len(values),
                "p50_ms": ms(0.5),
                "p99_ms": ms(0.99),
            }
        ),
        flush=True,
    )
    for transport in transports:
        transport.close()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("backend")
    serve.add_argument("port", type=int)
    serve.add_argument("--interval", type=float, default=0.1)
    read = commands.add_parser("client")
    read.add_argument("url")
    read.add_argument("--streams", type=int, default=2000)
    read.add_argument("--seconds", type=float, default=10)
    read.add_argument("--auth", default="")
    args = parser.parse_args()
    if args.command == "backend":
        uvloop.run(backend(args.port, args.interval))
    else:
        uvloop.run(client(args.url, args.streams, args.seconds, args.auth))
